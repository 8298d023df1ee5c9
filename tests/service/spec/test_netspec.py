"""Tests for the ConvNetJS layer language: desugaring, shapes, costs and the errors a student sees."""

import json
import pathlib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from service.spec import netspec
from service.spec.netspec import LAYERS, InvalidSpec, Limits

EXAMPLES = pathlib.Path(__file__).resolve().parents[3] / "examples"


def example(name):
    """The network of one of the assignment's example job requests."""
    return json.loads((EXAMPLES / f"{name}.json").read_text())["network"]


def fc_params(in_volume):
    return 10 * in_volume + 10


# The assignment's six networks (input 24x24x1, softmax over 10 classes), worked out by hand.
# Each row: the example file, then for every conv and pool its output shape, parameters
# (conv: filters*sx*sy*in_depth + filters) and multiply-adds (out_sx*out_sy*filters*sx*sy*in_depth),
# then the volume the final fc sees (its parameters are 10*volume + 10, its multiply-adds 10*volume).
SIX_NETWORKS = [
    ("net1-default", [
        ("conv", (24, 24, 8), 8 * 5 * 5 * 1 + 8, 24 * 24 * 8 * 5 * 5 * 1),
        ("pool", (12, 12, 8), 0, 0),
        ("conv", (12, 12, 16), 16 * 5 * 5 * 8 + 16, 12 * 12 * 16 * 5 * 5 * 8),
        ("pool", (4, 4, 16), 0, 0),
    ], 4 * 4 * 16),
    ("net2-3x3", [
        ("conv", (26, 26, 8), 8 * 3 * 3 * 1 + 8, 26 * 26 * 8 * 3 * 3 * 1),
        ("pool", (13, 13, 8), 0, 0),
        ("conv", (15, 15, 16), 16 * 3 * 3 * 8 + 16, 15 * 15 * 16 * 3 * 3 * 8),
        ("pool", (5, 5, 16), 0, 0),
    ], 5 * 5 * 16),
    ("net3-stride2", [
        ("conv", (12, 12, 8), 8 * 5 * 5 * 1 + 8, 12 * 12 * 8 * 5 * 5 * 1),
        ("pool", (6, 6, 8), 0, 0),
        ("conv", (3, 3, 16), 16 * 5 * 5 * 8 + 16, 3 * 3 * 16 * 5 * 5 * 8),
        ("pool", (1, 1, 16), 0, 0),
    ], 1 * 1 * 16),
    ("net4-16filters", [
        ("conv", (24, 24, 16), 16 * 5 * 5 * 1 + 16, 24 * 24 * 16 * 5 * 5 * 1),
        ("pool", (12, 12, 16), 0, 0),
        ("conv", (12, 12, 16), 16 * 5 * 5 * 16 + 16, 12 * 12 * 16 * 5 * 5 * 16),
        ("pool", (4, 4, 16), 0, 0),
    ], 4 * 4 * 16),
    ("net5-third-conv", [
        ("conv", (24, 24, 8), 8 * 5 * 5 * 1 + 8, 24 * 24 * 8 * 5 * 5 * 1),
        ("pool", (12, 12, 8), 0, 0),
        ("conv", (12, 12, 16), 16 * 5 * 5 * 8 + 16, 12 * 12 * 16 * 5 * 5 * 8),
        ("pool", (4, 4, 16), 0, 0),
        ("conv", (4, 4, 16), 16 * 5 * 5 * 16 + 16, 4 * 4 * 16 * 5 * 5 * 16),
        ("pool", (3, 3, 16), 0, 0),
    ], 3 * 3 * 16),
    ("net6-single-conv", [
        ("conv", (24, 24, 8), 8 * 5 * 5 * 1 + 8, 24 * 24 * 8 * 5 * 5 * 1),
        ("pool", (12, 12, 8), 0, 0),
    ], 12 * 12 * 8),
]


@pytest.mark.parametrize(("name", "body", "fc_in"), SIX_NETWORKS, ids=[row[0] for row in SIX_NETWORKS])
def test_six_networks(name, body, fc_in):
    network = netspec.analyze(example(name))
    layers = network.layers

    convs_and_pools = [layer for layer in layers if layer["type"] in ("conv", "pool")]
    assert [(layer["type"], (layer["out_sx"], layer["out_sy"], layer["out_depth"]), layer["params"], layer["macs"])
            for layer in convs_and_pools] == body

    fc, softmax = layers[-2], layers[-1]
    assert (fc["type"], fc["in_sx"] * fc["in_sy"] * fc["in_depth"]) == ("fc", fc_in)
    assert (fc["out_sx"], fc["out_sy"], fc["out_depth"], fc["params"], fc["macs"]) == (1, 1, 10, fc_params(fc_in), 10 * fc_in)
    assert (softmax["type"], softmax["out_depth"], softmax["params"]) == ("softmax", 10, 0)

    assert network.params == sum(row[2] for row in body) + fc_params(fc_in)
    assert network.macs == sum(row[3] for row in body) + 10 * fc_in
    assert network.params == sum(layer["params"] for layer in layers)
    assert network.activations == sum(layer["out_sx"] * layer["out_sy"] * layer["out_depth"] for layer in layers)


@pytest.mark.parametrize(("name", "params", "macs"), [
    ("net1-default", 208 + 3216 + 2570, 115200 + 460800 + 2560),
    ("net2-3x3", 80 + 1168 + 4010, 48672 + 259200 + 4000),
    ("net3-stride2", 208 + 3216 + 170, 28800 + 28800 + 160),
    ("net4-16filters", 416 + 6416 + 2570, 230400 + 921600 + 2560),
    ("net5-third-conv", 208 + 3216 + 6416 + 1450, 115200 + 460800 + 102400 + 1440),
    ("net6-single-conv", 208 + 11530, 115200 + 11520),
])
def test_six_networks_totals(name, params, macs):
    network = netspec.analyze(example(name))
    assert (network.params, network.macs) == (params, macs)


def test_default_network_desugars_like_convnetjs():
    network = netspec.analyze(example("net1-default"))
    assert [layer["type"] for layer in network.layers] == [
        "input", "conv", "relu", "pool", "conv", "relu", "pool", "fc", "softmax"]
    # Each desugared layer remembers the user layer it came from.
    assert [layer["source"] for layer in network.layers] == [0, 1, 1, 2, 3, 3, 4, 5, 5]
    conv = network.layers[1]
    assert (conv["sy"], conv["stride"], conv["pad"], conv["bias_pref"]) == (5, 1, 2, 0.1)
    assert (conv["l1_decay_mul"], conv["l2_decay_mul"]) == (0.0, 1.0)
    assert "activation" not in conv
    assert network.layers[3]["sy"] == 2
    assert network.layers[7]["bias_pref"] == 0.0
    assert network.input["out_sx"] == 24 and network.output["type"] == "softmax"
    body = network.as_dict()
    assert set(body) >= {"layers", "params", "macs"}
    for layer in body["layers"]:
        assert {"type", "out_sx", "out_sy", "out_depth", "params", "macs"} <= set(layer)
    json.dumps(body)


def net(*hidden, first=None, last=None):
    """A spec: a 24x24x1 input, the given layers, a softmax over 10 classes."""
    first = first or {"type": "input", "out_sx": 24, "out_sy": 24, "out_depth": 1}
    last = last or {"type": "softmax", "num_classes": 10}
    return {"layers": [first, *hidden, last]}


@pytest.mark.parametrize(("spec", "types"), [
    (net({"type": "fc", "num_neurons": 20, "activation": "tanh", "drop_prob": 0.5}),
     ["input", "fc", "tanh", "dropout", "fc", "softmax"]),
    (net({"type": "conv", "sx": 3, "filters": 4, "activation": "maxout", "group_size": 2}),
     ["input", "conv", "maxout", "fc", "softmax"]),
    (net({"type": "fc", "filters": 7, "activation": "sigmoid"}), ["input", "fc", "sigmoid", "fc", "softmax"]),
    (net({"type": "lrn", "k": 1, "n": 3, "alpha": 0.1, "beta": 0.75}), ["input", "lrn", "fc", "softmax"]),
    (net({"type": "dropout"}, last={"type": "svm", "num_classes": 10}), ["input", "dropout", "fc", "svm"]),
    (net(last={"type": "regression", "num_neurons": 3}), ["input", "fc", "regression"]),
])
def test_desugaring(spec, types):
    assert [layer["type"] for layer in netspec.analyze(spec).layers] == types


@pytest.mark.parametrize(("layer", "field", "value"), [
    ({"type": "conv", "sx": 3, "filters": 4}, "bias_pref", 0.0),
    ({"type": "conv", "sx": 3, "filters": 4, "activation": "relu"}, "bias_pref", 0.1),
    ({"type": "conv", "sx": 3, "filters": 4, "activation": "relu", "bias_pref": -1}, "bias_pref", -1),
    ({"type": "conv", "sx": 3, "sy": 1, "filters": 4}, "sy", 1),
    ({"type": "pool", "sx": 3}, "stride", 2),
    ({"type": "dropout"}, "drop_prob", 0.5),
    ({"type": "fc", "filters": 6}, "num_neurons", 6),
])
def test_defaults_and_aliases(layer, field, value):
    assert netspec.analyze(net(layer)).layers[1][field] == value


def test_input_aliases():
    spec = net(first={"type": "input", "width": 20, "height": 10, "depth": 3})
    first = netspec.analyze(spec).input
    assert (first["out_sx"], first["out_sy"], first["out_depth"]) == (20, 10, 3)


def errors_of(spec, limits=Limits(), prefix="network"):
    with pytest.raises(InvalidSpec) as info:
        netspec.analyze(spec, limits, prefix=prefix)
    return [(e.path, e.message) for e in info.value.errors]


def conv(**fields):
    return {"type": "conv", "sx": 5, "filters": 8, **fields}


# One row per class of mistake: the spec, the path of the error and words its message must hold.
ERRORS = [
    ("not an object", 5, "network", "a network must be an object with 'layers', not a whole number"),
    ("list instead of object", [1], "network", "not a list"),
    ("missing layers", {}, "network.layers", "a network needs a 'layers' list"),
    ("layers not a list", {"layers": "conv"}, "network.layers", "'layers' must be a list, not a string"),
    ("empty layers", {"layers": []}, "network.layers", "'layers' is empty"),
    ("extra key", {"layers": net()["layers"], "trainer": {}}, "network.trainer", "'trainer' is not part of a network"),
    ("layer not an object", net("conv"), "network.layers[1]", "a layer must be an object, not a string"),
    ("first not input", {"layers": [conv(), {"type": "softmax", "num_classes": 10}]},
     "network.layers[0].type", "the first layer must be an input layer"),
    ("last not loss", net(last=conv()), "network.layers[1].type", "the last layer must be a loss layer"),
    ("loss in the middle", net({"type": "softmax", "num_classes": 10}), "network.layers[1].type",
     "a softmax loss layer can only be the last layer"),
    ("svm in the middle", net({"type": "svm", "num_classes": 10}), "network.layers[1].type",
     "an svm loss layer can only be the last layer"),
    ("input in the middle", net({"type": "input", "out_depth": 1}), "network.layers[1].type",
     "an input layer can only be the first layer"),
    ("missing type", net({"sx": 5}), "network.layers[1].type", "every layer needs a 'type'"),
    ("type not a name", net({"type": 3}), "network.layers[1].type", "not a whole number (3)"),
    ("unknown type", net({"type": "convv", "sx": 5}), "network.layers[1].type",
     "unknown layer type \"convv\". Did you mean 'conv'?"),
    ("unknown type, nothing close", net({"type": "zzzzzz"}), "network.layers[1].type", "Known types: input, conv"),
    ("unknown field", net(conv(filter=8)), "network.layers[1].filter",
     "'filter' is not a field of a conv layer. Did you mean 'filters'?"),
    ("unknown field on input", net(first={"type": "input", "out_sx": 24, "out_sy": 24, "out_depth": 1, "out_sz": 1}),
     "network.layers[0].out_sz", "is not a field of an input layer. Did you mean"),
    ("field repeated by alias", net(first={"type": "input", "sx": 24, "out_sx": 24, "out_depth": 1}),
     "network.layers[0].out_sx", "'out_sx' and 'sx' both set out_sx; keep only one"),
    ("missing field", net({"type": "conv", "sx": 5}), "network.layers[1].filters", "a conv layer needs 'filters'"),
    ("string for int", net(conv(sx="5")), "network.layers[1].sx", 'sx must be a whole number, not a string ("5")'),
    ("float for int", net(conv(filters=8.5)), "network.layers[1].filters",
     "filters must be a whole number, not a decimal number (8.5)"),
    ("whole float for int", net(conv(stride=1.0)), "network.layers[1].stride", "not a decimal number (1.0)"),
    ("bool for int", net(conv(pad=True)), "network.layers[1].pad", "pad must be a whole number, not a boolean (true)"),
    ("null for int", net(conv(sx=None)), "network.layers[1].sx", "sx must be a whole number, not null"),
    ("list for int", net(conv(sx=[5])), "network.layers[1].sx", "sx must be a whole number, not a list"),
    ("string for number", net(conv(bias_pref="0.1")), "network.layers[1].bias_pref", "bias_pref must be a number"),
    ("infinite number", net(conv(bias_pref=float("inf"))), "network.layers[1].bias_pref", "must be a finite number"),
    ("huge number", net(conv(bias_pref=10**400)), "network.layers[1].bias_pref", "must be a finite number, not 1e400"),
    ("negative decay multiplier", net(conv(l2_decay_mul=-1)), "network.layers[1].l2_decay_mul",
     "l2_decay_mul must not be negative, got -1"),
    ("bad activation", net(conv(activation="rellu")), "network.layers[1].activation",
     "activation must be one of relu, sigmoid, tanh, maxout, not a string (\"rellu\"). Did you mean 'relu'?"),
    ("drop_prob of 1", net({"type": "dropout", "drop_prob": 1}), "network.layers[1].drop_prob",
     "drop_prob is a probability and must be at least 0 and below 1, got 1"),
    ("zero size", net(conv(sx=0)), "network.layers[1].sx", "sx must be at least 1, got 0"),
    ("negative filters", net(conv(filters=-3)), "network.layers[1].filters", "filters must be at least 1, got -3"),
    ("zero stride", net(conv(stride=0)), "network.layers[1].stride", "stride must be at least 1, got 0"),
    ("zero pool stride", net({"type": "pool", "sx": 2, "stride": 0}), "network.layers[1].stride", "at least 1, got 0"),
    ("negative pad", net(conv(pad=-1)), "network.layers[1].pad", "pad must not be negative, got -1"),
    ("zero input depth", net(first={"type": "input", "out_sx": 24, "out_sy": 24, "out_depth": 0}),
     "network.layers[0].out_depth", "out_depth must be at least 1, got 0"),
    ("missing input depth", net(first={"type": "input", "out_sx": 24, "out_sy": 24}),
     "network.layers[0].out_depth", "an input layer needs 'out_depth'"),
    ("zero classes", net(last={"type": "softmax", "num_classes": 0}), "network.layers[1].num_classes", "at least 1"),
    ("even lrn window", net({"type": "lrn", "k": 1, "n": 4, "alpha": 1, "beta": 1}), "network.layers[1].n", "n must be odd"),
    ("conv pad too large", net(conv(sx=3, pad=3)), "network.layers[1].pad",
     "pad 3 is too large for a 3x3 conv filter: it must be smaller than the filter"),
    ("pool pad too large", net({"type": "pool", "sx": 2, "pad": 2}), "network.layers[1].pad",
     "pad 2 is too large for a 2x2 pool window: it must be at most half the window"),
    ("pool does not fit", net({"type": "pool", "sx": 3, "stride": 1},
                              first={"type": "input", "out_sx": 2, "out_sy": 2, "out_depth": 1}),
     "network.layers[1].sx", "pool window 3x3 does not fit a 2x2 input"),
    ("conv does not fit", net(conv(sx=30)), "network.layers[1].sx", "conv filter 30x30 does not fit a 24x24 input"),
    ("conv does not fit with pad", net(conv(sx=9, pad=2), first={"type": "input", "out_sx": 4, "out_sy": 4, "out_depth": 1}),
     "network.layers[1].sx", "conv filter 9x9 does not fit a 4x4 input (padded by 2)"),
    ("output collapses to zero", net(*[{"type": "pool", "sx": 2, "stride": 2}] * 5), "network.layers[5].sx",
     "pool window 2x2 does not fit a 1x1 input, so its output would have zero size"),
    ("maxout collapses depth", net(conv(filters=1, activation="maxout")), "network.layers[1].group_size",
     "maxout groups of 2 do not fit a depth of 1, so its output would have zero depth"),
]


@pytest.mark.parametrize(("case", "spec", "path", "message"), ERRORS, ids=[row[0] for row in ERRORS])
def test_errors(case, spec, path, message):
    errors = errors_of(spec)
    assert any(p == path and message in m for p, m in errors), errors


def test_every_problem_is_reported_at_once():
    spec = {"layers": [conv(), {"type": "conv", "sx": "5", "filter": 8}, {"type": "poool"}, conv(pad=-1)]}
    paths = [path for path, _ in errors_of(spec)]
    assert paths == ["network.layers[1].sx", "network.layers[1].filter", "network.layers[1].filters",
                     "network.layers[2].type", "network.layers[3].pad",
                     "network.layers[0].type", "network.layers[3].type"]


def test_prefix_names_the_paths():
    assert errors_of({"layers": []}, prefix="spec")[0][0] == "spec.layers"


@pytest.mark.parametrize(("n", "text"), [
    (0, "0"), (208, "208"), (99_999, "99999"), (100_000, "1e5"), (123_456, "1.2e5"), (5e7, "5e7"),
    (50_000_000, "5e7"), (2.1e9, "2.1e9"), (2_136_000_000, "2.1e9"), (9.96e9, "1e10"), (-3e6, "-3e6"),
    (0.5, "0.5"), (10**400, "1e400"), (float("inf"), "inf"),
])
def test_sci(n, text):
    assert netspec.sci(n) == text


def test_parameter_limit_message():
    # 576 inputs * 3.64e6 neurons, then 10 * 3.64e6 for the softmax's fc: about 2.1e9 parameters.
    spec = net({"type": "fc", "num_neurons": 3_640_000})
    assert errors_of(spec) == [("network.layers", "2.1e9 parameters is more than the limit of 5e7")]


@pytest.mark.parametrize(("limits", "spec", "message"), [
    (Limits(max_params=1000), example("net1-default"), "5994 parameters is more than the limit of 1000"),
    (Limits(max_params=1000), example("net4-16filters"), "9402 parameters is more than the limit of 1000"),
    (Limits(max_activations=10_000), example("net1-default"),
     "15828 activations per example is more than the limit of 10000"),
    (Limits(), net(first={"type": "input", "out_sx": 5000, "out_sy": 5000, "out_depth": 3}),
     "7.5e7 activations per example is more than the limit of 2e7"),
    (Limits(max_layers=5), example("net1-default"), "6 layers is more than the limit of 5"),
    (Limits(), {"layers": [{"type": "relu"}] * 101}, "101 layers is more than the limit of 100"),
])
def test_limits(limits, spec, message):
    errors = errors_of(spec, limits)
    assert ("network.layers", message) in errors, errors


def test_limits_let_the_examples_through():
    for name, *_ in SIX_NETWORKS:
        netspec.analyze(example(name), Limits(max_layers=8, max_params=12_000, max_activations=30_000))


def test_table_lists_every_layer_and_the_totals():
    text = netspec.table(netspec.analyze(example("net1-default")))
    lines = text.splitlines()
    assert lines[0].split() == ["#", "layer", "type", "output", "params", "macs"]
    assert len(lines) == 1 + 9 + 1
    assert "conv 5x5/1 pad 2" in lines[2] and "24x24x8" in lines[2] and "208" in lines[2]
    assert "pool 3x3/3" in lines[7] and "4x4x16" in lines[7]
    assert lines[-1].split() == ["total", "5,994", "578,560"]


def test_messages_are_sentences():
    """Every message names what is wrong in plain words: no Python reprs, no exception class names."""
    for _, spec, _, _ in ERRORS:
        for _, message in errors_of(spec):
            assert message[:1].islower() or message[:1].isdigit() or message[:1] in ("'", '"'), message
            for leak in ("None", "True", "False", "<class", "Traceback", "KeyError", "'int'", "'float'"):
                assert leak not in message, message


# Property: whatever a client sends, analyze returns a network or raises InvalidSpec, nothing else.

FIELD_NAMES = sorted({name for fields in LAYERS.values() for f_name, f in fields.items()
                      for name in (f_name, *f.aliases)} | {"type"})
GARBAGE = st.recursive(
    st.none() | st.booleans() | st.floats() | st.text(max_size=10)
    | st.integers(-10, 40) | st.integers() | st.sampled_from([10**30, -(10**30), 10**400, 2**63]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)
PLAUSIBLE = st.one_of(st.integers(0, 30), st.sampled_from(["relu", "tanh", "maxout", "sigmoid", "soft"]),
                      st.floats(0, 1), GARBAGE)
LAYER_TYPES = st.sampled_from([*LAYERS, "conv2d", "", "Conv", "ïnput"]) | GARBAGE


@st.composite
def layer_dicts(draw):
    layer = draw(st.dictionaries(st.sampled_from(FIELD_NAMES) | st.text(max_size=6), PLAUSIBLE, max_size=6))
    if draw(st.booleans()):
        layer["type"] = draw(LAYER_TYPES)
    return layer


INPUT = st.fixed_dictionaries({"type": st.just("input"), "out_sx": st.integers(1, 30),
                               "out_sy": st.integers(1, 30), "out_depth": st.integers(1, 4)})
LOSS = st.fixed_dictionaries({"type": st.sampled_from(["softmax", "svm"]), "num_classes": st.integers(1, 12)})
ACTIVATIONS = ["relu", "maxout", "tanh"]
HIDDEN = st.one_of(
    layer_dicts(),
    st.fixed_dictionaries({"type": st.just("conv"), "sx": st.integers(1, 7), "filters": st.integers(1, 4)},
                          optional={"stride": st.integers(1, 3), "pad": st.integers(0, 3),
                                    "activation": st.sampled_from(ACTIVATIONS)}),
    st.fixed_dictionaries({"type": st.just("pool"), "sx": st.integers(1, 4)},
                          optional={"stride": st.integers(1, 3), "pad": st.integers(0, 2)}),
    st.fixed_dictionaries({"type": st.just("fc"), "num_neurons": st.integers(1, 20)},
                          optional={"activation": st.sampled_from(ACTIVATIONS), "drop_prob": st.floats(0, 0.9)}),
    GARBAGE,
)
LAYER_LISTS = st.builds(lambda head, body, tail: head + body + tail,
                        st.lists(INPUT | layer_dicts(), max_size=1), st.lists(HIDDEN, max_size=6),
                        st.lists(LOSS | layer_dicts(), max_size=1))
SPECS = st.one_of(st.fixed_dictionaries({"layers": LAYER_LISTS}), st.dictionaries(st.text(max_size=6), GARBAGE), GARBAGE)


def check_outcome(spec, limits=Limits()):
    try:
        network = netspec.analyze(spec, limits)
    except InvalidSpec as exc:
        assert exc.errors
        for error in exc.errors:
            assert isinstance(error.path, str) and error.path.startswith("network")
            assert isinstance(error.message, str) and error.message
        return None
    assert network.layers[0]["type"] == "input" and network.output["type"] in netspec.LOSS_TYPES
    for layer in network.layers:
        assert min(layer["out_sx"], layer["out_sy"], layer["out_depth"]) >= 1
    assert network.params == sum(layer["params"] for layer in network.layers) <= limits.max_params
    json.dumps(network.as_dict())
    netspec.table(network)
    return network


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(SPECS)
def test_any_spec_validates_or_raises_invalid_spec(spec):
    check_outcome(spec)


@settings(max_examples=200, deadline=None)
@given(LAYER_LISTS)
def test_any_layer_list_validates_or_raises_invalid_spec(layers):
    check_outcome({"layers": layers}, Limits(max_layers=6, max_params=5_000, max_activations=20_000))
