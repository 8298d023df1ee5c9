"""Tests for reading ConvNetJS demo source as data."""

import json
import pathlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from service.spec import jsparse
from service.spec.netspec import InvalidSpec

EXAMPLES = pathlib.Path(__file__).resolve().parents[2] / "examples"
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
     [{"type": "input", "out_depth": 1}, {"type": "softmax", "num_classes": 10}], None, [1, 1]),
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
