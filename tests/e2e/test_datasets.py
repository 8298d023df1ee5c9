"""Users' own datasets and colour data end to end, with real workers: upload, train, predict, export; the
ConvNetJS CIFAR-10 demo on a CIFAR-10 written in its official format; tenants; hostile uploads."""

from __future__ import annotations

import io
import json
import pickle

import numpy as np
import pytest

from tests.conftest import data_dir, wait_status
from tests.e2e.test_security import bearer, secured  # noqa: F401 (a fixture)
from tests.service.datasets import uploads
from tests.service.datasets.test_convert import HOSTILE, LIMITS
from tests.service.spec.test_jsparse import CIFAR10_DEMO

pytestmark = pytest.mark.e2e
CLASSES = (3, 5, 8)  # three digit classes of real MNIST


@pytest.fixture(scope="module")
def digits():
    """600 training and 150 test MNIST digits of three classes, as uint8 (N, 28, 28) and labels 0..2."""
    from worker import data

    mnist = data.load("mnist", data_dir(), validation_fraction=0)

    def pick(split, n):
        keep = np.isin(split.labels.numpy(), CLASSES)
        images, labels = split.images.numpy()[keep, 0][:n], split.labels.numpy()[keep][:n]
        return images, np.searchsorted(CLASSES, labels)

    return pick(mnist.train, 600), pick(mnist.test, 150)


def post(client, data: bytes, name: str, headers=None, filename: str = "data.zip", **fields):
    form = {"file": (io.BytesIO(data), filename), "name": name, **{k: str(v) for k, v in fields.items()}}
    return client.post("/v1/datasets", data=form, content_type="multipart/form-data", headers=headers or {})


def digits_job(dataset: str, examples: int = 1500) -> dict:
    return {"name": f"on {dataset}", "seed": 5, "budget": {"examples": examples},
            "network": {"layers": [{"type": "input", "out_sx": 24, "out_sy": 24, "out_depth": 1},
                                   {"type": "conv", "sx": 5, "filters": 8, "pad": 2, "activation": "relu"},
                                   {"type": "pool", "sx": 2, "stride": 2},
                                   {"type": "softmax", "num_classes": 3}]},
            "trainer": {"method": "adadelta", "batch_size": 10, "l2_decay": 0.001},
            "data": {"dataset": dataset, "val_interval": 500}}


def train_predict_export(client, dataset: str, test_image: np.ndarray) -> dict:
    """Train on `dataset`, then classify a picture and download every export; the finished job."""
    response = client.post("/v1/jobs", json=digits_job(dataset))
    assert response.status_code == 202, response.get_json()
    job = wait_status(client, response.get_json()["id"], ("succeeded", "failed"))
    assert job["status"] == "succeeded", job["error"]
    assert job["result"]["test_acc"] > 0.8, job["result"]  # three digit classes: chance is 1/3
    picture = uploads.png(test_image)
    answer = client.post(f"/v1/jobs/{job['id']}/predict", data=picture, content_type="image/png")
    assert answer.status_code == 200, answer.get_json()
    assert len(answer.get_json()["probabilities"]) == 3
    for fmt in ("pt", "onnx", "convnetjs"):
        assert client.get(f"/v1/jobs/{job['id']}/model?format={fmt}").status_code == 200, fmt
    convnetjs = json.loads(client.get(f"/v1/jobs/{job['id']}/model?format=convnetjs").data)
    assert convnetjs["layers"][0]["out_depth"] == 1 and convnetjs["layers"][-1]["out_depth"] == 3
    return job


def test_a_zip_of_class_folders_of_mnist_digits_trains_predicts_and_exports(client, digits):
    (x, y), (tx, ty) = digits
    zipped = uploads.folders(x, y, ["three", "five", "eight"], test=(tx, ty))
    record = post(client, zipped, "digits-zip").get_json()
    assert (record["class_names"], record["train_size"], record["test_size"]) == (["eight", "five", "three"], 600, 150)
    job = train_predict_export(client, "digits-zip", tx[0])
    assert job["request"]["data"]["upload"]["sha256"] == record["sha256"]
    # Deleting (or replacing) the name later changes nothing for the job: it pinned the content.
    assert client.delete("/v1/datasets/digits-zip").status_code == 204
    assert client.get(f"/v1/jobs/{job['id']}/predictions?limit=5").status_code == 200


def test_an_npz_trains_predicts_and_exports(client, digits):
    (x, y), (tx, ty) = digits
    record = post(client, uploads.npz(x_train=x, y_train=y, x_test=tx, y_test=ty), "digits-npz",
                  filename="digits.npz", class_names=json.dumps(["3", "5", "8"])).get_json()
    assert (record["source"], record["depth"], record["num_classes"]) == ("npz", 1, 3)
    train_predict_export(client, "digits-npz", tx[1])


def _write_cifar(folder, train_per_batch: int = 400, test: int = 500) -> None:
    """A small CIFAR-10 in its official python-batches format: each class a colour and a stripe direction."""
    rng = np.random.default_rng(0)
    palette = rng.integers(30, 226, (10, 3))
    root = folder / "cifar10" / "cifar-10-batches-py"
    root.mkdir(parents=True)

    def batch(n):
        labels = rng.integers(0, 10, n)
        stripes = (np.arange(32) // 4 % 2) * 50
        images = np.empty((n, 3, 32, 32), np.int64)
        for i, label in enumerate(labels):
            pattern = stripes[None, :] if label % 2 else stripes[:, None]
            images[i] = palette[label][:, None, None] + pattern - 25 + rng.integers(-20, 20, (3, 32, 32))
        return {b"data": np.clip(images, 0, 255).astype(np.uint8).reshape(n, 3072), b"labels": labels.tolist()}

    for i in range(1, 6):
        (root / f"data_batch_{i}").write_bytes(pickle.dumps(batch(train_per_batch)))
    (root / "test_batch").write_bytes(pickle.dumps(batch(test)))


def test_the_convnetjs_cifar10_demo_trains_on_cifar10_better_than_chance(own_service, tmp_path):
    from service.api import create_app

    _write_cifar(tmp_path / "data")
    own_service.env["CONVTRAIN_DATA_DIR"] = str(tmp_path / "data")
    own_service.start_worker("colour")
    client = create_app(own_service.config, own_service.url).test_client()
    listed = {d["name"]: d for d in client.get("/v1/datasets").get_json()["datasets"]}
    assert listed["cifar10"]["present"] and listed["cifar10"]["depth"] == 3
    body = {"convnetjs": CIFAR10_DEMO, "budget": {"examples": 4000}, "seed": 2,
            "data": {"dataset": "cifar10", "augment": {"flip": True, "shift": 2}, "val_interval": 1000}}
    response = client.post("/v1/jobs", json=body)
    assert response.status_code == 202, response.get_json()
    accepted = response.get_json()
    assert len(accepted["network"]["layers"]) == 12 and accepted["network"]["params"] == 22466
    job = wait_status(client, accepted["id"], ("succeeded", "failed"), timeout=300)
    assert job["status"] == "succeeded", job["error"]
    assert job["result"]["test_acc"] > 0.5, job["result"]  # chance is 0.1
    layers = client.get(f"/v1/jobs/{job['id']}/layers").get_json()["layers"]
    from PIL import Image

    first = Image.open(io.BytesIO(client.get(layers[0]["images"]["activations"]).data))
    assert first.mode == "RGB"  # the input layer's picture is the colour image
    picture = uploads.png(np.full((40, 50, 3), (200, 40, 40), np.uint8))
    answer = client.post(f"/v1/jobs/{job['id']}/predict", data=picture, content_type="image/png")
    assert answer.status_code == 200 and len(answer.get_json()["probabilities"]) == 10
    onnx = client.get(f"/v1/jobs/{job['id']}/model?format=onnx")
    assert onnx.status_code == 200
    convnetjs = json.loads(client.get(f"/v1/jobs/{job['id']}/model?format=convnetjs").data)
    assert convnetjs["layers"][0]["out_depth"] == 3


def test_another_tenants_dataset_does_not_exist_for_you(secured):  # noqa: F811
    _, client, tokens = secured
    alice, bob = bearer(tokens["alice"]), bearer(tokens["bob"])
    upload = uploads.npz(x_train=np.zeros((20, 28, 28), np.uint8), y_train=np.arange(20) % 3)
    record = post(client, upload, "private", alice)
    assert record.status_code == 201 and record.get_json()["owner"] == "alice"
    assert "private" not in [d["name"] for d in client.get("/v1/datasets", headers=bob).get_json()["datasets"]]
    assert "private" in [d["name"] for d in client.get("/v1/datasets", headers=alice).get_json()["datasets"]]
    assert client.get("/v1/datasets/private", headers=bob).status_code == 404
    assert client.delete("/v1/datasets/private", headers=bob).status_code == 404
    job = digits_job("private")
    for path, body in (("/v1/jobs", job), ("/v1/networks/validate", job), ("/v1/sweeps", {"name": "s", "base": job})):
        response = client.post(path, json=body, headers=bob)
        assert response.status_code == 422, (path, response.get_json())
        assert "data.dataset" in [e["path"] for e in response.get_json()["errors"]], path
    pinned = {**job, "data": {"dataset": "mnist", "upload": {"sha256": record.get_json()["sha256"], "train_size": 18}}}
    assert client.post("/v1/jobs", json=pinned, headers=bob).status_code == 422  # no pinning by hand
    # Bob's own "private" is his: Alice's stays as it was.
    assert post(client, upload, "private", bob).status_code == 201
    assert client.get("/v1/datasets/private", headers=alice).get_json()["owner"] == "alice"
    assert client.post("/v1/jobs", json=job, headers=alice).status_code == 202
    assert client.delete("/v1/datasets/private", headers=alice).status_code == 204
    assert client.get("/v1/datasets/private", headers=bob).get_json()["owner"] == "bob"
    for method in ("get", "delete"):
        assert getattr(client, method)("/v1/datasets/private").status_code == 401


DEFAULT_LIMITS = [case for case in HOSTILE if case[3] == LIMITS and not case[2].class_names and not case[2].width]


@pytest.mark.parametrize("case, data, options, limits, words", DEFAULT_LIMITS, ids=[c[0] for c in DEFAULT_LIMITS])
def test_each_hostile_upload_is_a_4xx_problem_and_the_service_stays_healthy(client, case, data, options, limits,
                                                                           words):
    response = post(client, data, "hostile")
    assert response.status_code == 422 and response.mimetype == "application/problem+json", response.data[:300]
    problem = response.get_json()
    assert words in problem["detail"] and problem["errors"][0]["path"] == "file"
    assert client.get("/healthz").status_code == 200
    assert client.get("/v1/datasets/hostile").status_code == 404


def test_an_upload_over_the_byte_limit_is_a_413_problem(service):
    from service.api import create_app

    client = create_app(service.config.replace(dataset_max_upload_bytes=1 << 20), service.url).test_client()
    response = post(client, bytes(3 << 20), "big")
    assert response.status_code == 413 and response.mimetype == "application/problem+json"
    assert "limit" in response.get_json()["detail"]


def test_the_dashboard_uploads_a_dataset_and_checks_the_network_against_the_picked_one(service, tmp_path):
    """Headless Chromium: upload an .npz in the New job form, see it picked, and the spec checked against it."""
    from tests.e2e.test_dashboard import CHROMIUM, CHROMIUM_ARGS

    if not CHROMIUM.exists():
        pytest.skip(f"no Chromium at {CHROMIUM}: apt-get install chromium (or set CONVTRAIN_CHROMIUM)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright (the test extra)")
    from tests.conftest import gunicorn

    npz = uploads.npz(x_train=np.zeros((30, 28, 28), np.uint8), y_train=np.arange(30) % 3)
    with gunicorn(service.env, tmp_path / "gunicorn.log", timeout=30, stop_timeout=10) as base, \
            sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.goto(f"{base}/")
            expect = sync_api.expect
            expect(page.locator("#validation .ok")).to_contain_text("5,994 parameters", timeout=15_000)
            expect(page.locator('#dataset option[value="cifar10"]')).to_have_count(1, timeout=15_000)  # listed
            page.set_input_files("#dataset-file", files=[{"name": "three.npz", "mimeType": "application/zip",
                                                          "buffer": npz}])
            page.fill("#dataset-name", "three-blank")
            page.click("#dataset-upload")
            expect(page.locator("#dataset-note")).to_contain_text("✓ three-blank: 27 training", timeout=15_000)
            expect(page.locator("#dataset")).to_have_value("three-blank")
            # The demo's 10-class network does not fit a 3-class dataset: the error names the field.
            expect(page.locator("#validation .errors")).to_contain_text("3 classes", timeout=15_000)
            page.select_option("#dataset", "mnist")
            expect(page.locator("#validation .ok")).to_contain_text("5,994 parameters", timeout=15_000)
            assert errors == []
        finally:
            browser.close()


def test_a_search_on_an_upload_pins_its_hash_for_every_trial(client, digits):
    """A search names the caller's dataset like a job; its trials train on the upload as it was when the
    search was made, even when the name is given other images meanwhile."""
    from tests.e2e.test_searches import wait_search

    (x, y), (tx, ty) = digits
    first = post(client, uploads.npz(x_train=x, y_train=y, x_test=tx, y_test=ty), "digits-search",
                 filename="d.npz").get_json()
    base = {k: v for k, v in digits_job("digits-search", examples=600).items() if k != "name"}
    body = {"name": "on an upload", "base": base, "trials": 2, "parallel": 1, "sampler": "random", "seed": 1,
            "val_slice": 100, "space": {"network.layers[1].filters": {"choice": [4, 8]}}}
    response = client.post("/v1/searches", json=body)
    assert response.status_code == 202, response.get_json()
    replaced = post(client, uploads.npz(x_train=x[:300], y_train=y[:300], x_test=tx, y_test=ty), "digits-search",
                    filename="d.npz")
    assert replaced.status_code == 200 and replaced.get_json()["sha256"] != first["sha256"]
    search = wait_search(client, response.get_json()["id"])
    assert search["status"] == "succeeded" and len(search["trials"]) == 2, search
    for trial in search["trials"]:
        job = client.get(f"/v1/jobs/{trial['job']}").get_json()
        assert job["status"] == "succeeded", job["error"]
        assert job["request"]["data"]["upload"]["sha256"] == first["sha256"]


def test_a_search_naming_an_unknown_dataset_is_a_422_on_the_field(client):
    base = {k: v for k, v in digits_job("nobody-has-this").items() if k != "name"}
    response = client.post("/v1/searches", json={"base": base, "trials": 1})
    assert response.status_code == 422, response.get_json()
    assert any(e["path"].endswith("data.dataset") for e in response.get_json()["errors"]), response.get_json()
