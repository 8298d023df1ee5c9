"""Tests for reading ConvNetJS demo source as data."""

import json
import math
import pathlib
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from service.spec import jsparse
from service.spec.netspec import InvalidSpec

EXAMPLES = pathlib.Path(__file__).resolve().parents[3] / "examples"
INPUT = "layer_defs.push({type:'input', out_sx:24, out_sy:24, out_depth:1});"
SOFTMAX = "layer_defs.push({type:'softmax', num_classes:10});"


def test_demo_paste_matches_the_json_example():
    paste = jsparse.parse((EXAMPLES / "net1-default.js").read_text())
    request = json.loads((EXAMPLES / "net1-default.json").read_text())
    assert paste.layers == request["network"]["layers"]
    assert paste.trainer == request["trainer"]
    assert paste.lines == [2, 3, 4, 5, 6, 7]


# Each row: demo source, the layers it holds, its trainer options, and each layer's line.
ACCEPTED = [
    ("var declarations and comments",
     "var layer_defs, net, trainer;\nlet x = [];\n// a comment; with a semicolon\n"
     f"{INPUT} /* a block\ncomment */ {SOFTMAX}\n",
     [{"type": "input", "out_sx": 24, "out_sy": 24, "out_depth": 1}, {"type": "softmax", "num_classes": 10}],
     None, [4, 5]),
    ("object over several lines",
     f"{INPUT}\nlayer_defs.push({{\n  type: 'fc',\n  num_neurons: 20, // hidden units\n}});\n{SOFTMAX}",
     [{"type": "input", "out_sx": 24, "out_sy": 24, "out_depth": 1}, {"type": "fc", "num_neurons": 20},
      {"type": "softmax", "num_classes": 10}],
     None, [1, 2, 6]),
    ("a whole array at once",
     "const layer_defs = [{type:'input', out_depth:1},\n {type:\"softmax\", num_classes:10}];",
     [{"type": "input", "out_depth": 1}, {"type": "softmax", "num_classes": 10}], None, [1, 2]),
    ("trainer without options",
     f"{INPUT}\nvar trainer = new convnetjs.Trainer(net);", [{"type": "input", "out_sx": 24, "out_sy": 24, "out_depth": 1}],
     {}, [1]),
    ("trainer with options and no semicolons",
     f"{INPUT}\ntrainer = new convnetjs.SGDTrainer(net, {{method:'adam', learning_rate:0.001, batch_size:8}})",
     [{"type": "input", "out_sx": 24, "out_sy": 24, "out_depth": 1}],
     {"method": "adam", "learning_rate": 0.001, "batch_size": 8}, [1]),
    ("semicolons and quotes inside strings",
     "layer_defs.push({type:'fc', note:'a;b\\'c\"d', other:\"x;y\"});",
     [{"type": "fc", "note": "a;b'c\"d", "other": "x;y"}], None, [1]),
    ("json5 numbers", "layer_defs.push({a:0x1F, b:.5, c:+3, d:-2});", [{"a": 31, "b": 0.5, "c": 3, "d": -2}], None, [1]),
    ("not an object: kept for netspec to report", "layer_defs.push(5)", [5], None, [1]),
]


@pytest.mark.parametrize(("case", "text", "layers", "trainer", "lines"), ACCEPTED, ids=[row[0] for row in ACCEPTED])
def test_accepted(case, text, layers, trainer, lines):
    paste = jsparse.parse(text)
    assert (paste.layers, paste.trainer, paste.lines) == (layers, trainer, lines)


# Each row: demo source, then (line, words in the message) for every error.
REFUSED = [
    ("empty", "", [(None, "no layer_defs.push({...}) statements found")]),
    ("only comments", "// nothing\n/* here */", [(None, "no layer_defs.push({...}) statements found")]),
    ("code that is not data", f"{INPUT}\nalert('hi');\n{SOFTMAX}",
     [(2, "line 2: 'alert('hi')' is not a layer_defs.push(...) or SGDTrainer statement")]),
    ("a loop", "for (var i = 0; i < 3; i++) { layer_defs.push({type:'fc'}) }",
     [(1, "is not a layer_defs.push(...) or SGDTrainer statement")]),
    ("unquoted string value", f"{INPUT}\nlayer_defs.push({{type: conv, sx: 5}});",
     [(2, "line 2: cannot read the layer definition: use only numbers, quoted strings")]),
    ("function call inside", "layer_defs.push({type:'fc', num_neurons: Math.floor(3.5)});",
     [(1, "cannot read the layer definition")]),
    ("trainer options not an object", f"{INPUT}\ntrainer = new convnetjs.SGDTrainer(net, {{method: adam}});",
     [(2, "line 2: cannot read the trainer options")]),
    ("bad layer list", "layer_defs = [{type:'input'},, oops];", [(1, "cannot read the layer list")]),
    ("deep nesting", "layer_defs.push(" + "[" * 5000 + ")", [(1, "it is nested too deeply")]),
    ("long statement shortened", "x" * 100 + "();", [(1, "x" * 57 + "...")]),
    ("every problem at once", "foo();\nlayer_defs.push({a:});\nbar();",
     [(1, "line 1:"), (2, "line 2:"), (3, "line 3:")]),
    ("arithmetic is code", "layer_defs.push({sx: 5+3})", [(1, "a ',' is missing between two items, at 3}")]),
    ("a sign inside a sum", "layer_defs.push({sx: 5+0x1F, b: 1-2})", [(1, "cannot read the layer definition")]),
    ("a number glued to a name", "layer_defs.push({sx: 10x5})", [(1, "cannot read the layer definition")]),
    ("leading zero", "layer_defs.push({sx: 05})", [(1, "cannot read the layer definition")]),
    ("numeric key", "layer_defs.push({1: 2})", [(1, "a key must be a name or quoted text")]),
    ("template string", "layer_defs.push({type: `conv`})", [(1, "template strings (`...`) are not read")]),
    ("octal escape", "layer_defs.push({type: '\\1'})", [(1, "octal escapes")]),
    ("quote not closed", "layer_defs.push({type:'fc})\nlayer_defs.push({type:5 6})",
     [(1, "line 1: a quote (') is not closed on its line"), (2, "line 2: cannot read the layer definition")]),
    ("comment not closed", "layer_defs.push({type:'fc'})\n/* the rest", [(2, "a /* comment is not closed")]),
    ("error on the line of the bad item", "layer_defs.push({\n  type: 'fc',\n  sx: oops\n})",
     [(3, "line 3: cannot read the layer definition: use only numbers, quoted strings, true/false, lists and "
          "objects, as in {type:'conv', sx:5} (oops is not a value: write text in quotes, as 'oops')")]),
    ("a name holding an object inside a literal", "o = {a: 1}\nlayer_defs.push({type: o})",
     [(2, "o holds an object; inside a literal a name may stand only for a number or text")]),
    ("push to something that is not an array", "net = new convnetjs.Net()\nnet.push({type:'fc'})",
     [(2, "net.push(...) needs net to be an array (net = []), but net is a convnetjs.Net")]),
    ("unknown variable", "layer_defs = others", [(1, "others is not defined before this line")]),
]


@pytest.mark.parametrize(("case", "text", "expected"), REFUSED, ids=[row[0] for row in REFUSED])
def test_refused(case, text, expected):
    with pytest.raises(InvalidSpec) as info:
        jsparse.parse(text)
    errors = info.value.errors
    assert len(errors) == len(expected), errors
    for error, (line, words) in zip(errors, expected):
        assert error.path == "convnetjs"
        assert error.line == line
        assert words in error.message


def test_not_text():
    with pytest.raises(InvalidSpec) as info:
        jsparse.parse(None)
    assert info.value.errors[0].message == "the demo source must be text (a string)"


def test_errors_carry_their_line_in_the_machine_form():
    with pytest.raises(InvalidSpec) as info:
        jsparse.parse("\n\nalert(1)")
    assert info.value.errors[0].as_dict() == {
        "path": "convnetjs", "line": 3,
        "message": "line 3: 'alert(1)' is not a layer_defs.push(...) or SGDTrainer statement; "
                   "only layer definitions and trainer options are read"}


FRAGMENTS = st.sampled_from([
    "layer_defs.push(", ")", ";", "\n", "{", "}", "[", "]", "'", '"', "`", "//", "/*", "*/", "type:", "'conv'",
    "sx:", "5", ",", "trainer = new convnetjs.SGDTrainer(net, ", "var ", "x = ", "new convnetjs.Net()", "\\",
    "1e999", "NaN", "0x", "Infinity", "-", ".", " ", "net.makeLayers(layer_defs)", "\u00e9", "\u2028",
    "trainer_defs.push(", "net.makeLayers(", "net = new convnetjs.Net()", "new convnetjs.Trainer(net", "layer_defs",
    "layer_defs = ", "opts", "LR", "= ", "0.01", "0x1F", "+", "true", "null", "{type:'input'}", "\r\n", "${",
    "\\\n", "\ud800", "var LR = 0.1;", "a.push", ".push(",
])
SOURCES = st.text() | st.lists(FRAGMENTS | st.text(max_size=3), max_size=40).map("".join)


@settings(max_examples=1000, deadline=None)
@given(SOURCES)
def test_any_text_parses_or_raises_invalid_spec(text):
    try:
        paste = jsparse.parse(text)
    except InvalidSpec as exc:
        assert exc.errors and all(e.path == "convnetjs" and e.message for e in exc.errors)
    else:
        assert paste.layers and len(paste.layers) == len(paste.lines)
        assert paste.trainer is None or isinstance(paste.trainer, dict)


# ---- the network is the array handed to net.makeLayers; the trainer is SGDTrainer's options ---------
# The text of the "Instantiate a Network and Trainer" box of the ConvNetJS demos, as the page fills it in
# (karpathy/convnetjs at 4c3358a, demo/mnist.html and demo/cifar10.html: `var t = "..."`, the \n escapes read).
MNIST_DEMO = "\n  ".join([  # the page indents every line after the first by two spaces
    "layer_defs = [];",
    "layer_defs.push({type:'input', out_sx:24, out_sy:24, out_depth:1});",
    "layer_defs.push({type:'conv', sx:5, filters:8, stride:1, pad:2, activation:'relu'});",
    "layer_defs.push({type:'pool', sx:2, stride:2});",
    "layer_defs.push({type:'conv', sx:5, filters:16, stride:1, pad:2, activation:'relu'});",
    "layer_defs.push({type:'pool', sx:3, stride:3});",
    "layer_defs.push({type:'softmax', num_classes:10});",
    "",
    "net = new convnetjs.Net();",
    "net.makeLayers(layer_defs);",
    "",
    "trainer = new convnetjs.SGDTrainer(net, {method:'adadelta', batch_size:20, l2_decay:0.001});",
    "",
])
MNIST_LAYERS = [
    {"type": "input", "out_sx": 24, "out_sy": 24, "out_depth": 1},
    {"type": "conv", "sx": 5, "filters": 8, "stride": 1, "pad": 2, "activation": "relu"},
    {"type": "pool", "sx": 2, "stride": 2},
    {"type": "conv", "sx": 5, "filters": 16, "stride": 1, "pad": 2, "activation": "relu"},
    {"type": "pool", "sx": 3, "stride": 3},
    {"type": "softmax", "num_classes": 10},
]
CIFAR10_DEMO = "\n  ".join([  # the page indents every line after the first by two spaces
    "layer_defs = [];",
    "layer_defs.push({type:'input', out_sx:32, out_sy:32, out_depth:3});",
    "layer_defs.push({type:'conv', sx:5, filters:16, stride:1, pad:2, activation:'relu'});",
    "layer_defs.push({type:'pool', sx:2, stride:2});",
    "layer_defs.push({type:'conv', sx:5, filters:20, stride:1, pad:2, activation:'relu'});",
    "layer_defs.push({type:'pool', sx:2, stride:2});",
    "layer_defs.push({type:'conv', sx:5, filters:20, stride:1, pad:2, activation:'relu'});",
    "layer_defs.push({type:'pool', sx:2, stride:2});",
    "layer_defs.push({type:'softmax', num_classes:10});",
    "",
    "net = new convnetjs.Net();",
    "net.makeLayers(layer_defs);",
    "",
    "trainer = new convnetjs.SGDTrainer(net, {method:'adadelta', batch_size:4, l2_decay:0.0001});",
    "",
])
CIFAR10_LAYERS = [
    {"type": "input", "out_sx": 32, "out_sy": 32, "out_depth": 3},
    {"type": "conv", "sx": 5, "filters": 16, "stride": 1, "pad": 2, "activation": "relu"},
    {"type": "pool", "sx": 2, "stride": 2},
    {"type": "conv", "sx": 5, "filters": 20, "stride": 1, "pad": 2, "activation": "relu"},
    {"type": "pool", "sx": 2, "stride": 2},
    {"type": "conv", "sx": 5, "filters": 20, "stride": 1, "pad": 2, "activation": "relu"},
    {"type": "pool", "sx": 2, "stride": 2},
    {"type": "softmax", "num_classes": 10},
]
# demo/js/trainers.js (the trainer comparison page): layers without makeLayers, then trainer_defs built
# from variables, and a legend; the page itself runs makeLayers and the trainers.
TRAINERS_DEMO = """
// lets use an example fully-connected 2-layer ReLU net
var layer_defs = [];
layer_defs.push({type:'input', out_sx:24, out_sy:24, out_depth:1});
layer_defs.push({type:'fc', num_neurons:20, activation:'relu'});
layer_defs.push({type:'fc', num_neurons:20, activation:'relu'});
layer_defs.push({type:'softmax', num_classes:10});

// below fill out the trainer specs you wish to evaluate, and give them names for legend
var LR = 0.01; // learning rate
var BS = 8; // batch size
var L2 = 0.001; // L2 weight decay
nets = [];
trainer_defs = [];
trainer_defs.push({learning_rate:LR, method: 'sgd', momentum: 0.0, batch_size:BS, l2_decay:L2});
trainer_defs.push({learning_rate:LR, method: 'sgd', momentum: 0.9, batch_size:BS, l2_decay:L2});
trainer_defs.push({learning_rate:LR, method: 'adam', eps: 1e-8, beta1: 0.9, beta2: 0.99, batch_size:BS, l2_decay:L2});
trainer_defs.push({learning_rate:LR, method: 'adagrad', eps: 1e-6, batch_size:BS, l2_decay:L2});
trainer_defs.push({learning_rate:LR, method: 'windowgrad', eps: 1e-6, ro: 0.95, batch_size:BS, l2_decay:L2});
trainer_defs.push({learning_rate:1.0, method: 'adadelta', eps: 1e-6, ro:0.95, batch_size:BS, l2_decay:L2});
trainer_defs.push({learning_rate:LR, method: 'nesterov', momentum: 0.9, batch_size:BS, l2_decay:L2});

// names for all trainers above
legend = ['sgd', 'sgd+momentum', 'adam', 'adagrad', 'windowgrad', 'adadelta', 'nesterov'];
"""
TRAINER_DEFS = "trainer_defs.push({method:'sgd'})"
DEMOS = [
    ("mnist", MNIST_DEMO, MNIST_LAYERS, {"method": "adadelta", "batch_size": 20, "l2_decay": 0.001}),
    ("cifar10", CIFAR10_DEMO, CIFAR10_LAYERS, {"method": "adadelta", "batch_size": 4, "l2_decay": 0.0001}),
    ("net1-default.js", (EXAMPLES / "net1-default.js").read_text(), MNIST_LAYERS,
     {"method": "adadelta", "batch_size": 20, "l2_decay": 0.001}),
]


def _with_trainer_defs(text: str, where: str) -> str:
    lines = text.split("\n")
    if where == "first":
        return f"trainer_defs = [];\n{TRAINER_DEFS};\n" + text
    if where == "after the layers":  # right after the last push, before makeLayers
        last = max(i for i, line in enumerate(lines) if "layer_defs.push" in line)
        return "\n".join(lines[:last + 1] + [f"  {TRAINER_DEFS};"] + lines[last + 1:])
    return text + f"\n{TRAINER_DEFS}\n"


@pytest.mark.parametrize(("name", "text", "layers", "trainer"), DEMOS, ids=[d[0] for d in DEMOS])
def test_demo_texts_give_their_layers_and_trainer(name, text, layers, trainer):
    paste = jsparse.parse(text)
    assert (paste.layers, paste.trainer, paste.notes) == (layers, trainer, [])
    assert paste.lines == list(range(2, 2 + len(layers)))


@pytest.mark.parametrize("where", ["first", "after the layers", "last"])
@pytest.mark.parametrize(("name", "text", "layers", "trainer"), DEMOS, ids=[d[0] for d in DEMOS])
def test_a_trainer_defs_push_is_not_a_layer(name, text, layers, trainer, where):
    changed = _with_trainer_defs(text, where)
    paste = jsparse.parse(changed)
    assert (paste.layers, paste.trainer) == (layers, trainer)
    push_line = next(i for i, line in enumerate(changed.split("\n"), 1) if "trainer_defs.push" in line)
    assert [(n.path, n.line) for n in paste.notes] == [("convnetjs", push_line)]
    assert paste.notes[0].message.startswith(f"line {push_line}: trainer_defs.push(...) is not part of the network")
    assert "net.makeLayers(layer_defs) on line" in paste.notes[0].message


def test_a_trainer_defs_push_does_not_change_the_job_request():
    from service.config import Config
    from service.spec import schemas

    demo = (EXAMPLES / "net1-default.js").read_text()
    plain = schemas.load_job_request({"convnetjs": demo, "budget": {"examples": 100}, "seed": 1}, Config())
    extra = schemas.load_job_request({"convnetjs": _with_trainer_defs(demo, "after the layers"),
                                      "budget": {"examples": 100}, "seed": 1}, Config())
    assert extra[0] == plain[0] and extra[1].layers == plain[1].layers
    assert plain[0]["trainer"]["method"] == "adadelta" and plain[0]["trainer"]["batch_size"] == 20


def test_the_trainer_comparison_demo_gives_its_layers_and_no_trainer():
    paste = jsparse.parse(TRAINERS_DEMO)
    assert paste.layers == [{"type": "input", "out_sx": 24, "out_sy": 24, "out_depth": 1},
                            {"type": "fc", "num_neurons": 20, "activation": "relu"},
                            {"type": "fc", "num_neurons": 20, "activation": "relu"},
                            {"type": "softmax", "num_classes": 10}]
    assert (paste.lines, paste.trainer) == ([4, 5, 6, 7], None)
    assert [n.line for n in paste.notes] == [15, 24]
    assert "trainer_defs.push(...) on 7 lines (15 to 21) are not part of the network" in paste.notes[0].message
    assert "legend = [...] is not the network's layer array" in paste.notes[1].message


NET = "net = new convnetjs.Net();\n"
# Each row: demo source, then the layers' types, their lines and the trainer options.
MADE = [
    ("a literal array handed to makeLayers",
     NET + "net.makeLayers([{type:'input', out_depth:1},\n  {type:'softmax', num_classes:2}]);",
     ["input", "softmax"], [2, 3], None),
    ("pushes after makeLayers are not layers",
     "layer_defs = [];\n" + INPUT + "\n" + NET + "net.makeLayers(layer_defs);\n" + SOFTMAX,
     ["input"], [2], None),
    ("the array is read as it is at makeLayers",
     "a = [];\na.push({type:'input'});\nnet.makeLayers(a);\na.push({type:'fc'});\nnet.makeLayers(a);\n"
     "a.push({type:'softmax'})",
     ["input", "fc"], [2, 4], None),
    ("any array name", "my_layers = [{type:'input'}];\n" + NET + "net.makeLayers(my_layers);\n"
     "layer_defs = [];\nlayer_defs.push({type:'fc'})", ["input"], [1], None),
    ("the net the trainer trains", "a = [{type:'input'}]; b = [{type:'fc'}];\n"
     "n1 = new convnetjs.Net(); n1.makeLayers(a);\nn2 = new convnetjs.Net(); n2.makeLayers(b);\n"
     "trainer = new convnetjs.SGDTrainer(n1, {method:'sgd'});", ["input"], [1], {"method": "sgd"}),
    ("else the last net made", "a = [{type:'input'}]; b = [{type:'fc'}];\nn1 = new convnetjs.Net(); "
     "n1.makeLayers(a);\nn2 = new convnetjs.Net(); n2.makeLayers(b);", ["fc"], [1], None),
    ("trainer options in a variable", "var opts = {method:'nesterov', momentum:0.8};\n" + NET
     + "net.makeLayers([{type:'input'}]);\nvar trainer = new convnetjs.SGDTrainer(net, opts);",
     ["input"], [3], {"method": "nesterov", "momentum": 0.8}),
    ("trainer options over several lines, with names for numbers",
     "var LR = 0.02;\nvar BS;\nBS = 8\n" + NET + "net.makeLayers([{type:'input'}])\n"
     "trainer = new convnetjs.SGDTrainer(net, {\n  method: 'sgd', // plain\n  learning_rate: LR,\n"
     "  batch_size: BS,\n})", ["input"], [5], {"method": "sgd", "learning_rate": 0.02, "batch_size": 8}),
    ("convnetjs.Trainer and a trailing comma", NET + "net.makeLayers([{type:'input'}])\n"
     "t = new convnetjs.Trainer(net, {method:'adagrad',},)", ["input"], [2], {"method": "adagrad"}),
    ("the last trainer counts", NET + "net.makeLayers([{type:'input'}])\n"
     "t = new convnetjs.SGDTrainer(net, {method:'adagrad'})\nt = new convnetjs.SGDTrainer(net, {method:'adam'})",
     ["input"], [2], {"method": "adam"}),
    ("no makeLayers: the one array of layers, not trainer_defs",
     "layers = [];\nlayers.push({type:'input'});\ntrainer_defs = [];\n" + TRAINER_DEFS + "\nlegend = ['a'];",
     ["input"], [2], None),
    ("no makeLayers: layer_defs even when it holds no {type}", "layer_defs.push(5)\n" + TRAINER_DEFS,
     [None], [1], None),
]


@pytest.mark.parametrize(("case", "text", "types", "lines", "trainer"), MADE, ids=[row[0] for row in MADE])
def test_the_layers_are_what_makelayers_gets(case, text, types, lines, trainer):
    paste = jsparse.parse(text)
    assert [layer.get("type") if isinstance(layer, dict) else None for layer in paste.layers] == types
    assert (paste.lines, paste.trainer) == (lines, trainer)
    assert all(n.path == "convnetjs" and n.line and n.message.startswith(f"line {n.line}: ") for n in paste.notes)


def test_notes_name_what_is_ignored():
    paste = jsparse.parse("layer_defs = [];\n" + INPUT + "\n" + NET + "net.makeLayers(layer_defs);\n" + SOFTMAX
                          + "\nt = new convnetjs.SGDTrainer(net, {method:'sgd'})\nt = new convnetjs.SGDTrainer(net)")
    assert [n.message for n in paste.notes] == [
        "line 6: this trainer is replaced by the one on line 7",
        "line 5: layer_defs.push(...) is after net.makeLayers(layer_defs) on line 4, too late for the network; ignored",
    ]
    assert paste.trainer == {}


MADE_REFUSED = [
    ("makeLayers of nothing", "net.makeLayers(layer_defs)",
     "line 1: net.makeLayers(layer_defs) needs layer_defs to be the array of layer definitions "
     "(layer_defs = [] and layer_defs.push({...})), but layer_defs is not defined"),
    ("makeLayers of a declared name", "var layer_defs, net;\nnet.makeLayers(layer_defs)", "layer_defs has no value"),
    ("makeLayers of an empty array", "layer_defs = [];\n" + NET + "net.makeLayers(layer_defs);\n" + INPUT,
     "line 3: layer_defs is empty when net.makeLayers(layer_defs) is called: no layer_defs.push({...}) "
     "statements found before it"),
    ("makeLayers on a non-net", "net = [];\nnet.makeLayers([{type:'input'}])",
     "net.makeLayers(...) needs net = new convnetjs.Net(), but net is an array"),
    ("makeLayers of code", NET + "net.makeLayers(build())", "'net.makeLayers(build())' is not a layer_defs.push"),
    ("the trainer's net has no layers", "a = [{type:'input'}];\nn1 = new convnetjs.Net();\nn2 = new convnetjs.Net();\n"
     "n2.makeLayers(a);\ntrainer = new convnetjs.SGDTrainer(n1, {});",
     "line 5: the trainer trains n1, but n1.makeLayers(...) is never called"),
    ("trainer options not defined", INPUT + "\ntrainer = new convnetjs.SGDTrainer(net, opts)",
     "line 2: the trainer options opts are not defined before this line"),
    ("trainer options a list", INPUT + "\ntrainer = new convnetjs.SGDTrainer(net, [1])",
     "line 2: the trainer options must be an object"),
    ("trainer options a number variable", "o = 5\n" + INPUT + "\ntrainer = new convnetjs.SGDTrainer(net, o)",
     "line 3: the trainer options must be an object"),
    ("no makeLayers and only trainer_defs", "trainer_defs = [];\n" + TRAINER_DEFS,
     "no layer_defs.push({...}) statements found; trainer_defs hold no {type: ...} layer definitions; the network "
     "is the array handed to net.makeLayers(layer_defs)"),
    ("no makeLayers and two layer arrays", "a = [{type:'input'}]\nb = []\nb.push({type:'fc'})",
     "several arrays hold layer definitions: a (line 1), b (line 2); say which one is the network with "
     "net.makeLayers(<that array>)"),
]


@pytest.mark.parametrize(("case", "text", "message"), MADE_REFUSED, ids=[row[0] for row in MADE_REFUSED])
def test_makelayers_and_trainer_refused(case, text, message):
    with pytest.raises(InvalidSpec) as info:
        jsparse.parse(text)
    assert [e.path for e in info.value.errors] == ["convnetjs"]
    assert message in info.value.errors[0].message


def test_lines_follow_continuations_and_comments():
    text = ("layer_defs = [{type:'in\\\nput'}, /* two\nlines */ {type:'fc'},\n  {type:'softmax'}];\n"
            "layer_defs.push(\n  {type:'relu'}, {type:'tanh'},\n\n  {type:'svm'})")
    paste = jsparse.parse(text)
    assert [layer["type"] for layer in paste.layers] == ["input", "fc", "softmax", "relu", "tanh", "svm"]
    assert paste.lines == [1, 3, 4, 6, 6, 8]


# ---- JSON5 literals read as json5 reads them ------------------------------------------------
KEYS = st.from_regex(r"[A-Za-z_$][A-Za-z0-9_$]{0,6}", fullmatch=True) | st.text(max_size=6)
SCALARS = (st.integers(-10**30, 10**30) | st.floats(allow_nan=False) | st.booleans() | st.none()
           | st.text(max_size=8))
VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4)
                      | st.dictionaries(KEYS, inner, max_size=4), max_leaves=12)


@st.composite
def json5_text(draw, value):
    """Some JSON5 spelling of value, with the styles a demo user writes."""
    space = draw(st.sampled_from(["", " ", "\n  ", " /* c */ ", " // c\n"]))
    if isinstance(value, bool) or value is None:
        return {True: "true", False: "false", None: "null"}[value]
    if isinstance(value, int):
        style = draw(st.sampled_from(["dec", "hex", "plus"]))
        if style == "hex" and value >= 0:
            return hex(value) if draw(st.booleans()) else hex(value).upper().replace("X", "x")
        return f"+{value}" if style == "plus" and value >= 0 else str(value)
    if isinstance(value, float):
        if math.isinf(value):
            return "Infinity" if value > 0 else "-Infinity"
        text = repr(value)
        if text.startswith("0.") and draw(st.booleans()):
            return text[1:]  # .5
        if text.endswith(".0") and draw(st.booleans()):
            return text[:-1]  # 5.
        return text
    if isinstance(value, str):
        quoted = json.dumps(value, ensure_ascii=draw(st.booleans()))
        if draw(st.booleans()):
            return quoted
        return "'" + quoted[1:-1].replace('\\"', '"').replace("'", "\\'") + "'"
    if isinstance(value, list):
        items = [draw(json5_text(v)) for v in value]
        trailing = "," if items and draw(st.booleans()) else ""
        return "[" + space + ("," + space).join(items) + trailing + "]"
    parts = []
    for k, v in value.items():
        key = k if re.fullmatch(r"[A-Za-z_$][\w$]*", k, re.A) and draw(st.booleans()) else json.dumps(k)
        parts.append(f"{key}:{space}{draw(json5_text(v))}")
    trailing = "," if parts and draw(st.booleans()) else ""
    return "{" + space + ("," + space).join(parts) + trailing + "}"


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_json5_literals_read_as_json5_reads_them(data):
    value = data.draw(VALUES)
    text = data.draw(json5_text(value))
    paste = jsparse.parse(f"layer_defs.push({text})")
    assert paste.layers == [value]
    if not re.search(r"\\u[dD][89abAB]", text):  # json5 reads a surrogate pair as two characters, JS as one
        assert paste.layers == [pytest.importorskip("json5").loads(text)]


# ---- 64 KB pastes (the schema's limit): read or refused, never anything else ------------------------
SIZE = 65536


def _fill(unit: str, head: str = "", tail: str = "") -> str:
    """head, unit repeated, tail: SIZE characters, made up with spaces before the tail."""
    room = SIZE - len(head) - len(tail)
    return head + unit * (room // len(unit)) + " " * (room % len(unit)) + tail


BIG_ACCEPTED = [
    ("demo and comments", _fill("// a comment line\n", (EXAMPLES / "net1-default.js").read_text()), 6),
    ("one 64 KB object", _fill("a:1,", "layer_defs.push({type:'fc', ", "b:2});"), 1),
    ("one 64 KB string", _fill("x", "layer_defs.push({type:'", "'});"), 1),
    ("a long array", _fill("{type:'fc'},\n", "layer_defs = [", "{type:'fc'}];"), SIZE // 13),
    ("many trainer_defs pushes in one", _fill("{method:'sgd'},", MNIST_DEMO + "\ntrainer_defs.push(", ")"), 6),
    ("unicode spaces", _fill("\u2028", "layer_defs.push({type:'fc'", "});"), 1),
    ("numbers out of range, read as JSON5 reads them: Infinity", _fill("1e999,", "layer_defs.push([", "]);"), 1),
]


@pytest.mark.parametrize(("case", "text", "count"), BIG_ACCEPTED, ids=[row[0] for row in BIG_ACCEPTED])
def test_big_pastes_are_read(case, text, count):
    assert len(text) == SIZE
    paste = jsparse.parse(text)
    assert abs(len(paste.layers) - count) <= 1 and len(paste.lines) == len(paste.layers)


BIG_REFUSED = [
    ("deep nesting", _fill("[", "layer_defs.push(", ")"), "it is nested too deeply"),
    ("deep nesting not closed", _fill("[", "layer_defs.push("),
     "line 1: layer_defs.push(...) is not closed: a ')' is missing at its end, or the brackets inside it do not match"),
    ("deep objects", _fill("{a:", "layer_defs.push(", ")"), "it is nested too deeply"),
    ("closing parens", _fill(")", "layer_defs.push("), "cannot read the layer definition"),
    ("closing braces", _fill("}", "trainer = new convnetjs.SGDTrainer(net, {"),
     "new convnetjs.SGDTrainer(...) is not closed"),
    ("closing braces and paren", _fill("}", "trainer = new convnetjs.SGDTrainer(net, {", ")"),
     "cannot read the trainer options"),
    ("a comment not closed", _fill("x", "/*"), "a /* comment is not closed with */"),
    ("comment starts", _fill("/*"), "a /* comment is not closed with */"),
    ("a string not closed", _fill("x", "layer_defs.push({type:'"), "a quote (') is not closed on its line"),
    ("a template not closed", _fill("x", "layer_defs.push({type:`"), "a template string (`) is not closed"),
    ("many statements", _fill("x;"), "the demo source has more than 1000 statements"),
    ("many trainer_defs pushes", _fill(TRAINER_DEFS + ";\n", MNIST_DEMO), "more than 1000 statements"),
    ("many calls", _fill("f();"), "'f()' is not a layer_defs.push(...) or SGDTrainer statement"),
    ("huge integer", _fill("9", "layer_defs.push(", ")"), "a number has too many digits"),
    ("huge hexadecimal", _fill("f", "layer_defs.push(0x", ")"), "a hexadecimal number has too many digits"),
    ("many escapes", _fill("\\q\\'", "layer_defs.push({type:'", "'}, 5 6)"), "a ',' is missing between two items"),
    ("names and commas", _fill(", a", "var a"), "no layer_defs.push({...}) statements found"),
    ("push openers", _fill("layer_defs.push("), "layer_defs.push(...) is not closed"),
    ("spaces", _fill(" "), "no layer_defs.push({...}) statements found"),
    ("line ends", _fill("\n"), "no layer_defs.push({...}) statements found"),
]


@pytest.mark.parametrize(("case", "text", "message"), BIG_REFUSED, ids=[row[0] for row in BIG_REFUSED])
def test_big_hostile_pastes_are_refused_with_a_clear_message(case, text, message):
    assert len(text) == SIZE
    with pytest.raises(InvalidSpec) as info:
        jsparse.parse(text)
    errors = info.value.errors
    assert 1 <= len(errors) <= jsparse.MAX_ERRORS + 1
    assert all(e.path == "convnetjs" and e.message for e in errors)
    assert any(message in e.message for e in errors), errors[:3]


def test_many_problems_are_counted_not_listed():
    with pytest.raises(InvalidSpec) as info:
        jsparse.parse("f();\n" * 500)
    errors = info.value.errors
    assert len(errors) == jsparse.MAX_ERRORS + 1
    assert [e.line for e in errors[:3]] == [1, 2, 3]
    assert errors[-1].message == f"and {500 - jsparse.MAX_ERRORS} more problems like these"
