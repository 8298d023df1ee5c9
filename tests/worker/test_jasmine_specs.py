"""ConvNetJS's own Jasmine specs, ported to the engine's network and trainer.

From karpathy/convnetjs, test/jasmine/spec/NeuralNetSpec.js ("Simple Fully-Connected Neural Net
Classifier"): the same net (2 inputs, two fc layers of 5 tanh neurons, softmax over 3 classes) and
the same trainer options, in float64 as ConvNetJS computes.
"""

from __future__ import annotations

import random

import pytest
import torch

from service.spec import netspec
from worker.model import Net
from worker.optim import ConvNetJSOptimizer

LAYER_DEFS = [
    {"type": "input", "out_sx": 1, "out_sy": 1, "out_depth": 2},
    {"type": "fc", "num_neurons": 5, "activation": "tanh"},
    {"type": "fc", "num_neurons": 5, "activation": "tanh"},
    {"type": "softmax", "num_classes": 3},
]
TRAINER = {"learning_rate": 0.0001, "momentum": 0.0, "batch_size": 1, "l2_decay": 0.0}


@pytest.fixture
def net() -> Net:
    torch.manual_seed(0)
    return Net(netspec.analyze({"layers": LAYER_DEFS})).double()


def point(values) -> torch.Tensor:
    """A convnetjs.Vol([a, b]): a 1x1x2 volume, as a batch of one."""
    return torch.tensor(values, dtype=torch.float64).view(1, 2, 1, 1)


def probabilities(net: Net, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return net.output(net(x))[0]


def train(net: Net, trainer: ConvNetJSOptimizer, x: torch.Tensor, label: int) -> None:
    """trainer.train(x, label): forward, backward, and the update batch_size (1) calls it for."""
    trainer.begin_batch()
    net.loss(net(x), torch.tensor([label])).backward()
    assert trainer.step(1)


def test_should_be_possible_to_initialize():
    # "tanh are their own layers. Softmax gets its own fully connected layer."
    assert len(netspec.analyze({"layers": LAYER_DEFS}).layers) == 7


def test_should_forward_prop_volumes_to_probabilities(net):
    w = probabilities(net, point([0.2, -0.3]))
    assert w.shape == (3,)  # 3 classes output
    assert all(0 < p < 1 for p in w.tolist())
    assert float(w.sum()) == pytest.approx(1.0, abs=1e-12)


def test_should_increase_probabilities_for_ground_truth_class_when_trained(net):
    # "lets test 100 random point and label settings"; l1 and l2 are off, and the step is small.
    trainer = ConvNetJSOptimizer(net.param_groups(), method="sgd", **TRAINER)
    rng = random.Random(1)
    for _ in range(100):
        x = point([rng.random() * 2 - 1, rng.random() * 2 - 1])
        gti = rng.randrange(3)
        before = probabilities(net, x)[gti]
        train(net, trainer, x, gti)
        assert probabilities(net, x)[gti] > before


@pytest.mark.parametrize("seed", range(5))
def test_should_compute_correct_gradient_at_data(net, seed):
    # The analytic gradient is the one a training step computes. The spec takes the numeric one after
    # that step's update; with an input gradient this small, the update alone can move it by a few
    # percent, so here it is taken at the weights the analytic one saw.
    trainer = ConvNetJSOptimizer(net.param_groups(), method="sgd", **TRAINER)
    rng = random.Random(seed)
    x = point([rng.random() * 2 - 1, rng.random() * 2 - 1])
    gti = rng.randrange(3)  # ground truth index
    label = torch.tensor([gti])
    delta = 0.000001
    grad_numeric = []
    with torch.no_grad():
        for i in range(2):
            shifted = x.clone()
            shifted.view(-1)[i] += delta
            c0 = net.loss(net(shifted), label).item()
            shifted.view(-1)[i] -= 2 * delta
            c1 = net.loss(net(shifted), label).item()
            grad_numeric.append((c0 - c1) / (2 * delta))
    x.requires_grad_(True)
    train(net, trainer, x, gti)  # computes gradients at all layers, and at x
    for i, numeric in enumerate(grad_numeric):
        analytic = x.grad.view(-1)[i].item()
        rel_error = abs(analytic - numeric) / abs(analytic + numeric)
        assert rel_error < 1e-2, (i, numeric, analytic)
