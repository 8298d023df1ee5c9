"""The engine's training against ConvNetJS's own SGDTrainer, weight by weight, in float64.

From one snapshot (the engine's initial weights exported as ConvNetJS JSON) the engine
(worker.trainer.Training) and the real trainer of the npm package convnetjs 0.3.0, run under
Node.js, train on the same examples in the same order (the engine's own crops, handed to
ConvNetJS as its inputs); every weight must agree within 1e-9. The cases cover batch sizes 1, 5
and 20, an incomplete last batch and a live batch-size change. adam and nesterov, which 0.3.0
lacks, are checked against a pure-Python transcription of the later upstream trainer instead.

Each case prints its largest weight difference (pytest -s shows them).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from service.config import Config
from service.spec.schemas import load_job_request
from tests.conftest import data_dir
from tests.convnetjs_node import convnetjs  # noqa: F401 -- the fixture
from worker.convnetjs_io import to_convnetjs
from worker.model import Net
from worker.trainer import Hooks, Training

TOLERANCE = 1e-9
# Small enough for a few hundred examples in seconds, and every kind of layer the seed's nets use: a conv
# on random 16x16 crops of MNIST, relu, max pooling, an fc after the conv (ConvNetJS flattens HWC there).
NETWORK = {"layers": [
    {"type": "input", "out_sx": 16, "out_sy": 16, "out_depth": 1},
    {"type": "conv", "sx": 5, "filters": 4, "stride": 2, "pad": 2, "activation": "relu"},
    {"type": "pool", "sx": 2, "stride": 2},
    {"type": "fc", "num_neurons": 10, "activation": "tanh"},
    {"type": "softmax", "num_classes": 10},
]}
DECAY = {"l1_decay": 0.001, "l2_decay": 0.002}
# name: (batch_size, examples, live change: (applied at the first batch end at or past this k, the change)).
SCENARIOS = {
    "batch-1": (1, 60, None),
    "batch-5": (5, 150, None),
    "batch-20-incomplete-last": (20, 205, None),
    # Changed at k = 65, ConvNetJS's next update comes at k = 80 and divides 15 examples' gradient by 20;
    # the budget then ends 5 examples past the last update.
    "live-change-5-to-20": (5, 185, (63, {"batch_size": 20, "l2_decay": 0.003})),
}
NODE_METHODS = {"sgd-momentum-0": ("sgd", 0.0), "sgd-momentum-0.9": ("sgd", 0.9), "adagrad": ("adagrad", 0.9),
                "adadelta": ("adadelta", 0.9), "windowgrad": ("windowgrad", 0.9)}


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """One torch thread: on these tiny tensors a second thread only adds waits (and a loaded machine makes them long)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


class Recorder:
    """A training's batch stream that keeps every batch it hands out, to hand the same inputs to ConvNetJS."""

    def __init__(self, stream):
        self.stream, self.inputs, self.labels = stream, [], []

    def next(self, n):
        x, y = self.stream.next(n)
        self.inputs.append(x.clone())
        self.labels.append(y.clone())
        return x, y

    def __getattr__(self, name):
        return getattr(self.stream, name)


class EngineRun:
    """One float64 run of the engine: its initial and final weights as ConvNetJS JSON, and what it trained on."""

    def __init__(self, method: str, momentum: float, scenario: str):
        batch_size, examples, change = SCENARIOS[scenario]
        body = {"network": NETWORK, "budget": {"examples": examples}, "seed": 5,
                "trainer": {"method": method, "momentum": momentum, "batch_size": batch_size, **DECAY},
                "data": {"validation_fraction": 0.0}}
        request, network = load_job_request(body, Config())
        self.trainer = dict(request["trainer"])  # eps and ro as the request fills them in
        self.layers = network.layers
        run = Training(request, network, data_dir=data_dir(), device="cpu", dtype=torch.float64)
        self.network = network
        self.initial = to_convnetjs(self.layers, run.model.state_dict())
        self.initial_state = {k: v.detach().clone(memory_format=torch.contiguous_format)
                              for k, v in run.model.state_dict().items()}
        self.initial_params = [p.detach().flatten().tolist() for g in run.model.param_groups() for p in g["params"]]
        run.stream = recorder = Recorder(run.stream)
        self.changes: dict[int, dict] = {}
        pending = [change] if change else []

        def changes():
            if pending and run.examples >= pending[0][0]:
                self.changes[run.examples] = pending[0][1]
                return pending.pop()[1]
            return None

        run.run(Hooks(trainer_changes=changes, poll_seconds=0))
        assert run.examples == examples and not pending
        self.k = run.optimizer.k
        self.final = to_convnetjs(self.layers, run.model.state_dict())
        # The same weights per parameter, in Net.param_groups() order, for the Python transcription.
        self.network_param_groups = [p.detach().clone() for g in run.model.param_groups() for p in g["params"]]
        self.inputs = torch.cat(recorder.inputs)
        self.labels = torch.cat(recorder.labels)
        assert self.inputs.dtype == torch.float64 and len(self.inputs) == examples


def weights(net_json: dict) -> list[list[float]]:
    """Every weighted layer's filters and biases, each as one list in ConvNetJS's order."""
    out = []
    for layer in net_json["layers"]:
        if layer is None or "filters" not in layer:
            continue
        filters, biases = layer["filters"], layer["biases"]
        out.append([w for f in filters for w in (f["w"] if isinstance(f, dict) else f)])
        out.append(list(biases["w"] if isinstance(biases, dict) else biases))
    return out


def max_difference(ours: dict, theirs: dict) -> float:
    a, b = weights(ours), weights(theirs)
    assert [len(x) for x in a] == [len(x) for x in b]
    return max(float(np.max(np.abs(np.array(x) - np.array(y)))) for x, y in zip(a, b))


def report(label: str, difference: float) -> str:
    line = f"{label}: largest weight difference {difference:.3g} (tolerance {TOLERANCE:g})"
    print("\n" + line)
    return line


@pytest.mark.parametrize("scenario", SCENARIOS)
@pytest.mark.parametrize("case", NODE_METHODS)
def test_engine_equals_convnetjs_trainer(convnetjs, case, scenario):  # noqa: F811
    run = EngineRun(*NODE_METHODS[case], scenario)
    theirs = convnetjs.train(run.initial, run.inputs.numpy(), run.labels.tolist(), run.trainer, run.changes)
    difference = max_difference(run.final, theirs)
    line = report(f"convnetjs 0.3.0 {case}, {scenario}", difference)
    assert theirs["k"] == run.k
    assert difference < TOLERANCE, line
    assert max_difference(run.initial, theirs) > 1e-3  # the weights did move: the comparison is not vacuous


class UpstreamTrainer:
    """The SGDTrainer of karpathy/convnetjs's master (src/convnet_trainers.js, commit 4c3358a), in Python.

    Transcribed from Trainer.prototype.train (lines 34-150): k counts examples (line 51), an update
    comes when k % batch_size == 0 (line 52), gij = (l2grad + l1grad + g) / batch_size with
    l1grad = l1_decay * (p > 0 ? 1 : -1) (lines 86-91), then adam (lines 95-102) or nesterov
    (lines 120-124), and the gradients are zeroed (line 137). Options as in its constructor
    (lines 10-20); every one is passed explicitly here.
    """

    def __init__(self, params: list[tuple[list[float], float, float]], options: dict):
        self.params = params  # (values, l1_decay_mul, l2_decay_mul) per parameter list
        self.grads = [[0.0] * len(p) for p, _, _ in params]
        self.gsum = [[0.0] * len(p) for p, _, _ in params]
        self.xsum = [[0.0] * len(p) for p, _, _ in params]
        self.k = 0
        self.__dict__.update(options)

    def train(self, example_grads: list[list[float]]) -> bool:
        """Accumulate one example's gradient (what net.backward leaves in the layers' dw); update when due."""
        for acc, g in zip(self.grads, example_grads):
            for j, value in enumerate(g):
                acc[j] += value
        self.k += 1
        if self.k % self.batch_size != 0:
            return False
        for i, (p, l1_decay_mul, l2_decay_mul) in enumerate(self.params):
            g, gsumi, xsumi = self.grads[i], self.gsum[i], self.xsum[i]
            l2_decay, l1_decay = self.l2_decay * l2_decay_mul, self.l1_decay * l1_decay_mul
            for j in range(len(p)):
                l1grad = l1_decay * (1 if p[j] > 0 else -1)
                l2grad = l2_decay * p[j]
                gij = (l2grad + l1grad + g[j]) / self.batch_size
                if self.method == "adam":
                    gsumi[j] = gsumi[j] * self.beta1 + (1 - self.beta1) * gij
                    xsumi[j] = xsumi[j] * self.beta2 + (1 - self.beta2) * gij * gij
                    bias_corr1 = gsumi[j] * (1 - math.pow(self.beta1, self.k))
                    bias_corr2 = xsumi[j] * (1 - math.pow(self.beta2, self.k))
                    dx = -self.learning_rate * bias_corr1 / (math.sqrt(bias_corr2) + self.eps)
                elif self.method == "nesterov":
                    dx = gsumi[j]
                    gsumi[j] = gsumi[j] * self.momentum + self.learning_rate * gij
                    dx = self.momentum * dx - (1.0 + self.momentum) * gsumi[j]
                else:  # sgd with momentum: the harness check below
                    dx = self.momentum * gsumi[j] - self.learning_rate * gij
                    gsumi[j] = dx
                p[j] += dx
                g[j] = 0.0
        return True


def upstream_run(run: EngineRun) -> list[list[float]]:
    """The upstream trainer from run's initial weights on run's examples; per-example gradients from a float64 Net."""
    net = Net(run.network).double()
    net.load_state_dict(run.initial_state)
    groups = net.param_groups()
    tensors = [p for group in groups for p in group["params"]]
    trainer = UpstreamTrainer([(p.detach().flatten().tolist(), g["l1_decay_mul"], g["l2_decay_mul"])
                               for g in groups for p in g["params"]], run.trainer)
    for i, (x, y) in enumerate(zip(run.inputs, run.labels)):
        trainer.__dict__.update(run.changes.get(i, {}))
        grads = torch.autograd.grad(net.loss(net(x[None]), y[None]), tensors)
        if trainer.train([g.flatten().tolist() for g in grads]):
            with torch.no_grad():
                for tensor, (values, _, _) in zip(tensors, trainer.params):
                    tensor.copy_(torch.tensor(values, dtype=torch.float64).view_as(tensor))
    assert trainer.k == run.k
    return [values for values, _, _ in trainer.params]


# sgd with momentum checks the harness itself: the transcription must agree with real ConvNetJS there too.
UPSTREAM_METHODS = {"adam": ("adam", 0.9), "nesterov": ("nesterov", 0.9), "sgd-momentum-0.9": ("sgd", 0.9)}


@pytest.mark.parametrize("scenario", SCENARIOS)
@pytest.mark.parametrize("case", UPSTREAM_METHODS)
def test_engine_equals_upstream_trainer_transcription(case, scenario):
    run = EngineRun(*UPSTREAM_METHODS[case], scenario)
    theirs = upstream_run(run)
    groups = run.network_param_groups
    ours = [p.flatten().tolist() for p in groups]
    difference = max(float(np.max(np.abs(np.array(a) - np.array(b)))) for a, b in zip(ours, theirs))
    moved = max(float(np.max(np.abs(np.array(a) - np.array(b)))) for a, b in zip(ours, run.initial_params))
    line = report(f"upstream transcription {case}, {scenario}", difference)
    assert difference < TOLERANCE, line
    assert moved > 1e-3
