"""Layer views, test predictions and "try your own image", with a real worker and a real trained job."""

from __future__ import annotations

import base64
import io

import numpy as np
import pytest
from PIL import Image

from tests.conftest import data_dir, example, wait_status

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def trained(service):
    """One job trained to a useful accuracy, shared by the tests below."""
    from service.api import create_app

    client = create_app(service.config, service.url).test_client()
    job = client.post("/v1/jobs", json=example("net1-default.json", budget={"examples": 8000}, seed=3)).get_json()
    job = wait_status(client, job["id"], ("succeeded", "failed"), timeout=180)
    assert job["status"] == "succeeded", job["error"]
    return job


def png(response) -> np.ndarray:
    assert response.status_code == 200 and response.mimetype == "image/png"
    return np.asarray(Image.open(io.BytesIO(response.data)))


def test_layers_list_every_layer_with_statistics_and_pictures(client, trained):
    body = client.get(f"/v1/jobs/{trained['id']}/layers").get_json()
    assert body["snapshots"] >= 2 and body["snapshot"] == body["snapshots"] and body["examples"] == 8000
    layers = body["layers"]
    assert [l["type"] for l in layers] == ["input", "conv", "relu", "pool", "conv", "relu", "pool", "fc", "softmax"]
    conv = layers[1]
    assert (conv["out_sx"], conv["out_sy"], conv["out_depth"], conv["sx"], conv["stride"], conv["params"]) == (24, 24, 8, 5, 1, 208)
    for layer in layers:
        assert layer["act_min"] <= layer["act_max"] and layer["grad_min"] <= layer["grad_max"]
    assert conv["weight_min"] < conv["weight_max"] and conv["weight_grad_min"] <= conv["weight_grad_max"]
    assert set(conv["images"]) == {"activations", "gradients", "filters"} and "filters" not in layers[3]["images"]

    activations = png(client.get(conv["images"]["activations"]))
    assert activations.shape[:2] == (74, 74) and activations.std() > 10  # 8 maps of 24x24 in a 3x3 grid
    filters = png(client.get(conv["images"]["filters"]))
    assert filters.shape[:2] == (207, 25) and filters.std() > 10  # 8 filters of one 5x5 tile each, one per row
    gradients = png(client.get(layers[4]["images"]["gradients"]))
    assert gradients.std() > 1


def test_earlier_snapshots_can_be_picked(client, trained):
    first = client.get(f"/v1/jobs/{trained['id']}/layers?snapshot=1").get_json()
    assert first["snapshot"] == 1 and first["examples"] < 8000
    early = client.get(first["layers"][1]["images"]["filters"])
    late = client.get(client.get(f"/v1/jobs/{trained['id']}/layers").get_json()["layers"][1]["images"]["filters"])
    assert early.data != late.data  # the filters changed while training
    assert client.get(f"/v1/jobs/{trained['id']}/layers?snapshot=0").status_code == 400
    assert client.get(f"/v1/jobs/{trained['id']}/layers?snapshot=99999").status_code == 400
    assert client.get(f"/v1/jobs/{trained['id']}/layers/3/filters.png").status_code == 404  # a pool layer
    assert client.get(f"/v1/jobs/{trained['id']}/layers/99/activations.png").status_code == 404
    assert client.get(f"/v1/jobs/{trained['id']}/layers/1/secrets.png").status_code == 404


def test_predictions_agree_with_the_test_accuracy(client, trained):
    body = client.get(f"/v1/jobs/{trained['id']}/predictions?limit=100").get_json()
    assert body["test_acc"] == trained["result"]["test_acc"]
    predictions = body["predictions"]
    assert len(predictions) == 100 and [p["index"] for p in predictions] == list(range(100))
    right = sum(p["top"][0]["class"] == p["label"] for p in predictions)
    assert right >= 85  # a 97% model on the first 100 test images
    first = predictions[0]
    image = Image.open(io.BytesIO(base64.b64decode(first["image"].split(",", 1)[1])))
    assert image.size == (28, 28) and first["label"] == 7
    probabilities = [t["probability"] for t in first["top"]]
    assert probabilities == sorted(probabilities, reverse=True) and sum(probabilities) <= 1.0 + 1e-6


def _digit(index: int, *, light_background: bool) -> tuple[bytes, int]:
    from worker import data

    test = data.load("mnist", data_dir()).test
    pixels = test.images[index, 0].numpy()
    if light_background:
        pixels = 255 - pixels
    image = Image.fromarray(pixels).resize((140, 120))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue(), int(test.labels[index])


def test_predict_an_uploaded_picture(client, trained):
    hits = 0
    for index in range(10):
        picture, label = _digit(index, light_background=index % 2 == 0)
        if index % 2:
            response = client.post(f"/v1/jobs/{trained['id']}/predict", data=picture, content_type="image/png")
        else:
            response = client.post(f"/v1/jobs/{trained['id']}/predict", data={"image": (io.BytesIO(picture), "digit.png")},
                                   content_type="multipart/form-data")
        assert response.status_code == 200, response.get_json()
        body = response.get_json()
        assert len(body["probabilities"]) == 10 and abs(sum(body["probabilities"]) - 1) < 1e-4
        assert len(body["top"]) == 3 and body["top"][0]["probability"] == max(body["probabilities"])
        hits += body["top"][0]["class"] == label
    assert hits >= 7


def test_predict_pixels_and_bad_uploads(client, trained):
    from worker import data

    test = data.load("mnist", data_dir()).test
    rows = test.images[0, 0].tolist()
    response = client.post(f"/v1/jobs/{trained['id']}/predict", json={"pixels": rows})
    assert response.status_code == 200 and response.get_json()["top"][0]["class"] == 7
    flat = client.post(f"/v1/jobs/{trained['id']}/predict", json=[v / 255 for row in rows for v in row])
    assert flat.get_json()["top"][0]["class"] == 7

    bad = [
        ({"data": b"GIF89a....", "content_type": "image/png"}, 422),
        ({"json": {"pixels": [[1, 2], [3]]}}, 422),
        ({"json": {"pixels": "abc"}}, 422),
        ({"data": b"", "content_type": "image/png"}, 400),
        ({"data": {"file": (io.BytesIO(b"x"), "x.png")}, "content_type": "multipart/form-data"}, 400),
        ({"data": b"hello", "content_type": "text/plain"}, 415),
    ]
    for kwargs, status in bad:
        response = client.post(f"/v1/jobs/{trained['id']}/predict", **kwargs)
        assert response.status_code == status, (kwargs, response.get_json())
        assert response.mimetype == "application/problem+json"


def test_predict_refuses_a_decompression_bomb(client, trained):
    bomb = io.BytesIO()
    Image.new("1", (20000, 20000)).save(bomb, format="PNG")
    assert len(bomb.getvalue()) < 200_000
    response = client.post(f"/v1/jobs/{trained['id']}/predict", data=bomb.getvalue(), content_type="image/png")
    assert response.status_code == 422 and "pixels" in response.get_json()["detail"]


def test_predict_and_predictions_need_a_succeeded_job(client):
    job = client.post("/v1/jobs", json=example("net1-default.json", budget={"examples": 2_000_000})).get_json()
    assert client.post(f"/v1/jobs/{job['id']}/predict", json=[0] * 784).status_code == 409
    assert client.get(f"/v1/jobs/{job['id']}/predictions").status_code == 409
    client.post(f"/v1/jobs/{job['id']}/cancel")
    wait_status(client, job["id"], ("cancelled",))
