"""The datasets API on a real Redis (no worker): upload, list, read, delete, limits, quotas, and jobs and
sweeps that name an upload, every response checked against openapi.yaml."""

from __future__ import annotations

import gzip
import io

import numpy as np
import pytest

from service import auth
from service.api import create_app
from service.config import Config
from service.store import quotas
from tests.conftest import checked_app, example
from tests.service.datasets import uploads

rng = np.random.default_rng(1)
DIGITS = rng.integers(0, 256, (30, 28, 28), dtype=np.uint8)
LABELS = np.arange(30) % 3


def post(client, data: bytes, name: str = "mine", filename: str = "data.zip", **fields):
    form = {"file": (io.BytesIO(data), filename), "name": name, **{k: str(v) for k, v in fields.items()}}
    return client.post("/v1/datasets", data=form, content_type="multipart/form-data")


def job_on(dataset: str, num_classes: int = 3, depth: int = 1, **changes) -> dict:
    body = example("net1-default.json", **{"budget": {"examples": 600}, "data": {"dataset": dataset}, **changes})
    body["network"]["layers"][0]["out_depth"] = depth
    body["network"]["layers"][-1]["num_classes"] = num_classes
    return body


@pytest.fixture
def api(tmp_path, redis_url):
    """A test client with small upload limits and quotas, on an empty Redis."""
    with checked_app(Config(home=tmp_path, dataset_max_upload_bytes=1 << 20), redis_url) as pair:
        yield pair


def test_upload_list_read_and_delete(api):
    client, services = api
    r = post(client, uploads.folders(DIGITS, LABELS, ["zero", "one", "two"]), title="Three digits")
    assert r.status_code == 201, r.get_json()
    record = r.get_json()
    assert r.headers["Location"] == "/v1/datasets/mine"
    assert (record["width"], record["height"], record["depth"], record["class_names"], record["num_classes"]) == (
        28, 28, 1, ["one", "two", "zero"], 3)  # sorted, as torchvision's ImageFolder does
    assert (record["train_size"], record["test_size"], record["owner"], record["source"]) == (27, 3, "local", "images")  # every 10th of each class held out
    assert record["title"] == "Three digits" and len(record["sha256"]) == 64 and not record["builtin"]
    names = [d["name"] for d in client.get("/v1/datasets").get_json()["datasets"]]
    assert names == ["mnist", "fashion-mnist", "cifar10", "mine"]
    assert client.get("/v1/datasets/mine").get_json() == record
    assert client.get("/v1/datasets/cifar10").get_json()["depth"] == 3
    files = services.artifacts.names("datasets")
    assert files == [record["sha256"]]
    assert post(client, uploads.npz(x_train=DIGITS, y_train=LABELS), name="mine").status_code == 200  # replaced
    assert client.delete("/v1/datasets/mine").status_code == 204
    assert client.get("/v1/datasets/mine").status_code == 404
    assert client.delete("/v1/datasets/mine").status_code == 404
    assert client.delete("/v1/datasets/mnist").status_code == 409
    assert services.artifacts.names("datasets")  # the files stay: jobs may have pinned them


@pytest.mark.parametrize("fields, field", [
    ({"name": ""}, "name"), ({"name": "Upper"}, "name"), ({"name": "../x"}, "name"), ({"name": "mnist"}, "name"),
    ({"width": "0", "height": "5"}, "width"), ({"width": "5"}, "height"), ({"depth": "2"}, "depth"),
    ({"width": "2000", "height": "2000"}, "width"), ({"class_names": "[1, 2]"}, "class_names"),
    ({"class_names": "{"}, "class_names"), ({"title": "a" * 201}, "title"),
    ({"width": "²", "height": "5"}, "width"), ({"depth": "9" * 5000}, "depth"),
    ({"class_names": "[" * 100_000}, "class_names"),
])
def test_bad_form_fields_are_422_naming_the_field(api, fields, field):
    client, _ = api
    form = {"name": "ok", **fields}
    r = post(client, uploads.npz(x_train=DIGITS, y_train=LABELS), **form)
    assert r.status_code == 422 and r.mimetype == "application/problem+json", r.get_json()
    assert r.get_json()["errors"][0]["path"] == field


def test_hostile_and_oversized_uploads_get_problems_and_the_service_stays_healthy(api):
    client, _ = api
    r = post(client, uploads.zipped({"../../etc/passwd": b"x"}))
    assert r.status_code == 422 and r.get_json()["errors"] == [{"path": "file", "message": r.get_json()["detail"]}]
    r = post(client, bytes(2 << 20))  # over this app's 1 MiB limit: a 413 problem, not Werkzeug's HTML
    assert r.status_code == 413 and r.mimetype == "application/problem+json", r.data[:200]
    r = client.post("/v1/datasets", json={"name": "x"})
    assert r.status_code == 415
    r = client.post("/v1/datasets", data={"name": "x"}, content_type="multipart/form-data")
    assert r.status_code == 400 and r.get_json()["errors"][0]["path"] == "file"
    assert client.get("/healthz").status_code == 200
    assert post(client, uploads.npz(x_train=DIGITS, y_train=LABELS)).status_code == 201


def test_quotas_on_count_and_bytes(tmp_path, redis_url):
    """Quotas bind users (the local user without a tokens file is an admin, which has none)."""
    path = tmp_path / "tokens.json"
    token = auth.create(path, "carol")
    config = Config(home=tmp_path, tokens_file=path, quota_datasets=2, quota_dataset_bytes=200_000)
    application = create_app(config, redis_url)
    application.extensions["convtrain"].store.r.flushdb()
    client = application.test_client()
    client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {token}"
    small = uploads.npz(x_train=DIGITS[:10], y_train=LABELS[:10])
    assert post(client, small, name="a").status_code == 201
    assert post(client, small, name="b").status_code == 201
    r = post(client, small, name="c")
    assert r.status_code == 429 and r.get_json()["limit"] == "datasets" and r.headers["Retry-After"]
    assert post(client, small, name="b").status_code == 200  # replacing does not count twice
    client.delete("/v1/datasets/b")
    big = uploads.npz(x_train=rng.integers(0, 256, (300, 28, 28), dtype=np.uint8), y_train=np.arange(300) % 3)
    folders = set(application.extensions["convtrain"].artifacts.names("datasets"))
    r = post(client, big, name="big")
    assert r.status_code == 429 and r.get_json()["limit"] == "dataset_bytes"
    assert post(client, small, name="c").status_code == 201  # at its count quota again
    r = post(client, big, name="d")
    assert r.status_code == 429 and r.get_json()["limit"] == "datasets"
    assert set(application.extensions["convtrain"].artifacts.names("datasets")) == folders, "refused: nothing stored"


def test_a_job_on_an_upload_pins_its_hash_and_is_checked_against_it(api):
    client, services = api
    record = post(client, uploads.folders(DIGITS, LABELS, ["a", "b", "c"])).get_json()
    r = client.post("/v1/jobs", json=job_on("mine"))
    assert r.status_code == 202, r.get_json()
    job = services.store.get(r.get_json()["id"])
    assert job["request"]["data"]["upload"] == {"sha256": record["sha256"], "train_size": 27}
    assert client.post("/v1/networks/validate", json=job_on("mine")).status_code == 200

    problems = {
        "num_classes": (job_on("mine", num_classes=10), "network.layers[5].num_classes"),
        "depth": (job_on("mine", depth=3), "network.layers[0].out_depth"),
        "unknown": (job_on("yours"), "data.dataset"),
        "pinned by the client": (job_on("mine", data={"dataset": "mine", "upload": {"sha256": "0" * 64}}),
                                 "data.upload"),
    }
    for case, (body, path) in problems.items():
        r = client.post("/v1/jobs", json=body)
        assert r.status_code == 422, (case, r.get_json())
        assert path in [e["path"] for e in r.get_json()["errors"]], (case, r.get_json())
    big = job_on("mine")
    big["network"]["layers"][0].update(out_sx=32, out_sy=32)
    r = client.post("/v1/jobs", json=big)
    assert r.status_code == 422 and "28x28" in r.get_json()["errors"][0]["message"]


def test_a_sweep_on_an_upload_checks_every_variant_against_it(api):
    client, services = api
    post(client, uploads.npz(x_train=DIGITS, y_train=LABELS))
    body = {"name": "s", "base": job_on("mine"), "grid": {"network.layers[0].out_sx": [24, 28]}}
    body["base"]["network"]["layers"][0]["out_sy"] = 24
    r = client.post("/v1/sweeps", json=body)
    assert r.status_code == 202, r.get_json()
    job_id = r.get_json()["variants"][0]["jobs"][0]["id"]
    assert services.store.get(job_id)["request"]["data"]["upload"]["train_size"] == 27
    bad = {"name": "s", "base": job_on("mine", num_classes=10)}
    r = client.post("/v1/sweeps", json=bad)
    assert r.status_code == 422 and "3 classes" in r.get_json()["errors"][0]["message"]


def test_an_epochs_budget_on_an_upload_counts_its_pinned_training_images():
    request = {"budget": {"epochs": 3}, "data": {"dataset": "mine", "upload": {"sha256": "a" * 64, "train_size": 27}}}
    assert quotas.examples_of(request) == 81
    assert quotas.examples_of({"budget": {"epochs": 1}, "data": {"dataset": "mnist"}}) == 60000


def test_idx_files_sent_one_by_one_as_mnist_ships_them(api):
    client, _ = api
    files = {"train-images-idx3-ubyte.gz": uploads.idx(DIGITS), "train-labels-idx1-ubyte.gz": uploads.idx(LABELS),
             "t10k-images-idx3-ubyte": uploads.idx(DIGITS[:4]), "t10k-labels-idx1-ubyte": uploads.idx(LABELS[:4])}
    files = {name: gzip.compress(data) if name.endswith(".gz") else data for name, data in files.items()}
    form = {"name": "idx", "file": [(io.BytesIO(data), name) for name, data in files.items()]}
    r = client.post("/v1/datasets", data=form, content_type="multipart/form-data")
    assert r.status_code == 201, r.get_json()
    assert (r.get_json()["source"], r.get_json()["train_size"], r.get_json()["test_size"]) == ("idx", 30, 4)
    same = uploads.idx_zip(DIGITS, LABELS, DIGITS[:4], LABELS[:4])
    assert post(client, same, name="idx-zip").get_json()["sha256"] == r.get_json()["sha256"]
    odd = {"name": "odd", "file": [(io.BytesIO(b"x"), "../../passwd"), (io.BytesIO(b"y"), "train-labels-idx1-ubyte")]}
    r = client.post("/v1/datasets", data=odd, content_type="multipart/form-data")
    assert r.status_code == 422 and "'passwd' is not an IDX file" in r.get_json()["detail"]
    five = {"name": "five", "file": [(io.BytesIO(b"x"), f"{i}") for i in range(5)]}
    assert client.post("/v1/datasets", data=five, content_type="multipart/form-data").status_code == 422
