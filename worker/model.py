"""Desugared ConvNetJS layers (from service.spec.netspec) as a PyTorch module."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from service.spec.netspec import Network


class Maxout(nn.Module):
    """ConvNetJS maxout: the max over consecutive groups of channels (left-over channels are dropped)."""

    def __init__(self, group_size: int, out_depth: int):
        super().__init__()
        self.group_size, self.out_depth = group_size, out_depth

    def forward(self, x):
        n = x.shape[0]
        h, w = x.shape[2:]
        grouped = x[:, : self.out_depth * self.group_size].reshape(n, self.out_depth, self.group_size, h, w)
        return grouped.amax(2)


class FullyConnected(nn.Linear):
    """ConvNetJS fc: sees its input as one vector (CHW order here) and outputs a 1x1xN volume."""

    def forward(self, x):
        return super().forward(x.flatten(1))[:, :, None, None]


def _build(layer: dict) -> nn.Module:
    kind = layer["type"]
    if kind == "conv":
        conv = nn.Conv2d(layer["in_depth"], layer["filters"], (layer["sy"], layer["sx"]),
                         stride=layer["stride"], padding=layer["pad"])
        _init(conv, layer["sx"] * layer["sy"] * layer["in_depth"], layer["bias_pref"])
        return conv
    if kind == "fc":
        fan_in = layer["in_sx"] * layer["in_sy"] * layer["in_depth"]
        fc = FullyConnected(fan_in, layer["num_neurons"])
        _init(fc, fan_in, layer["bias_pref"])
        return fc
    if kind == "pool":
        return nn.MaxPool2d((layer["sy"], layer["sx"]), stride=layer["stride"], padding=layer["pad"])
    if kind == "maxout":
        return Maxout(layer["group_size"], layer["out_depth"])
    if kind == "lrn":
        return nn.LocalResponseNorm(layer["n"], alpha=layer["alpha"], beta=layer["beta"], k=layer["k"])
    if kind == "dropout":
        return nn.Dropout(layer["drop_prob"])
    return {"relu": nn.ReLU, "sigmoid": nn.Sigmoid, "tanh": nn.Tanh}.get(kind, nn.Identity)()


def _init(module: nn.Module, fan_in: int, bias_pref: float) -> None:
    """ConvNetJS initialisation: weights ~ N(0, sqrt(1/fan_in)), biases = bias_pref."""
    with torch.no_grad():
        module.weight.normal_(0.0, math.sqrt(1.0 / fan_in))
        module.bias.fill_(bias_pref)


def forward_order(kinds: list[str]) -> list[int]:
    """The order `Net.forward` runs its layers in: each relu directly before a max pool runs after it instead.

    max_pool(relu(x)) and relu(max_pool(x)) are equal, and so are their gradients (relu is monotonic
    and zeroes exactly what it clips, including a window with no positive value), while the relu
    then touches a quarter (2x2 pooling) or a ninth (3x3) of the values.
    """
    order = list(range(len(kinds)))
    for i in range(len(kinds) - 1):
        if kinds[i] == "relu" and kinds[i + 1] == "pool" and order[i] == i:
            order[i], order[i + 1] = i + 1, i
    return order


def memory_format(network: Network) -> torch.memory_format:
    """How to lay out the activations and conv weights of `network` for training and evaluation.

    channels_last (NHWC) where a conv or pool layer sees a spatial input: oneDNN's convolutions and
    max pooling are much faster in it on a CPU (pooling about 5x); GPUs get cuDNN's NHWC kernels (the
    same choice, unmeasured here). For fully connected nets and 1x1 inputs both layouts are the same
    bytes, so those stay NCHW.
    """
    spatial = any(layer["type"] in ("conv", "pool") and layer["in_sx"] * layer["in_sy"] > 1
                  for layer in network.layers)
    return torch.channels_last if spatial else torch.contiguous_format


class Net(nn.Module):
    """One module per desugared layer; forward returns the scores that feed the loss layer."""

    def __init__(self, network: Network):
        super().__init__()
        self.spec = network.layers
        self.loss_type = network.output["type"]
        # The input layer is an identity and the loss layer is applied by `loss`/`probabilities`.
        self.layers = nn.ModuleList(_build(layer) for layer in network.layers[1:-1])
        self._forward = [self.layers[i] for i in forward_order([layer["type"] for layer in network.layers[1:-1]])]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self._forward:
            x = layer(x)
        return x.flatten(1)

    def activations(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Each desugared layer's output, input and loss layer included (for layer views)."""
        outs = [x]
        for layer in self.layers:
            x = layer(x)
            outs.append(x)
        outs.append(self.output(x.flatten(1)))
        return outs

    def output(self, scores: torch.Tensor) -> torch.Tensor:
        """What the loss layer outputs in ConvNetJS: probabilities for softmax, the scores otherwise."""
        return torch.softmax(scores, 1) if self.loss_type == "softmax" else scores

    def loss(self, scores: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """The loss summed over the batch, as ConvNetJS's backward accumulates it."""
        if self.loss_type == "softmax":
            return F.cross_entropy(scores, labels, reduction="sum")
        if self.loss_type == "svm":
            # Multi-class hinge with margin 1, summed over the wrong classes.
            correct = scores.gather(1, labels[:, None])
            margins = (scores - correct + 1.0).clamp_min(0.0)
            return margins.sum() - scores.shape[0] * 1.0  # the true class contributes exactly the margin
        target = F.one_hot(labels, scores.shape[1]).to(scores.dtype)
        return 0.5 * ((scores - target) ** 2).sum()

    def param_groups(self) -> list[dict]:
        """Parameters grouped by ConvNetJS decay multipliers; biases never decay."""
        groups: dict[tuple, list] = {}
        for layer, module in zip(self.spec[1:-1], self.layers):
            if layer["type"] not in ("conv", "fc"):
                continue
            weights = [p for name, p in module.named_parameters() if name.endswith("weight")]
            biases = [p for name, p in module.named_parameters() if name.endswith("bias")]
            groups.setdefault((layer["l1_decay_mul"], layer["l2_decay_mul"]), []).extend(weights)
            groups.setdefault((0.0, 0.0), []).extend(biases)
        return [{"params": ps, "l1_decay_mul": l1, "l2_decay_mul": l2} for (l1, l2), ps in groups.items() if ps]
