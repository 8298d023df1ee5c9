"""Models out and in, end to end: a real worker exports a job trained on MNIST in every format, each export
computes what the trained model computes (ConvNetJS's in the real library under Node.js), and jobs start
from a ConvNetJS snapshot, a ConvNetJS export or another job's weights."""

from __future__ import annotations

import io
import json
import threading
import warnings

import numpy as np
import pytest
import torch

from service.spec import schemas
from service.spec.model_formats import FORMATS
from service.storage import sha256
from tests.conftest import data_dir, example, wait_status
from tests.convnetjs_node import convnetjs  # noqa: F401 -- the fixture
from worker import data
from worker.convnetjs_io import from_convnetjs
from worker.exports import Predictor, load_net

pytestmark = pytest.mark.e2e

# The demo's net with an fc + dropout layer, so that the ConvNetJS export must fold dropout's test-time scale.
LAYERS = example("net1-default.json")["network"]["layers"]
NETWORK = {"layers": LAYERS[:-1] + [{"type": "fc", "num_neurons": 32, "activation": "relu", "drop_prob": 0.25},
                                    LAYERS[-1]]}
BODY = example("net1-default.json", network=NETWORK, budget={"examples": 3000}, seed=11, name="exports e2e")
TEST_IMAGES = 1000


@pytest.fixture(scope="module")
def trained(service):
    """One job trained on MNIST by the shared worker, and its model file's contents."""
    from service.api import create_app

    c = create_app(service.config, service.url).test_client()
    job = wait_status(c, c.post("/v1/jobs", json=BODY).get_json()["id"], ("succeeded", "failed"), timeout=300)
    assert job["status"] == "succeeded", job["error"]
    weights = torch.load(io.BytesIO(c.get(f"/v1/jobs/{job['id']}/model").data), weights_only=True)
    return job, weights


@pytest.fixture(scope="module")
def test_inputs() -> torch.Tensor:
    """The first 1,000 MNIST test images as the network takes them: centre crop 24x24, p/255 - 0.5."""
    images = data.load("mnist", data_dir()).test.images[:TEST_IMAGES]
    return data.to_input(data.center_crop(images, 24, 24))


def outputs(weights: dict, x: torch.Tensor) -> np.ndarray:
    with torch.no_grad():
        return Predictor(load_net(weights))(x).numpy()


def download(client, job_id: str, fmt: str):
    r = client.get(f"/v1/jobs/{job_id}/model?format={fmt}")
    assert r.status_code == 200, r.get_json()
    return r


def test_every_format_is_stored_with_its_checksum_and_served_with_its_type_and_name(client, trained):
    job, _ = trained
    exports = job["model"]["exports"]
    assert set(exports) == set(FORMATS)
    for fmt, info in exports.items():
        assert "error" not in info, (fmt, info)
        r = download(client, job["id"], fmt)
        assert sha256(r.data) == info["sha256"] and len(r.data) == info["bytes"]
        assert r.headers["ETag"] == f'"{info["sha256"]}"'
        assert r.mimetype == FORMATS[fmt].media_type
        assert r.headers["Content-Disposition"] == \
            f'attachment; filename="exports-e2e-{job["id"]}{FORMATS[fmt].suffix}"'
    assert exports["pt"]["sha256"] == job["model"]["sha256"]
    assert client.get(f"/v1/jobs/{job['id']}/model?format=keras").status_code == 400


def test_torchscript_and_onnx_outputs_equal_the_trained_model(client, trained, test_inputs):
    import onnxruntime

    job, weights = trained
    expected = outputs(weights, test_inputs)
    assert np.allclose(expected.sum(1), 1.0, atol=1e-5), "class probabilities"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        scripted = torch.jit.load(io.BytesIO(download(client, job["id"], "torchscript").data))
    with torch.no_grad():
        assert np.abs(scripted(test_inputs).numpy() - expected).max() <= 1e-5
    session = onnxruntime.InferenceSession(download(client, job["id"], "onnx").data, providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["input"]
    assert np.abs(session.run(None, {"input": test_inputs.numpy()})[0] - expected).max() <= 1e-5
    assert np.abs(session.run(None, {"input": test_inputs[:3].numpy()})[0] - expected[:3]).max() <= 1e-5

    from safetensors.torch import load

    tensors = load(download(client, job["id"], "safetensors").data)
    assert tensors.keys() == weights["state_dict"].keys()
    assert all(torch.equal(tensors[k], v) for k, v in weights["state_dict"].items())


def test_the_convnetjs_export_gives_the_same_classes_in_convnetjs(client, trained, test_inputs, convnetjs):  # noqa: F811
    job, weights = trained
    expected = outputs(weights, test_inputs)
    net_json = download(client, job["id"], "convnetjs").get_json()
    assert [layer["layer_type"] for layer in net_json["layers"]] == [layer["type"] for layer in weights["layers"]]
    # ConvNetJS multiplies dropout outputs by drop_prob when predicting: the next fc layer carries 1/drop_prob.
    last_fc = np.array([f["w"] for f in net_json["layers"][10]["filters"]])
    assert np.allclose(last_fc, weights["state_dict"]["layers.9.weight"].double().numpy() / 0.25, rtol=1e-12)
    theirs = convnetjs.forward(net_json, test_inputs.numpy())
    assert (theirs.argmax(1) == expected.argmax(1)).all()
    assert np.abs(theirs - expected).max() <= 1e-4


def test_the_model_card_tells_what_was_trained_and_how_to_load_each_format(client, trained):
    job, _ = trained
    card = client.get(f"/v1/jobs/{job['id']}/model/card").get_json()
    assert card["network"]["spec"] == NETWORK and card["network"]["params"] == job["network"]["params"]
    assert card["trainer"]["method"] == "adadelta" and card["budget"] == {"examples": 3000} and card["seed"] == 11
    assert card["data"]["dataset"] == "mnist" and card["result"] == job["result"] and card["init"] is None
    assert card["input"]["shape"] == [1, 24, 24] and card["output"] == {
        "shape": [10], "kind": "softmax", "description": card["output"]["description"]}
    for fmt, info in card["formats"].items():
        assert info["sha256"] == job["model"]["exports"][fmt]["sha256"]
        assert info["url"] == f"/v1/jobs/{job['id']}/model?format={fmt}" and FORMATS[fmt].suffix in info["load"]
    queued = client.post("/v1/jobs", json={**BODY, "budget": {"examples": 10**6}}).get_json()["id"]
    assert client.get(f"/v1/jobs/{queued}/model/card").status_code == 409
    assert client.get(f"/v1/jobs/{queued}/model?format=onnx").status_code == 409
    client.post(f"/v1/jobs/{queued}/cancel")


def test_convtrain_download_fetches_each_format(app, trained, tmp_path, capsys):
    from werkzeug.serving import make_server

    from service.cli.main import main

    job, _ = trained
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        base = f"http://127.0.0.1:{server.server_port}"
        for fmt in FORMATS:
            out = tmp_path / f"model.{fmt}"
            assert main(["download", job["id"], "--format", fmt, "-o", str(out), "--url", base]) == 0
            assert sha256(out.read_bytes()) == job["model"]["exports"][fmt]["sha256"]
        assert "wrote" in capsys.readouterr().out
    finally:
        server.shutdown()
        thread.join()


DEMO_DEFS = [
    {"type": "input", "out_sx": 24, "out_sy": 24, "out_depth": 1},
    {"type": "conv", "sx": 5, "filters": 8, "stride": 1, "pad": 2, "activation": "relu"},
    {"type": "pool", "sx": 2, "stride": 2},
    {"type": "conv", "sx": 5, "filters": 16, "stride": 1, "pad": 2, "activation": "relu"},
    {"type": "pool", "sx": 3, "stride": 3},
    {"type": "fc", "num_neurons": 20, "activation": "relu", "drop_prob": 0.5},
    {"type": "softmax", "num_classes": 10},
]


def test_a_job_starts_from_exactly_the_weights_of_a_convnetjs_snapshot(client, test_inputs, convnetjs):  # noqa: F811
    snapshot = convnetjs.snapshot(DEMO_DEFS)  # built and initialised by ConvNetJS, saved with toJSON
    r = client.post("/v1/jobs", json={"init": {"convnetjs": snapshot}, "budget": {"examples": 0}, "name": "from js"})
    assert r.status_code == 202, r.get_json()
    submitted = r.get_json()
    assert submitted["request"]["init"]["convnetjs"]["file"] == "init.convnetjs.json"
    assert submitted["request"]["defaults"] == {"trainer.eps": schemas.EPS_SOURCES[1e-6]}  # sgd, as in ConvNetJS 0.3.0
    assert len(json.dumps(submitted)) < 20_000, "the snapshot is kept as a file, not in the job record"
    job = wait_status(client, submitted["id"], ("succeeded", "failed"))
    assert job["status"] == "succeeded", job["error"]
    assert job["result"]["examples_seen"] == 0

    weights = torch.load(io.BytesIO(client.get(f"/v1/jobs/{job['id']}/model").data), weights_only=True)
    expected = from_convnetjs(snapshot, weights["layers"])
    assert weights["state_dict"].keys() == expected.keys()
    assert all(torch.equal(weights["state_dict"][k], v) for k, v in expected.items()), "exactly the snapshot's weights"

    # Its first evaluation is the library's: the job's test predictions, and the model on 1,000 images.
    theirs = convnetjs.forward(snapshot, test_inputs.numpy())
    shown = client.get(f"/v1/jobs/{job['id']}/predictions?limit=100").get_json()["predictions"]
    for item in shown:
        top = item["top"][0]
        assert top["class"] == theirs[item["index"]].argmax()
        assert abs(top["probability"] - theirs[item["index"]].max()) <= 1e-4
    ours = outputs(weights, test_inputs)
    assert (ours.argmax(1) == theirs.argmax(1)).all() and np.abs(ours - theirs).max() <= 1e-4

    other = example("net1-default.json", budget={"examples": 0}, init={"convnetjs": snapshot})
    r = client.post("/v1/jobs", json=other)
    assert r.status_code == 422
    assert r.get_json()["errors"][0]["path"] == "network.layers[5]", r.get_json()


def test_round_trip_through_convnetjs_keeps_the_predictions(client, trained, test_inputs):
    job, weights = trained
    net_json = download(client, job["id"], "convnetjs").get_json()
    r = client.post("/v1/jobs", json={"init": {"convnetjs": net_json}, "budget": {"examples": 0}, "name": "round trip"})
    assert r.status_code == 202, r.get_json()
    again = wait_status(client, r.get_json()["id"], ("succeeded", "failed"))
    assert again["status"] == "succeeded", again["error"]
    assert again["result"]["test_acc"] == pytest.approx(job["result"]["test_acc"], abs=1e-4)
    imported = torch.load(io.BytesIO(client.get(f"/v1/jobs/{again['id']}/model").data), weights_only=True)
    before, after = outputs(weights, test_inputs), outputs(imported, test_inputs)
    assert (before.argmax(1) == after.argmax(1)).all() and np.abs(before - after).max() <= 1e-5


def test_a_job_starts_from_another_jobs_weights(client, trained):
    job, weights = trained
    r = client.post("/v1/jobs", json={"init": {"job": job["id"]}, "budget": {"examples": 0}})
    assert r.status_code == 202, r.get_json()
    assert r.get_json()["request"]["network"] == NETWORK
    assert r.get_json()["request"]["init"] == {"job": job["id"], "sha256": job["model"]["sha256"],
                                               "file": job["model"]["file"]}  # pinned: the model cannot change
    again = wait_status(client, r.get_json()["id"], ("succeeded", "failed"))
    assert again["status"] == "succeeded", again["error"]
    copied = torch.load(io.BytesIO(client.get(f"/v1/jobs/{again['id']}/model").data), weights_only=True)
    assert all(torch.equal(copied["state_dict"][k], v) for k, v in weights["state_dict"].items())
    assert again["result"]["test_acc"] == job["result"]["test_acc"]

    r = client.post("/v1/jobs", json={**example("net2-3x3.json"), "init": {"job": job["id"]}})
    assert r.status_code == 422
    error = r.get_json()["errors"][0]
    assert error["path"] == "network.layers[1]" and f"the weights of job {job['id']}" in error["message"]
    assert client.post("/v1/jobs", json={"init": {"job": "0123abcd"}, "budget": {"examples": 1}}).status_code == 422
