"""Exports compute what the trained model computes; ConvNetJS JSON goes both ways through the real library."""

from __future__ import annotations

import io
import json
import warnings

import numpy as np
import pytest
import torch

from service.spec import convnetjs_snapshot
from service.config import Config
from service.spec.netspec import InvalidSpec, analyze
from service.spec.schemas import load_job_request
from tests.conftest import data_dir
from tests.convnetjs_node import convnetjs  # noqa: F401 -- the fixture
from worker import data, exports
from worker.convnetjs_io import NotRepresentable, from_convnetjs, to_convnetjs
from worker.initial import initial_state
from worker.model import Net
from worker.trainer import Training

INPUT = {"type": "input", "out_sx": 24, "out_sy": 24, "out_depth": 1}
# Every layer type and option that changes the forward pass, in small networks.
NETWORKS = {
    "net1 (the demo's)": [INPUT, {"type": "conv", "sx": 5, "filters": 8, "stride": 1, "pad": 2, "activation": "relu"},
                          {"type": "pool", "sx": 2, "stride": 2},
                          {"type": "conv", "sx": 5, "filters": 16, "stride": 1, "pad": 2, "activation": "relu"},
                          {"type": "pool", "sx": 3, "stride": 3}, {"type": "softmax", "num_classes": 10}],
    "strides, pads, a non-square window, lrn": [
        {"type": "input", "out_sx": 24, "out_sy": 20, "out_depth": 2},
        {"type": "conv", "sx": 5, "sy": 3, "filters": 6, "stride": 2, "pad": 2, "activation": "relu"},
        {"type": "lrn", "k": 1, "n": 3, "alpha": 0.1, "beta": 0.75},
        {"type": "pool", "sx": 3, "stride": 2, "pad": 1}, {"type": "softmax", "num_classes": 10}],
    "maxout, tanh, sigmoid, dropouts": [
        INPUT, {"type": "conv", "sx": 3, "filters": 6, "activation": "maxout", "group_size": 3},
        {"type": "pool", "sx": 2}, {"type": "dropout", "drop_prob": 0.2},
        {"type": "fc", "num_neurons": 20, "activation": "tanh", "drop_prob": 0.3},
        {"type": "fc", "num_neurons": 12, "activation": "sigmoid"}, {"type": "softmax", "num_classes": 10}],
    "fc after pool with relu and dropout between": [
        INPUT, {"type": "conv", "sx": 5, "filters": 4, "activation": "relu", "drop_prob": 0.5},
        {"type": "pool", "sx": 2}, {"type": "fc", "num_neurons": 16, "activation": "relu"},
        {"type": "svm", "num_classes": 10}],
    "regression": [INPUT, {"type": "fc", "num_neurons": 8, "activation": "sigmoid"}, {"type": "regression", "num_neurons": 3}],
}


def trained_like(layers: list[dict], seed: int = 0) -> dict:
    """A model file's contents ({"state_dict", "network", "layers"}) with weights far from their initialisation."""
    spec = {"layers": layers}
    network = analyze(spec)
    torch.manual_seed(seed)
    net = Net(network)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(torch.randn_like(p) * 0.2)
    return {"state_dict": net.state_dict(), "network": spec, "layers": network.layers}


def reference(weights: dict, x: torch.Tensor) -> np.ndarray:
    with torch.no_grad():
        return exports.Predictor(exports.load_net(weights))(x).numpy()


def inputs(weights: dict, n: int, seed: int = 1) -> torch.Tensor:
    first = weights["layers"][0]
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(n, first["out_depth"], first["out_sy"], first["out_sx"], generator=generator) - 0.5


@pytest.mark.parametrize("name", NETWORKS)
def test_tensor_exports_equal_the_model(name):
    weights = trained_like(NETWORKS[name])
    files = exports.export_all(weights)
    assert all(isinstance(files[f], bytes) for f in ("pt", "safetensors", "torchscript", "onnx")), files
    import onnxruntime
    from safetensors import safe_open

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        scripted = torch.jit.load(io.BytesIO(files["torchscript"]))
    session = onnxruntime.InferenceSession(files["onnx"], providers=["CPUExecutionProvider"])
    for n in (1, 7):  # the batch dimension is not baked in
        x = inputs(weights, n)
        expected = reference(weights, x)
        with torch.no_grad():
            assert np.abs(scripted(x).numpy() - expected).max() <= 1e-5
        assert np.abs(session.run(None, {"input": x.numpy()})[0] - expected).max() <= 1e-5

    saved = torch.load(io.BytesIO(files["pt"]), weights_only=True)
    assert saved["network"] == weights["network"] and saved["layers"] == weights["layers"]
    with open_safetensors(files["safetensors"], safe_open) as f:
        assert set(f.keys()) == set(weights["state_dict"])
        assert all(torch.equal(f.get_tensor(k), v) for k, v in weights["state_dict"].items())
        assert json.loads(f.metadata()["network"]) == weights["network"]


class open_safetensors:
    """safe_open reads files only: spill the bytes to a temporary file for the duration."""

    def __init__(self, blob: bytes, safe_open):
        import tempfile

        self.file = tempfile.NamedTemporaryFile(suffix=".safetensors")
        self.file.write(blob)
        self.file.flush()
        self.safe_open = safe_open

    def __enter__(self):
        self.handle = self.safe_open(self.file.name, "pt")
        return self.handle.__enter__()

    def __exit__(self, *exc):
        self.handle.__exit__(*exc)
        self.file.close()


@pytest.mark.parametrize("name", NETWORKS)
def test_convnetjs_export_computes_the_same_in_convnetjs(name, convnetjs):  # noqa: F811
    weights = trained_like(NETWORKS[name])
    x = inputs(weights, 40)
    theirs = convnetjs.forward(exports.to_convnetjs_json(weights), x.numpy())
    ours = reference(weights, x)
    assert theirs.shape == ours.shape
    assert np.abs(theirs - ours).max() <= 1e-5
    if weights["layers"][-1]["type"] != "regression":
        assert (theirs.argmax(1) == ours.argmax(1)).all()


def test_convnetjs_json_round_trips_exactly():
    for name, layers in NETWORKS.items():
        weights = trained_like(layers)
        snapshot = json.loads(exports.to_convnetjs_json(weights))
        state = from_convnetjs(snapshot, weights["layers"])
        for key, value in weights["state_dict"].items():  # dropout factors go out and back in float64
            torch.testing.assert_close(state[key], value, rtol=1e-7, atol=0, msg=f"{name}: {key}")


def test_convnetjs_layout_is_hwc():
    """One conv filter and one fc weight placed by hand: ConvNetJS indices ((sx*y)+x)*depth+d."""
    layers = [{"type": "input", "out_sx": 3, "out_sy": 2, "out_depth": 2}, {"type": "conv", "sx": 3, "sy": 2, "filters": 1},
              {"type": "softmax", "num_classes": 2}]
    weights = trained_like(layers)
    conv = weights["state_dict"]["layers.0.weight"]  # (1, C=2, kh=2, kw=3)
    conv.copy_(torch.arange(12, dtype=torch.float32).reshape(1, 2, 2, 3))
    out = to_convnetjs(weights["layers"], weights["state_dict"])
    w = out["layers"][1]["filters"][0]["w"]
    for y in range(2):
        for x in range(3):
            for d in range(2):
                assert w[((3 * y) + x) * 2 + d] == conv[0, d, y, x]


def test_dropout_without_a_foldable_next_layer_has_no_convnetjs_export():
    layers = [INPUT, {"type": "fc", "num_neurons": 8}, {"type": "dropout", "drop_prob": 0.5}, {"type": "tanh"},
              {"type": "softmax", "num_classes": 10}]
    weights = trained_like(layers)
    with pytest.raises(NotRepresentable, match="followed by tanh"):
        to_convnetjs(weights["layers"], weights["state_dict"])
    files = exports.export_all(weights)
    assert "followed by tanh" in files["convnetjs"] and isinstance(files["onnx"], bytes)
    zero = trained_like([INPUT, {"type": "dropout", "drop_prob": 0.0}, {"type": "softmax", "num_classes": 10}])
    with pytest.raises(NotRepresentable, match="drop_prob 0"):
        to_convnetjs(zero["layers"], zero["state_dict"])


DEFS = [INPUT, {"type": "conv", "sx": 5, "filters": 8, "stride": 1, "pad": 2, "activation": "relu"},
        {"type": "pool", "sx": 2, "stride": 2}, {"type": "conv", "sx": 3, "filters": 6, "activation": "maxout"},
        {"type": "fc", "num_neurons": 24, "activation": "relu", "drop_prob": 0.4},
        {"type": "softmax", "num_classes": 10}]


def test_a_snapshot_made_by_convnetjs_imports_with_its_forward(convnetjs):  # noqa: F811
    snapshot = convnetjs.snapshot(DEFS)
    assert isinstance(snapshot["layers"][1]["filters"][0]["w"], dict), "JSON.stringify writes Float64Arrays as objects"
    spec, network = convnetjs_snapshot.to_network(snapshot)
    assert [layer["type"] for layer in network.layers] == [layer["layer_type"] for layer in snapshot["layers"]]
    net = Net(network).eval()
    net.load_state_dict(from_convnetjs(snapshot, network.layers))
    x = torch.rand(30, 1, 24, 24, generator=torch.Generator().manual_seed(3)) - 0.5
    with torch.no_grad():
        ours = net.output(net(x)).numpy()
    assert np.abs(convnetjs.forward(snapshot, x.numpy()) - ours).max() <= 1e-5


def test_a_job_starts_from_a_snapshot_and_a_zero_budget_evaluates_it(convnetjs):  # noqa: F811
    """In process, as `convtrain train` runs it: the network comes from the snapshot, and test images agree."""
    snapshot = convnetjs.snapshot(DEFS)
    request, network = load_job_request({"init": {"convnetjs": snapshot}, "budget": {"examples": 0}, "seed": 1},
                                        Config())
    training = Training(request, network, data_dir=data_dir(), device="cpu")
    expected = from_convnetjs(snapshot, network.layers)
    assert all(torch.equal(training.model.state_dict()[k], v) for k, v in expected.items())
    result = training.run()
    assert result["examples_seen"] == 0 and result["test_acc"] is not None
    test = data.load("mnist", data_dir()).test
    images = data.center_crop(test.images[:200], 24, 24)
    theirs = convnetjs.forward(snapshot, data.to_input(images).numpy())
    ours = training.probabilities(test.images[:200]).numpy()
    assert np.abs(theirs - ours).max() <= 1e-5
    assert (theirs.argmax(1) == ours.argmax(1)).all()


def test_initial_weights_of_another_shape_are_refused():
    weights = trained_like(NETWORKS["net1 (the demo's)"])
    other = analyze({"layers": NETWORKS["fc after pool with relu and dropout between"]})
    snapshot = json.loads(exports.to_convnetjs_json(weights))
    with pytest.raises(ValueError):
        from_convnetjs(snapshot, other.layers)
    with pytest.raises(ValueError, match="artifact store"):
        initial_state({"init": {"job": "0123abcd"}}, other.layers)


def test_a_broken_snapshot_is_refused_with_the_path_of_the_problem():
    weights = trained_like(NETWORKS["net1 (the demo's)"])
    snapshot = json.loads(exports.to_convnetjs_json(weights))
    snapshot["layers"][4]["filters"][3]["w"] = snapshot["layers"][4]["filters"][3]["w"][:-1]
    with pytest.raises(InvalidSpec) as bad:
        convnetjs_snapshot.to_network(snapshot)
    assert bad.value.errors[0].path == "init.convnetjs.layers[4].filters[3].w"


def test_other_dropout_rates_in_the_network_still_start_from_what_the_snapshot_computes(convnetjs):  # noqa: F811
    snapshot = convnetjs.snapshot(DEFS)
    layers = [dict(layer) for layer in DEFS]
    layers[4]["drop_prob"] = 0.1  # the snapshot's is 0.4: weights carry over, the snapshot's factor applies
    request, network = load_job_request({"network": {"layers": layers}, "init": {"convnetjs": snapshot},
                                         "budget": {"examples": 0}}, Config())
    net = Net(network).eval()
    net.load_state_dict(initial_state(request, network.layers))
    x = torch.rand(20, 1, 24, 24, generator=torch.Generator().manual_seed(4)) - 0.5
    with torch.no_grad():
        ours = net.output(net(x)).numpy()
    assert np.abs(convnetjs.forward(snapshot, x.numpy()) - ours).max() <= 1e-5
