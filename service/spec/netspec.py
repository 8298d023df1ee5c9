"""The ConvNetJS layer language: parse, desugar and shape-infer a network spec.

Pure Python (no torch): the API validates specs with it, and the worker builds
models from the desugared layers it returns. The rules follow ConvNetJS 0.3.0
(`Net.makeLayers` and each layer's constructor).
"""

from __future__ import annotations

import difflib
import json
import math
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from service.errors import Invalid

LOSS_TYPES = ("softmax", "svm", "regression")
ACTIVATIONS = ("relu", "sigmoid", "tanh", "maxout")


@dataclass(frozen=True)
class Field:
    """One field of a layer: its kind, default and aliases."""

    kind: str  # "size" (int >= 1), "count" (int >= 0), "number", "amount" (number >= 0), "prob", "activation"
    default: Any = None  # None: required (unless derived, see `derived`)
    aliases: tuple[str, ...] = ()
    derived: bool = False  # filled in by a rule (sy = sx, bias_pref from activation)


_DECAY = {"l1_decay_mul": Field("amount", 0.0), "l2_decay_mul": Field("amount", 1.0)}
# ConvNetJS desugars `activation` and `drop_prob` on any hidden layer.
_SUGAR = {"activation": Field("activation", ""), "drop_prob": Field("prob", 0.0),
          "group_size": Field("size", 2)}

LAYERS: dict[str, dict[str, Field]] = {
    "input": {
        "out_sx": Field("size", 1, ("sx", "width")),
        "out_sy": Field("size", 1, ("sy", "height")),
        "out_depth": Field("size", None, ("depth",)),
    },
    "conv": {
        "sx": Field("size"), "sy": Field("size", derived=True), "filters": Field("size"),
        "stride": Field("size", 1), "pad": Field("count", 0),
        "bias_pref": Field("number", derived=True), **_DECAY, **_SUGAR,
    },
    "pool": {
        "sx": Field("size"), "sy": Field("size", derived=True),
        "stride": Field("size", 2), "pad": Field("count", 0), **_SUGAR,
    },
    "fc": {
        "num_neurons": Field("size", None, ("filters",)),
        "bias_pref": Field("number", derived=True), **_DECAY, **_SUGAR,
    },
    "relu": {**_SUGAR},
    "sigmoid": {**_SUGAR},
    "tanh": {**_SUGAR},
    "maxout": {"group_size": Field("size", 2), "drop_prob": Field("prob", 0.0)},
    "dropout": {"drop_prob": Field("prob", 0.5)},
    "lrn": {"k": Field("number"), "n": Field("size"), "alpha": Field("number"),
            "beta": Field("number"), **_SUGAR},
    "softmax": {"num_classes": Field("size")},
    "svm": {"num_classes": Field("size")},
    "regression": {"num_neurons": Field("size")},
}
# Keys a ConvNetJS user may write that carry no meaning for the layer itself.
_IGNORED = ("type",)


@dataclass(frozen=True)
class Limits:
    """Configurable bounds on what a network may cost."""

    max_layers: int = 100
    max_params: int = 50_000_000
    max_activations: int = 20_000_000  # values per example, summed over layers


@dataclass
class SpecError:
    """One problem with a spec, at a JSON path."""

    path: str
    message: str
    line: int | None = None  # the source line, for specs pasted as demo JavaScript

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"path": self.path, "message": self.message}
        if self.line is not None:
            out["line"] = self.line
        return out


@dataclass
class Network:
    """A desugared network: one dict per layer with its fields and shapes."""

    layers: list[dict[str, Any]]
    params: int
    macs: int
    activations: int = field(default=0)

    @property
    def input(self) -> dict[str, Any]:
        return self.layers[0]

    @property
    def output(self) -> dict[str, Any]:
        return self.layers[-1]

    def as_dict(self) -> dict[str, Any]:
        """The machine form that `convtrain validate --json` prints."""
        return {"layers": self.layers, "params": self.params, "macs": self.macs,
                "activations": self.activations}


class InvalidSpec(Invalid, ValueError):
    """A spec or request with one or more problems; `errors` lists them all (answered 422)."""

    title = "Invalid job request"

    def __init__(self, errors: list[SpecError], *, title: str | None = None, detail: str | None = None, **extra):
        super().__init__(detail or f"{len(errors)} problem(s) found", errors=errors, title=title, **extra)
        self.errors: list[SpecError] = errors

    def __str__(self) -> str:
        return "; ".join(f"{e.path}: {e.message}" for e in self.errors)


def sci(n: float) -> str:
    """Format a large count the way a person reads it: 2.1e9, 5e7, 208."""
    if isinstance(n, float) and not math.isfinite(n):
        return str(n)
    if abs(n) < 100_000:
        return f"{n:g}" if isinstance(n, float) else str(n)
    # Exact arithmetic: a count from a hostile spec can be far beyond a float's range.
    sign, exponent, n = ("-" if n < 0 else ""), int(math.log10(abs(n))), Fraction(abs(n))
    while 10**exponent > n:
        exponent -= 1
    while 10 ** (exponent + 1) <= n:
        exponent += 1
    tenths = round(n * 10 / 10**exponent)
    if tenths == 100:
        tenths, exponent = 10, exponent + 1
    mantissa = f"{tenths // 10}" + (f".{tenths % 10}" if tenths % 10 else "")
    return f"{sign}{mantissa}e{exponent}"


def _a(kind: str) -> str:
    """The article a reader says before a layer type: 'an input', 'an fc', 'a conv'."""
    return "an" if kind in ("input", "fc", "lrn", "svm") else "a"


def _suggest(word: str, choices) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.5)
    return f" Did you mean '{close[0]}'?" if close else ""


def type_name(value: Any) -> str:
    if value is None:
        return "null"
    return {bool: "a boolean", int: "a whole number", str: "a string", float: "a decimal number",
            list: "a list", dict: "an object"}.get(type(value), type(value).__name__)


def as_json_text(value: Any) -> str:
    """A scalar as the user wrote it in JSON (true, null, "5"), shortened; "" for lists and objects."""
    if isinstance(value, (list, dict, tuple)):
        return ""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 10**15:
        text = sci(value)
    else:
        try:
            text = json.dumps(value, ensure_ascii=False)
        except (TypeError, ValueError):
            text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def describe(value: Any) -> str:
    """The kind of a value and the value itself: 'a string ("5")', 'null', 'a list'."""
    shown = as_json_text(value)
    return f"{type_name(value)} ({shown})" if shown and value is not None else type_name(value)


def _check_value(name: str, spec: Field, value: Any) -> str | None:
    """Return a sentence about what is wrong with `value`, or None."""
    if spec.kind in ("size", "count"):
        if isinstance(value, bool) or not isinstance(value, int):
            return f"{name} must be a whole number, not {describe(value)}"
        if spec.kind == "size" and value < 1:
            return f"{name} must be at least 1, got {as_json_text(value)}"
        if spec.kind == "count" and value < 0:
            return f"{name} must not be negative, got {as_json_text(value)}"
        return None
    if spec.kind in ("number", "amount", "prob"):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return f"{name} must be a number, not {describe(value)}"
        # A huge whole number would overflow the float the worker turns it into.
        if (isinstance(value, float) and not math.isfinite(value)) or abs(value) > 1e300:
            return f"{name} must be a finite number, not {as_json_text(value)}"
        if spec.kind == "amount" and value < 0:
            return f"{name} must not be negative, got {as_json_text(value)}"
        if spec.kind == "prob" and not 0 <= value < 1:
            return f"{name} is a probability and must be at least 0 and below 1, got {as_json_text(value)}"
        return None
    if spec.kind == "activation":
        if not isinstance(value, str) or value not in ACTIVATIONS:
            return (f"activation must be one of {', '.join(ACTIVATIONS)}, not {describe(value)}."
                    + (_suggest(value, ACTIVATIONS) if isinstance(value, str) else ""))
    return None


def _read_layer(raw: Any, path: str, errors: list[SpecError]) -> dict[str, Any] | None:
    """Check one user layer's type and fields; return it with canonical names and defaults."""
    if not isinstance(raw, dict):
        errors.append(SpecError(path, f"a layer must be an object, not {type_name(raw)}"))
        return None
    kind = raw.get("type")
    if kind is None or kind == "":
        errors.append(SpecError(f"{path}.type", "every layer needs a 'type', such as 'conv' or 'fc'"))
        return None
    if not isinstance(kind, str):
        errors.append(SpecError(f"{path}.type", f"a layer's type must be a name such as 'conv' or 'fc', "
                                f"not {describe(kind)}"))
        return None
    if kind not in LAYERS:
        errors.append(SpecError(f"{path}.type", f"unknown layer type {as_json_text(kind)}."
                                + (_suggest(kind, LAYERS) or f" Known types: {', '.join(LAYERS)}.")))
        return None
    fields = LAYERS[kind]
    alias_of = {alias: name for name, f in fields.items() for alias in f.aliases}
    layer: dict[str, Any] = {"type": kind}
    given_as: dict[str, str] = {}  # canonical name -> the key the user wrote for it
    ok = True
    for key, value in raw.items():
        key = str(key)
        if key in _IGNORED:
            continue
        name = alias_of.get(key, key)
        if name not in fields:
            known = list(fields) + list(alias_of)
            errors.append(SpecError(f"{path}.{key}", f"'{key}' is not a field of {_a(kind)} {kind} layer."
                                    + (_suggest(key, known) or f" Its fields are: {', '.join(fields) or 'none'}.")))
            ok = False
            continue
        if name in given_as:
            errors.append(SpecError(f"{path}.{key}", f"'{key}' and '{given_as[name]}' both set {name}; keep only one"))
            ok = False
            continue
        given_as[name] = key
        problem = _check_value(key, fields[name], value)
        if problem:
            errors.append(SpecError(f"{path}.{key}", problem))
            ok = False
            continue
        layer[name] = value
    for name, f in fields.items():
        if name in given_as or f.derived:
            continue
        if f.default is None:
            errors.append(SpecError(f"{path}.{name}", f"{_a(kind)} {kind} layer needs '{name}'"))
            ok = False
        else:
            layer[name] = f.default
    if not ok:
        return None
    if "sy" in fields and "sy" not in layer:
        layer["sy"] = layer["sx"]
    if "bias_pref" in fields and "bias_pref" not in layer:
        # ConvNetJS: a relu layer's inputs start slightly positive so no unit starts dead.
        layer["bias_pref"] = 0.1 if layer.get("activation") == "relu" else 0.0
    layer = {"type": kind, **{name: layer[name] for name in fields if name in layer}}
    if kind == "lrn" and layer["n"] % 2 == 0:
        errors.append(SpecError(f"{path}.n", f"n must be odd (the window is centred on each channel), got {layer['n']}"))
        return None
    return layer


def _desugar(layer: dict[str, Any]) -> list[dict[str, Any]]:
    """Expand one checked layer into the layers ConvNetJS builds for it."""
    kind = layer["type"]
    if kind in ("softmax", "svm"):
        return [_fc(layer["num_classes"]), {"type": kind, "num_classes": layer["num_classes"]}]
    if kind == "regression":
        return [_fc(layer["num_neurons"]), {"type": kind, "num_neurons": layer["num_neurons"]}]
    activation = layer.pop("activation", "")
    drop_prob = layer.pop("drop_prob", 0.0) if kind != "dropout" else 0.0
    group_size = layer.pop("group_size", 2) if kind != "maxout" else None
    out = [layer]
    if activation == "maxout":
        out.append({"type": "maxout", "group_size": group_size})
    elif activation:
        out.append({"type": activation})
    if drop_prob:
        out.append({"type": "dropout", "drop_prob": drop_prob})
    return out


def _fc(n: int) -> dict[str, Any]:
    return {"type": "fc", "num_neurons": n, "bias_pref": 0.0, "l1_decay_mul": 0.0, "l2_decay_mul": 1.0}


def _window(layer, sx, sy, depth, path, errors) -> tuple[int, int] | None:
    """Output size of a conv or pool window with ConvNetJS's floor rule."""
    what = "conv filter" if layer["type"] == "conv" else "pool window"
    k_x, k_y, pad, stride = layer["sx"], layer["sy"], layer["pad"], layer["stride"]
    limit_x, limit_y = (k_x, k_y) if layer["type"] == "conv" else (k_x // 2 + 1, k_y // 2 + 1)
    if pad >= limit_x or pad >= limit_y:
        rule = "smaller than the filter" if layer["type"] == "conv" else "at most half the window"
        errors.append(SpecError(f"{path}.pad", f"pad {pad} is too large for a {k_x}x{k_y} {what}: "
                                f"it must be {rule}, or outputs would see only padding"))
        return None
    if sx + 2 * pad < k_x or sy + 2 * pad < k_y:
        padded = f" (padded by {pad})" if pad else ""
        errors.append(SpecError(f"{path}.sx", f"{what} {k_x}x{k_y} does not fit a {sx}x{sy} input{padded}, "
                                "so its output would have zero size"))
        return None
    return (sx + 2 * pad - k_x) // stride + 1, (sy + 2 * pad - k_y) // stride + 1


def _infer(layer, shape, path, errors) -> tuple[int, int, int, int, int] | None:
    """Return (out_sx, out_sy, out_depth, params, macs) for `layer` on an input of `shape`."""
    sx, sy, depth = shape
    kind = layer["type"]
    if kind == "conv":
        out = _window(layer, sx, sy, depth, path, errors)
        if out is None:
            return None
        n = layer["filters"]
        fan_in = layer["sx"] * layer["sy"] * depth
        return out[0], out[1], n, n * fan_in + n, out[0] * out[1] * n * fan_in
    if kind == "pool":
        out = _window(layer, sx, sy, depth, path, errors)
        return None if out is None else (out[0], out[1], depth, 0, 0)
    if kind == "fc":
        n, fan_in = layer["num_neurons"], sx * sy * depth
        return 1, 1, n, n * fan_in + n, n * fan_in
    if kind == "maxout":
        out_depth = depth // layer["group_size"]
        if out_depth == 0:
            errors.append(SpecError(f"{path}.group_size", f"maxout groups of {layer['group_size']} do not fit "
                                    f"a depth of {depth}, so its output would have zero depth"))
            return None
        return sx, sy, out_depth, 0, 0
    if kind in ("softmax", "svm", "regression"):
        n = layer.get("num_classes") or layer["num_neurons"]
        return 1, 1, n, 0, 0
    return sx, sy, depth, 0, 0  # relu, sigmoid, tanh, dropout, lrn keep the shape


def analyze(spec: Any, limits: Limits = Limits(), prefix: str = "network") -> Network:
    """Validate, desugar and shape-infer a `{"layers": [...]}` spec; raise InvalidSpec listing every problem."""
    errors: list[SpecError] = []
    if not isinstance(spec, dict):
        raise InvalidSpec([SpecError(prefix, f"a network must be an object with 'layers', not {type_name(spec)}")])
    for key in spec:
        if key != "layers":
            errors.append(SpecError(f"{prefix}.{key}", f"'{key}' is not part of a network; it has only 'layers'"))
    raw_layers = spec.get("layers")
    if raw_layers is None:
        raise InvalidSpec(errors + [SpecError(f"{prefix}.layers", "a network needs a 'layers' list")])
    if not isinstance(raw_layers, list):
        raise InvalidSpec(errors + [SpecError(f"{prefix}.layers", f"'layers' must be a list, not {type_name(raw_layers)}")])
    if not raw_layers:
        raise InvalidSpec(errors + [SpecError(f"{prefix}.layers", "'layers' is empty: a network needs at least an input and a loss layer")])
    if len(raw_layers) > limits.max_layers:
        raise InvalidSpec(errors + [SpecError(f"{prefix}.layers", f"{len(raw_layers)} layers is more than the limit of {limits.max_layers}")])

    paths = [f"{prefix}.layers[{i}]" for i in range(len(raw_layers))]
    checked = [_read_layer(raw, p, errors) for raw, p in zip(raw_layers, paths)]
    _check_order(raw_layers, paths, errors)
    if errors:
        raise InvalidSpec(errors)

    layers: list[dict[str, Any]] = []
    shape = None
    for index, (layer, path) in enumerate(zip(checked, paths)):
        for part in _desugar(dict(layer)):
            if part["type"] == "input":
                shape = (part["out_sx"], part["out_sy"], part["out_depth"])
                out = (*shape, 0, 0)
            else:
                out = _infer(part, shape, path, errors)
                if out is None:
                    raise InvalidSpec(errors)
            part.update(source=index, in_sx=shape[0], in_sy=shape[1], in_depth=shape[2],
                        out_sx=out[0], out_sy=out[1], out_depth=out[2], params=out[3], macs=out[4])
            shape = out[:3]
            layers.append(part)

    params = sum(layer["params"] for layer in layers)
    activations = sum(layer["out_sx"] * layer["out_sy"] * layer["out_depth"] for layer in layers)
    if params > limits.max_params:
        errors.append(SpecError(f"{prefix}.layers", f"{sci(params)} parameters is more than the limit of {sci(limits.max_params)}"))
    if activations > limits.max_activations:
        errors.append(SpecError(f"{prefix}.layers", f"{sci(activations)} activations per example is more than "
                                f"the limit of {sci(limits.max_activations)}"))
    if errors:
        raise InvalidSpec(errors)
    return Network(layers, params, sum(layer["macs"] for layer in layers), activations)


def _check_order(raw_layers, paths, errors) -> None:
    """The first layer is input, the last a loss layer, and neither kind appears in between."""
    def kind(i):
        raw = raw_layers[i]
        value = raw.get("type") if isinstance(raw, dict) else None
        return value if isinstance(value, str) else None

    last = len(raw_layers) - 1
    # A missing or unknown type is reported by _read_layer already.
    if kind(0) in LAYERS and kind(0) != "input":
        errors.append(SpecError(f"{paths[0]}.type", "the first layer must be an input layer, "
                                "such as {\"type\": \"input\", \"out_sx\": 24, \"out_sy\": 24, \"out_depth\": 1}"))
    if kind(last) in LAYERS and kind(last) not in LOSS_TYPES:
        errors.append(SpecError(f"{paths[last]}.type", "the last layer must be a loss layer: "
                                "softmax, svm or regression (for example {\"type\": \"softmax\", \"num_classes\": 10})"))
    for i in range(1, last):
        if kind(i) == "input":
            errors.append(SpecError(f"{paths[i]}.type", "an input layer can only be the first layer"))
        elif kind(i) in LOSS_TYPES:
            errors.append(SpecError(f"{paths[i]}.type", f"{_a(kind(i))} {kind(i)} loss layer can only be the last layer"))


def table(network: Network) -> str:
    """The desugared network as a text table with totals, for the CLI."""
    rows = [("#", "layer", "type", "output", "params", "macs")]
    for i, layer in enumerate(network.layers):
        shape = f"{layer['out_sx']}x{layer['out_sy']}x{layer['out_depth']}"
        rows.append((str(i), f"layers[{layer['source']}]", layer_label(layer), shape,
                     f"{layer['params']:,}", f"{layer['macs']:,}"))
    rows.append(("", "", "total", "", f"{network.params:,}", f"{network.macs:,}"))
    widths = [max(len(r[c]) for r in rows) for c in range(len(rows[0]))]
    align = ["<", "<", "<", "<", ">", ">"]
    return "\n".join("  ".join(f"{cell:{a}{w}}" for cell, a, w in zip(r, align, widths)).rstrip() for r in rows)


def layer_label(layer: dict[str, Any]) -> str:
    kind = layer["type"]
    if kind == "conv":
        return f"conv {layer['sx']}x{layer['sy']}/{layer['stride']} pad {layer['pad']}"
    if kind == "pool":
        return f"pool {layer['sx']}x{layer['sy']}/{layer['stride']}" + (f" pad {layer['pad']}" if layer["pad"] else "")
    if kind == "dropout":
        return f"dropout {layer['drop_prob']:g}"
    if kind == "maxout":
        return f"maxout {layer['group_size']}"
    return kind
