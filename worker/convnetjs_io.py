"""Trained weights to and from ConvNetJS's JSON (what `net.toJSON()` writes and `net.fromJSON` reads).

Two differences between the libraries are handled here:
- Layout. A ConvNetJS `Vol` stores `w[((sx*y)+x)*depth+d]` (HWC), conv filters included, and an fc
  layer sees its input flattened in that order; torch keeps (out, in, kh, kw) and flattens CHW.
- Dropout at test time. ConvNetJS multiplies a dropout layer's output by drop_prob when predicting
  (its own quirk); torch's inverted dropout passes it unchanged. So the conv/fc layer after each
  dropout layer carries the factor: exported weights are divided by drop_prob and imported ones
  multiplied by it (biases untouched), which keeps both forwards equal. Only relu, pool, maxout and
  dropout layers (f(a*x) = a*f(x) for a > 0) may stand in between; otherwise, or with a drop_prob
  of 0, no ConvNetJS net computes what the torch model does, and the export is refused.
"""

from __future__ import annotations

import torch

from service.spec.convnetjs_snapshot import dropout_targets, vol_values
from service.spec.netspec import InvalidSpec

SHAPE = ("out_sx", "out_sy", "out_depth")


class NotRepresentable(ValueError):
    """The network has no ConvNetJS equivalent that computes the same outputs."""


def _dropout_factors(layers: list[dict]) -> dict[int, float]:
    """The index of each conv/fc layer after a dropout layer, and the product of those drop_probs."""
    targets, stuck = dropout_targets([layer["type"] for layer in layers])
    if stuck:
        raise NotRepresentable(f"layer {stuck[0]} (dropout) is followed by {layers[stuck[0] + 1]['type']} before the "
                               "next conv or fc layer, so ConvNetJS's test-time dropout scaling cannot be folded into "
                               "that layer's weights")
    factors: dict[int, float] = {}
    for i, j in targets.items():
        if layers[i]["drop_prob"] == 0:
            raise NotRepresentable(f"layer {i} is a dropout layer with drop_prob 0: ConvNetJS would multiply its "
                                   "output by 0 at test time")
        factors[j] = factors.get(j, 1.0) * layers[i]["drop_prob"]
    return factors


def _vol(values: torch.Tensor, sx: int, sy: int, depth: int) -> dict:
    return {"sx": sx, "sy": sy, "depth": depth, "w": values.reshape(-1).tolist()}


def to_convnetjs(layers: list[dict], state_dict: dict[str, torch.Tensor]) -> dict:
    """The desugared `layers` with their trained weights as a ConvNetJS net JSON; raise NotRepresentable."""
    factors = _dropout_factors(layers)
    out = []
    for index, layer in enumerate(layers):
        kind = layer["type"]
        item = {**{key: layer[key] for key in SHAPE}, "layer_type": kind}
        if kind in ("conv", "pool"):
            item.update({key: layer[key] for key in ("sx", "sy", "stride", "in_depth", "pad")})
        if kind in ("conv", "fc"):
            item.update(l1_decay_mul=layer["l1_decay_mul"], l2_decay_mul=layer["l2_decay_mul"])
            weight = state_dict[f"layers.{index - 1}.weight"].detach().cpu().double() / factors.get(index, 1.0)
            bias = state_dict[f"layers.{index - 1}.bias"].detach().cpu().double()
            n = weight.shape[0]
            if kind == "conv":  # (F, C, kh, kw) -> F filters of (sx, sy, C) in HWC order
                hwc = weight.permute(0, 2, 3, 1)
                item["filters"] = [_vol(f, layer["sx"], layer["sy"], layer["in_depth"]) for f in hwc]
            else:  # (N, C*H*W) flattened CHW -> N filters of 1x1x(H*W*C) flattened HWC
                hwc = weight.reshape(n, layer["in_depth"], layer["in_sy"], layer["in_sx"]).permute(0, 2, 3, 1)
                item["num_inputs"] = hwc[0].numel()
                item["filters"] = [_vol(f, 1, 1, item["num_inputs"]) for f in hwc]
            item["biases"] = _vol(bias, 1, 1, n)
        elif kind == "maxout":
            item["group_size"] = layer["group_size"]
        elif kind == "dropout":
            item["drop_prob"] = layer["drop_prob"]
        elif kind == "lrn":
            item.update({key: layer[key] for key in ("k", "n", "alpha", "beta")})
        elif kind in ("softmax", "svm", "regression"):
            item["num_inputs"] = layer["in_sx"] * layer["in_sy"] * layer["in_depth"]
        out.append(item)
    return {"layers": out}


def from_convnetjs(snapshot: dict, layers: list[dict]) -> dict[str, torch.Tensor]:
    """A state dict for worker.model.Net(`layers`) from a snapshot checked by service.spec.convnetjs_snapshot."""
    if len(snapshot["layers"]) != len(layers):
        raise ValueError(f"the snapshot has {len(snapshot['layers'])} layers, the network {len(layers)}")
    # The snapshot's own drop_probs are what its forward multiplied by, whatever the new network's are.
    factors = _dropout_factors([{"type": layer.get("layer_type"), "drop_prob": layer.get("drop_prob")}
                                for layer in snapshot["layers"]])
    state: dict[str, torch.Tensor] = {}
    for index, (layer, theirs) in enumerate(zip(layers, snapshot["layers"])):
        if theirs.get("layer_type") != layer["type"]:
            raise ValueError(f"layer {index} of the snapshot is {theirs.get('layer_type')}, of the network {layer['type']}")
        if layer["type"] not in ("conv", "fc"):
            continue
        n = layer["filters"] if layer["type"] == "conv" else layer["num_neurons"]
        shape = ((layer["sx"], layer["sy"], layer["in_depth"]) if layer["type"] == "conv"
                 else (1, 1, layer["in_sx"] * layer["in_sy"] * layer["in_depth"]))
        if len(theirs.get("filters") or ()) != n:
            raise ValueError(f"layer {index} of the snapshot does not have {n} filters")
        errors: list = []
        filters = [vol_values(v, f"layers[{index}].filters[{k}]", errors, shape) for k, v in enumerate(theirs["filters"])]
        bias = vol_values(theirs.get("biases"), f"layers[{index}].biases", errors, (1, 1, n))
        if errors:
            raise InvalidSpec(errors)
        hwc = torch.tensor(filters, dtype=torch.float64)
        if layer["type"] == "conv":
            weight = hwc.reshape(len(filters), layer["sy"], layer["sx"], layer["in_depth"]).permute(0, 3, 1, 2)
        else:
            weight = hwc.reshape(len(filters), layer["in_sy"], layer["in_sx"], layer["in_depth"]).permute(0, 3, 1, 2)
            weight = weight.reshape(len(filters), -1)
        weight = weight * factors.get(index, 1.0)
        state[f"layers.{index - 1}.weight"] = weight.to(torch.float32).contiguous()
        state[f"layers.{index - 1}.bias"] = torch.tensor(bias, dtype=torch.float32)
    return state
