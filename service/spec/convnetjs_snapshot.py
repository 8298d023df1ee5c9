"""ConvNetJS net snapshots (`net.toJSON()`, the demo's "save network snapshot as JSON"), torch-free.

A snapshot lists the layers ConvNetJS built, already desugared: `{"layers": [{"layer_type":
"conv", "sx": 5, ..., "filters": [Vol...], "biases": Vol}, ...]}`, each `Vol` being
`{"sx", "sy", "depth", "w"}` with `w` in HWC order (`w[((sx*y)+x)*depth+d]`); JSON.stringify
writes a Float64Array `w` as an object `{"0": ..., "1": ...}`, so both forms are read.
This module checks a snapshot's structure and sizes and turns it into a network spec
that netspec desugars back to exactly the snapshot's layers; the worker loads the weights.
"""

from __future__ import annotations

import math
import re
from typing import Any

from service.spec import netspec
from service.spec.netspec import InvalidSpec, Limits, SpecError

LOSS = ("softmax", "svm", "regression")
ELEMENTWISE = ("relu", "sigmoid", "tanh")
# Fields read from each layer type, and the spec field each becomes.
_FIELDS = {
    "input": {"out_sx": "out_sx", "out_sy": "out_sy", "out_depth": "out_depth"},
    "conv": {"sx": "sx", "sy": "sy", "out_depth": "filters", "stride": "stride"},
    "pool": {"sx": "sx", "sy": "sy", "stride": "stride"},
    "fc": {"out_depth": "num_neurons"},
    "maxout": {"group_size": "group_size"},
    "dropout": {"drop_prob": "drop_prob"},
    "lrn": {"k": "k", "n": "n", "alpha": "alpha", "beta": "beta"},
    "relu": {}, "sigmoid": {}, "tanh": {},
    "softmax": {"out_depth": "num_classes"}, "svm": {"out_depth": "num_classes"}, "regression": {"out_depth": "num_neurons"},
}
_OPTIONAL = {"conv": ("pad", "l1_decay_mul", "l2_decay_mul"), "pool": ("pad",), "fc": ("l1_decay_mul", "l2_decay_mul")}
# Between a dropout layer and the conv/fc layer that absorbs its test-time scale, only layers with
# f(a*x) = a*f(x) for a > 0 may stand.
POSITIVELY_HOMOGENEOUS = ("relu", "pool", "maxout", "dropout")


def vol_values(vol: Any, path: str, errors: list[SpecError], shape: tuple[int, int, int] | None = None) -> list | None:
    """The numbers of a Vol `{sx, sy, depth, w}`, checked against `shape` (sx, sy, depth); None on a problem."""
    if not isinstance(vol, dict):
        errors.append(SpecError(path, f"a Vol must be an object {{sx, sy, depth, w}}, not {netspec.type_name(vol)}"))
        return None
    dims = []
    for key in ("sx", "sy", "depth"):
        value = vol.get(key)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            errors.append(SpecError(f"{path}.{key}", f"a Vol's {key} must be a whole number, not {netspec.describe(value)}"))
            return None
        dims.append(value)
    if shape is not None and tuple(dims) != tuple(shape):
        errors.append(SpecError(path, f"a Vol of {dims[0]}x{dims[1]}x{dims[2]} where the layer needs "
                                f"{shape[0]}x{shape[1]}x{shape[2]}"))
        return None
    n = dims[0] * dims[1] * dims[2]
    w = vol.get("w")
    if isinstance(w, dict):  # JSON.stringify of a Float64Array
        try:
            w = [w[str(i)] for i in range(n)] if len(w) == n else None
        except KeyError:
            w = None
        if w is None:
            errors.append(SpecError(f"{path}.w", f"w must hold the keys \"0\" to \"{n - 1}\" ({n} numbers)"))
            return None
    if not isinstance(w, list) or len(w) != n:
        errors.append(SpecError(f"{path}.w", f"w must be a list of {n} numbers (sx*sy*depth), "
                                f"not {netspec.type_name(w) if not isinstance(w, list) else f'{len(w)} of them'}"))
        return None
    for i, value in enumerate(w):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            errors.append(SpecError(f"{path}.w[{i}]", f"weights must be finite numbers, not {netspec.describe(value)}"))
            return None
    return w


def dropout_targets(types: list[str]) -> tuple[dict[int, int], list[int]]:
    """Each dropout layer's next conv/fc layer reached only through POSITIVELY_HOMOGENEOUS layers; and those without one."""
    targets, stuck = {}, []
    for i, kind in enumerate(types):
        if kind != "dropout":
            continue
        j = i + 1
        while j < len(types) and types[j] in POSITIVELY_HOMOGENEOUS:
            j += 1
        if j < len(types) and types[j] in ("conv", "fc"):
            targets[i] = j
        else:
            stuck.append(i)
    return targets, stuck


def to_network(snapshot: Any, limits: Limits = Limits(), path: str = "init.convnetjs") -> tuple[dict, netspec.Network]:
    """Check a snapshot; return the network spec it was built from and that spec analysed. Raise InvalidSpec."""
    if not isinstance(snapshot, dict) or not isinstance(snapshot.get("layers"), list):
        raise InvalidSpec([SpecError(path, "a ConvNetJS snapshot is an object {\"layers\": [...]} as net.toJSON() gives it")])
    layers = snapshot["layers"]
    if len(layers) < 3 or len(layers) > 4 * limits.max_layers:
        raise InvalidSpec([SpecError(f"{path}.layers", f"a snapshot needs between 3 and {4 * limits.max_layers} "
                                     f"layers (input, ..., fc, loss), got {len(layers)}")])
    errors: list[SpecError] = []
    types = []
    for i, layer in enumerate(layers):
        kind = layer.get("layer_type") if isinstance(layer, dict) else None
        if not isinstance(kind, str) or kind not in _FIELDS:
            errors.append(SpecError(f"{path}.layers[{i}].layer_type", f"unsupported layer_type {netspec.as_json_text(kind)}; "
                                    f"supported: {', '.join(_FIELDS)}"))
        types.append(kind)
    if errors:
        raise InvalidSpec(errors)
    if types[0] != "input" or types[-1] not in LOSS or types[-2] != "fc":
        errors.append(SpecError(f"{path}.layers", "a snapshot starts with an input layer and ends with an fc layer "
                                "followed by a softmax, svm or regression layer"))
    for i, kind in enumerate(types[1:-1], 1):
        if kind in LOSS or kind == "input":
            errors.append(SpecError(f"{path}.layers[{i}].layer_type", f"{kind} can only be the {'first' if kind == 'input' else 'last'} layer"))
    targets, stuck = dropout_targets(types)
    for i in targets:
        if layers[i].get("drop_prob") == 0:
            errors.append(SpecError(f"{path}.layers[{i}].drop_prob", "ConvNetJS multiplies this dropout layer's output "
                                    "by its drop_prob, 0, when predicting: no network starts from such a net"))
    for i in stuck:
        errors.append(SpecError(f"{path}.layers[{i}]", "ConvNetJS scales a dropout layer's output by drop_prob at test "
                                "time; convtrain reproduces that by scaling the next conv or fc layer, so only relu, "
                                "pool, maxout or dropout layers may stand between them"))
    if errors:
        raise InvalidSpec(errors)

    spec_layers, origin = [], []  # origin[k]: the snapshot index of spec layer k
    for i, (layer, kind) in enumerate(zip(layers, types)):
        if i == len(layers) - 2:
            continue  # the fc before the loss layer is the one the loss layer desugars to
        source = layers[-2] if kind in LOSS else layer
        out = {"type": kind}
        for key, name in _FIELDS[kind].items():
            if key not in source:
                errors.append(SpecError(f"{path}.layers[{i - (kind in LOSS)}].{key}", f"a {kind} layer needs '{key}'"))
            else:
                out[name] = source[key]
        out.update({key: layer[key] for key in _OPTIONAL.get(kind, ()) if key in layer})
        spec_layers.append(out)
        origin.append(i)
    if errors:
        raise InvalidSpec(errors)
    spec = {"layers": spec_layers}
    try:
        network = netspec.analyze(spec, limits, prefix=path)
    except InvalidSpec as exc:
        raise InvalidSpec([_renumbered(e, path, origin) for e in exc.errors]) from None
    for i, (layer, theirs) in enumerate(zip(network.layers, layers)):
        p = f"{path}.layers[{i}]"
        for key in ("out_sx", "out_sy", "out_depth"):
            if key in theirs and theirs[key] != layer[key]:
                errors.append(SpecError(f"{p}.{key}", f"{key} is {netspec.as_json_text(theirs[key])}, but the layers "
                                        f"before it give {layer[key]}"))
        if layer["type"] in ("conv", "fc"):
            _check_weights(theirs, layer, p, errors)
    if errors:
        raise InvalidSpec(errors)
    return spec, network


def _check_weights(theirs: dict, layer: dict, path: str, errors: list[SpecError]) -> None:
    if layer["type"] == "conv":
        n, shape = layer["filters"], (layer["sx"], layer["sy"], layer["in_depth"])
    else:
        n, shape = layer["num_neurons"], (1, 1, layer["in_sx"] * layer["in_sy"] * layer["in_depth"])
        if "num_inputs" in theirs and theirs["num_inputs"] != shape[2]:
            errors.append(SpecError(f"{path}.num_inputs", f"num_inputs is {netspec.as_json_text(theirs['num_inputs'])}, "
                                    f"but the layers before it give {shape[2]}"))
            return
    filters = theirs.get("filters")
    if not isinstance(filters, list) or len(filters) != n:
        errors.append(SpecError(f"{path}.filters", f"filters must be a list of {n} Vols"))
        return
    for k, vol in enumerate(filters):
        if vol_values(vol, f"{path}.filters[{k}]", errors, shape) is None:
            return
    vol_values(theirs.get("biases"), f"{path}.biases", errors, (1, 1, n))


def _renumbered(error: SpecError, path: str, origin: list[int]) -> SpecError:
    """A netspec error about spec layer k, pointed at the snapshot layer it came from."""
    prefix = re.escape(f"{path}.layers[")
    match = re.match(prefix + r"(\d+)\]", error.path)
    if not match:
        return error
    k = int(match.group(1))
    return SpecError(f"{path}.layers[{origin[k] if k < len(origin) else k}]" + error.path[match.end():], error.message)


# --- comparing architectures --------------------------------------------------------------------------

# What makes two desugared layers the same for weights to carry over (dropout rates may differ).
_SAME = {
    "input": ("out_sx", "out_sy", "out_depth"),
    "conv": ("sx", "sy", "filters", "stride", "pad", "in_depth"),
    "pool": ("sx", "sy", "stride", "pad"),
    "fc": ("num_neurons", "in_sx", "in_sy", "in_depth"),
    "maxout": ("group_size",),
    "lrn": ("k", "n", "alpha", "beta"),
}


def describe(layer: dict) -> str:
    """A desugared layer in a few words, with its output shape."""
    kind = layer["type"]
    words = netspec.layer_label(layer)
    if kind == "conv":
        words += f", {layer['filters']} filters"
    elif kind == "fc":
        words += f" {layer['num_neurons']}"
    elif kind == "lrn":
        words += f" k={layer['k']:g} n={layer['n']} alpha={layer['alpha']:g} beta={layer['beta']:g}"
    return f"{words} -> {layer['out_sx']}x{layer['out_sy']}x{layer['out_depth']}"


def first_difference(ours: list[dict], theirs: list[dict], what: str) -> SpecError | None:
    """The first desugared layer where `ours` (the request's network) and `theirs` (`what`) differ, as an error."""
    for i in range(max(len(ours), len(theirs))):
        a = ours[i] if i < len(ours) else None
        b = theirs[i] if i < len(theirs) else None
        if a is not None and b is not None and a["type"] == b["type"] and all(
                a.get(k) == b.get(k) for k in (*_SAME.get(a["type"], ()), "out_sx", "out_sy", "out_depth")):
            continue
        where = f"network.layers[{a['source']}]" if a is not None else "network.layers"
        mine = describe(a) if a is not None else "nothing (the network has ended)"
        init = describe(b) if b is not None else "nothing (it has ended)"
        return SpecError(where, f"the weights of {what} do not fit this network: its layer {i} after desugaring is "
                         f"{init}, but here it is {mine}")
    return None
