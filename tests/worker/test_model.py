"""The model builder: inferred shapes equal real ones; every layer type and trainer method learns."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from service.spec import netspec
from service.config import Config
from service.spec.schemas import METHODS, load_job_request
from tests.conftest import data_dir, example
from worker.model import Net, forward_order, memory_format
from worker.trainer import Hooks, Training

HIDDEN = st.one_of(
    st.fixed_dictionaries({"type": st.just("conv"), "sx": st.integers(1, 5), "filters": st.integers(1, 6)},
                          optional={"sy": st.integers(1, 5), "stride": st.integers(1, 3), "pad": st.integers(0, 2),
                                    "activation": st.sampled_from(["relu", "sigmoid", "tanh", "maxout"]),
                                    "drop_prob": st.sampled_from([0.0, 0.3])}),
    st.fixed_dictionaries({"type": st.just("pool"), "sx": st.integers(1, 4)},
                          optional={"sy": st.integers(1, 4), "stride": st.integers(1, 3), "pad": st.integers(0, 1)}),
    st.fixed_dictionaries({"type": st.just("fc"), "num_neurons": st.integers(1, 12)},
                          optional={"activation": st.sampled_from(["relu", "tanh", "maxout"])}),
    st.fixed_dictionaries({"type": st.sampled_from(["relu", "sigmoid", "tanh", "dropout"])}),
    st.fixed_dictionaries({"type": st.just("maxout")}, optional={"group_size": st.integers(1, 3)}),
    st.fixed_dictionaries({"type": st.just("lrn"), "k": st.just(1), "n": st.sampled_from([1, 3, 5]),
                           "alpha": st.just(1e-4), "beta": st.just(0.75)}),
)
SPECS = st.builds(
    lambda size, depth, hidden, loss, n: {"layers": [
        {"type": "input", "out_sx": size[0], "out_sy": size[1], "out_depth": depth}, *hidden,
        {"type": loss, **({"num_neurons": n} if loss == "regression" else {"num_classes": n})}]},
    st.tuples(st.integers(1, 20), st.integers(1, 20)), st.integers(1, 3), st.lists(HIDDEN, max_size=6),
    st.sampled_from(["softmax", "svm", "regression"]), st.integers(1, 10))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(SPECS)
def test_inferred_shapes_equal_model_shapes(spec):
    try:
        network = netspec.analyze(spec)
    except netspec.InvalidSpec:
        return
    net = Net(network).eval()
    first = network.input
    outs = net.activations(torch.zeros(2, first["out_depth"], first["out_sy"], first["out_sx"]))
    assert len(outs) == len(network.layers)
    for layer, out in zip(network.layers, outs):
        expected = (layer["out_depth"], layer["out_sy"], layer["out_sx"])
        got = tuple(out.shape[1:]) if out.dim() == 4 else (out.shape[1], 1, 1)  # the loss layer's (N, C)
        assert got == expected, layer
    assert sum(p.numel() for p in net.parameters()) == network.params
    x = torch.randn(2, first["out_depth"], first["out_sy"], first["out_sx"])
    assert torch.equal(net(x), net.activations(x)[-2].flatten(1))  # forward's own layer order computes the same


def test_convnetjs_initialisation():
    network = netspec.analyze(example("net1-default.json")["network"])
    torch.manual_seed(0)
    net = Net(network)
    conv1, conv2 = net.layers[0], net.layers[3]
    assert conv1.bias.eq(0.1).all() and conv2.bias.eq(0.1).all()  # relu layers start at bias_pref 0.1
    fc = net.layers[6]
    assert fc.bias.eq(0.0).all()
    for module, fan_in in ((conv2, 5 * 5 * 8), (fc, 4 * 4 * 16)):
        std = module.weight.std().item()
        assert abs(std - math.sqrt(1 / fan_in)) < 0.15 * math.sqrt(1 / fan_in)


def test_svm_loss_is_convnetjs_hinge():
    network = netspec.analyze({"layers": [{"type": "input", "out_sx": 1, "out_sy": 1, "out_depth": 3},
                                          {"type": "svm", "num_classes": 3}]})
    net = Net(network)
    scores = torch.tensor([[1.0, 2.5, 0.0], [0.0, 0.0, 3.0]])
    # example 0, y=0: (2.5-1+1) + (0-1+1) = 2.5 ; example 1, y=2: max(0, 0-3+1)*2 = 0
    assert net.loss(scores, torch.tensor([0, 2])).item() == pytest.approx(2.5)


def _train(body: dict, examples: int = 5000) -> dict:
    body = {**body, "budget": {"examples": examples}, "seed": 3}
    request, network = load_job_request(body, Config())
    return Training(request, network, data_dir=data_dir(), device="cpu").run(Hooks())


NET1 = example("net1-default.json")["network"]["layers"]
INPUT, SOFTMAX = NET1[0], NET1[-1]
SMALL_CONV = {"type": "conv", "sx": 5, "filters": 8, "stride": 2, "pad": 2}


@pytest.mark.parametrize("method", METHODS)
def test_every_trainer_method_learns(method):
    trainer = {"method": method, "batch_size": 20, "l2_decay": 0.001,
               "learning_rate": {"adam": 0.001}.get(method, 0.01)}
    result = _train({"network": {"layers": NET1}, "trainer": trainer})
    assert result["test_acc"] > 0.5, result


LAYER_CASES = {
    "conv-pool-fc": [SMALL_CONV, {"type": "pool", "sx": 2}, {"type": "fc", "num_neurons": 20}],
    "relu": [SMALL_CONV, {"type": "relu"}],
    "sigmoid": [SMALL_CONV, {"type": "sigmoid"}],
    "tanh": [SMALL_CONV, {"type": "tanh"}],
    "maxout": [{**SMALL_CONV, "filters": 16}, {"type": "maxout", "group_size": 2}],
    "dropout": [SMALL_CONV, {"type": "relu"}, {"type": "dropout", "drop_prob": 0.2}],
    "lrn": [SMALL_CONV, {"type": "lrn", "k": 1, "n": 3, "alpha": 0.0001, "beta": 0.75}],
    "svm": [SMALL_CONV, {"type": "relu"}, "svm"],
    "regression": [SMALL_CONV, {"type": "relu"}, "regression"],
}


@pytest.mark.parametrize("case", LAYER_CASES)
def test_every_layer_type_learns(case):
    layers = list(LAYER_CASES[case])
    loss = SOFTMAX
    if layers[-1] == "svm":
        layers, loss = layers[:-1], {"type": "svm", "num_classes": 10}
    elif layers[-1] == "regression":
        layers, loss = layers[:-1], {"type": "regression", "num_neurons": 10}
    body = {"network": {"layers": [INPUT, *layers, loss]},
            "trainer": {"method": "adadelta", "batch_size": 20, "l2_decay": 0.001}}
    result = _train(body)
    assert result["test_acc"] > 0.3, result  # chance is 0.1


@pytest.mark.parametrize("kinds,order", [
    (["conv", "relu", "pool", "conv", "relu", "pool", "fc"], [0, 2, 1, 3, 5, 4, 6]),
    (["conv", "relu", "pool", "pool"], [0, 2, 1, 3]),
    (["fc", "relu", "fc"], [0, 1, 2]),
    (["relu", "pool"], [1, 0]),
    (["pool", "relu"], [0, 1]),
])
def test_forward_order_runs_a_relu_after_the_max_pool_it_precedes(kinds, order):
    assert forward_order(kinds) == order


def test_forward_equals_the_layers_in_spec_order_gradients_included():
    """Pooling before the relu must change nothing, also where a whole window is negative or padded."""
    network = netspec.analyze({"layers": [
        {"type": "input", "out_sx": 9, "out_sy": 9, "out_depth": 2},
        {"type": "conv", "sx": 3, "filters": 4, "pad": 1, "activation": "relu", "bias_pref": -0.3},
        {"type": "pool", "sx": 3, "stride": 2, "pad": 1},
        {"type": "softmax", "num_classes": 3}]})
    torch.manual_seed(1)
    net = Net(network).double()
    x = torch.randn(5, 2, 9, 9, dtype=torch.float64)
    labels = torch.tensor([0, 1, 2, 0, 1])
    in_order = net.activations(x)[-2].flatten(1)
    assert torch.equal(net(x), in_order)
    grads = [torch.autograd.grad(net.loss(scores, labels), list(net.parameters())) for scores in (net(x), in_order)]
    assert all(torch.equal(a, b) for a, b in zip(*grads))


@pytest.mark.parametrize("layers,expected", [
    (NET1, torch.channels_last),
    ([{"type": "input", "out_sx": 1, "out_sy": 1, "out_depth": 8}, {"type": "fc", "num_neurons": 4}, SOFTMAX],
     torch.contiguous_format),
    ([INPUT, {"type": "fc", "num_neurons": 4}, SOFTMAX], torch.contiguous_format),
    ([{"type": "input", "out_sx": 1, "out_sy": 1, "out_depth": 8}, {"type": "conv", "sx": 1, "filters": 4}, SOFTMAX],
     torch.contiguous_format),
])
def test_channels_last_only_where_a_conv_or_pool_sees_a_spatial_input(layers, expected):
    assert memory_format(netspec.analyze({"layers": layers})) == expected
