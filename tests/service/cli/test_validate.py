"""Tests for `convtrain validate FILE` and the body of POST /v1/networks/validate."""

import json
import pathlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from service.cli import validate as validate_cmd
from service.config import Config
from service.spec import netspec, request_body

EXAMPLES = pathlib.Path(__file__).resolve().parents[3] / "examples"
JSON_EXAMPLES = sorted(p.name for p in EXAMPLES.glob("net*.json"))
CONFIG = Config()


def run(path, as_json, capsys, config=CONFIG):
    status = validate_cmd.run(str(path), as_json, config)
    out = capsys.readouterr().out
    return status, (json.loads(out) if as_json else out)


def write(tmp_path, name, content):
    path = tmp_path / name
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    return path


def test_all_six_examples_are_there():
    assert JSON_EXAMPLES == ["net1-default.json", "net2-3x3.json", "net3-stride2.json", "net4-16filters.json",
                             "net5-third-conv.json", "net6-single-conv.json"]


@pytest.mark.parametrize("name", [*JSON_EXAMPLES, "net1-default.js"])
def test_text_output_on_the_examples(name, capsys):
    status, out = run(EXAMPLES / name, False, capsys)
    network = request_body.check(request_body.read_body(str(EXAMPLES / name), CONFIG), CONFIG)
    assert status == 0
    assert out.startswith(netspec.table(network) + "\n")
    assert out.splitlines()[0].split() == ["#", "layer", "type", "output", "params", "macs"]
    assert f"{network.params:,} parameters, {network.macs:,} multiply-adds" in out


def test_text_output_of_the_default_network(capsys):
    _, out = run(EXAMPLES / "net1-default.json", False, capsys)
    rows = [line.split() for line in out.splitlines()[1:10]]
    assert [row[-3:] for row in rows] == [
        ["24x24x1", "0", "0"], ["24x24x8", "208", "115,200"], ["24x24x8", "0", "0"], ["12x12x8", "0", "0"],
        ["12x12x16", "3,216", "460,800"], ["12x12x16", "0", "0"], ["4x4x16", "0", "0"],
        ["1x1x10", "2,570", "2,560"], ["1x1x10", "0", "0"]]
    assert out.rstrip().endswith("9 layers, 5,994 parameters, 578,560 multiply-adds and 15,828 activations per example")


@pytest.mark.parametrize("name", [*JSON_EXAMPLES, "net1-default.js"])
def test_json_output_on_the_examples(name, capsys):
    status, body = run(EXAMPLES / name, True, capsys)
    assert status == 0
    request = json.loads((EXAMPLES / name).with_suffix(".json").read_text())
    expected = netspec.analyze(request["network"])
    assert body == json.loads(json.dumps(expected.as_dict()))
    assert (body["params"], body["macs"]) == (expected.params, expected.macs)
    for layer in body["layers"]:
        assert {"type", "out_sx", "out_sy", "out_depth", "params", "macs"} <= set(layer)


def test_the_js_paste_and_the_json_request_agree(capsys):
    assert run(EXAMPLES / "net1-default.js", True, capsys) == run(EXAMPLES / "net1-default.json", True, capsys)


def test_bare_network(tmp_path, capsys):
    network = json.loads((EXAMPLES / "net3-stride2.json").read_text())["network"]
    status, body = run(write(tmp_path, "net.json", network), True, capsys)
    assert status == 0 and body["params"] == 208 + 3216 + 170


def test_bare_network_is_not_checked_against_a_dataset(tmp_path, capsys):
    network = {"layers": [{"type": "input", "out_sx": 64, "out_sy": 64, "out_depth": 3},
                          {"type": "softmax", "num_classes": 5}]}
    assert run(write(tmp_path, "net.json", network), False, capsys)[0] == 0


def test_a_request_without_budget_still_validates(tmp_path, capsys):
    request = json.loads((EXAMPLES / "net2-3x3.json").read_text())
    del request["budget"]
    status, body = run(write(tmp_path, "job.json", request), True, capsys)
    assert status == 0 and body["layers"][3]["out_sx"] == 13


BROKEN = {"name": "broken", "trainer": {"method": "adamw", "batch_size": 0},
          "network": {"layers": [{"type": "input", "out_sx": 24, "out_sy": 24, "out_depth": 1},
                                 {"type": "conv", "sx": "5", "filter": 8},
                                 {"type": "pool", "sx": 2},
                                 {"type": "softmax", "num_classes": 10}]}}
BROKEN_ERRORS = [
    ("trainer.method", "unknown trainer method \"adamw\"; choose one of sgd, adam, adagrad, adadelta, windowgrad, "
                       "nesterov. Did you mean 'adam'?"),
    ("trainer.batch_size", "batch_size must be at least 1, got 0"),
    ("network.layers[1].sx", 'sx must be a whole number, not a string ("5")'),
    ("network.layers[1].filter", "'filter' is not a field of a conv layer. Did you mean 'filters'?"),
    ("network.layers[1].filters", "a conv layer needs 'filters'"),
]


def test_broken_file_as_text(tmp_path, capsys):
    status, out = run(write(tmp_path, "broken.json", BROKEN), False, capsys)
    assert status == 1
    assert out.splitlines() == [f"{path}: {message}" for path, message in BROKEN_ERRORS]


def test_broken_file_as_json(tmp_path, capsys):
    status, body = run(write(tmp_path, "broken.json", BROKEN), True, capsys)
    assert status == 1
    assert body == {"errors": [{"path": path, "message": message} for path, message in BROKEN_ERRORS]}


def test_broken_bare_network(tmp_path, capsys):
    status, body = run(write(tmp_path, "net.json", {"layers": [{"type": "input", "out_depth": 1},
                                                               {"type": "pool", "sx": 3},
                                                               {"type": "softmax", "num_classes": 10}]}), True, capsys)
    assert status == 1
    assert body["errors"] == [{"path": "network.layers[1].sx",
                               "message": "pool window 3x3 does not fit a 1x1 input, so its output would have zero size"}]


def test_broken_paste_points_at_lines(tmp_path, capsys):
    text = (EXAMPLES / "net1-default.js").read_text().replace("stride:3", "stride:0") + "alert(1);\n"
    status, body = run(write(tmp_path, "demo.js", text), True, capsys)
    assert status == 1
    assert body["errors"] == [{"path": "convnetjs", "line": 13, "message": "line 13: 'alert(1)' is not a "
                               "layer_defs.push(...) or SGDTrainer statement; only layer definitions and trainer "
                               "options are read"}]
    text = text.replace("alert(1);\n", "")
    status, out = run(write(tmp_path, "demo.js", text), False, capsys)
    assert (status, out) == (1, "network.layers[4].stride: line 6: stride must be at least 1, got 0\n")


@pytest.mark.parametrize(("content", "message"), [
    ("{\"layers\": [", "the input is not valid JSON: Expecting value (line 1, column 13)"),
    ("", "the input is not valid JSON: Expecting value (line 1, column 1)"),
    ("{\"layers\": NaN}", "the input is not valid JSON: NaN is not a JSON number"),
    ("[1, 2]", "expected a JSON object, not a list; to check a list of layers, wrap it as {\"layers\": [...]}"),
    ("5", "expected a JSON object: a network {\"layers\": [...]}, a job request"),
    ("null", "got nothing"),
    ("[" * 40 + "]" * 40, "the JSON is nested deeper than the limit of 32 levels"),
])
def test_not_json_or_not_an_object(tmp_path, capsys, content, message):
    path = write(tmp_path, "bad.json", content)
    status, out = run(path, False, capsys)
    assert status == 1 and message in out and not out.startswith(":")
    status, body = run(path, True, capsys)
    assert status == 1 and len(body["errors"]) == 1
    assert body["errors"][0]["path"] == "" and message in body["errors"][0]["message"]


def test_missing_file(tmp_path, capsys):
    status, body = run(tmp_path / "nope.json", True, capsys)
    assert status == 1
    assert body["errors"][0]["path"] == "" and "cannot read" in body["errors"][0]["message"]


def test_limits_come_from_the_config(capsys):
    config = Config(limits=netspec.Limits(max_params=5000))
    status, out = run(EXAMPLES / "net1-default.json", False, capsys, config)
    assert (status, out) == (1, "network.layers: 5994 parameters is more than the limit of 5000\n")


@pytest.mark.parametrize("name", JSON_EXAMPLES)
def test_validate_body_answers_like_the_command(name, capsys):
    request = json.loads((EXAMPLES / name).read_text())
    _, printed = run(EXAMPLES / name, True, capsys)
    assert request_body.validate_body(request, CONFIG) == (200, printed)
    assert request_body.validate_body(request["network"], CONFIG) == (200, printed)
    assert request_body.validate_body(json.dumps(request).encode(), CONFIG) == (200, printed)


def test_validate_body_takes_demo_source():
    status, body = request_body.validate_body({"convnetjs": (EXAMPLES / "net1-default.js").read_text()}, CONFIG)
    assert status == 200 and body["params"] == 5994


@pytest.mark.parametrize(("body", "errors"), [
    (b"not json", [{"path": "", "message": "the input is not valid JSON: Expecting value (line 1, column 1)"}]),
    (b"\xff\xfe", [{"path": "", "message": "the input is not UTF-8 text: invalid start byte at byte 0"}]),
    (None, [{"path": "", "message": "expected a JSON object: a network {\"layers\": [...]}, a job request "
                                    "{\"network\": ..., \"budget\": ...}, or demo source {\"convnetjs\": \"...\"}; "
                                    "got nothing"}]),
    ({"layers": []}, [{"path": "network.layers",
                       "message": "'layers' is empty: a network needs at least an input and a loss layer"}]),
    ({"network": {"layers": [{"type": "input", "out_sx": 24, "out_sy": 24, "out_depth": 1},
                             {"type": "softmax", "num_classes": 10}]}, "budget": {"examples": 0}},
     [{"path": "budget.examples", "message": "examples must be at least 1, got 0"}]),
    ({"convnetjs": "layer_defs.push({type:'inputt'})"},
     [{"path": "network.layers[0].type", "line": 1,
       "message": "line 1: unknown layer type \"inputt\". Did you mean 'input'?"}]),
])
def test_validate_body_errors(body, errors):
    assert request_body.validate_body(body, CONFIG) == (422, {"errors": errors})


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200) | st.text(max_size=200).map(str.encode)
       | st.sampled_from([(EXAMPLES / n).read_bytes() for n in JSON_EXAMPLES]))
def test_any_bytes_get_an_answer(raw):
    status, body = request_body.validate_body(raw, CONFIG)
    assert status in (200, 422)
    assert set(body) == ({"layers", "params", "macs", "activations"} if status == 200 else {"errors"})
    json.dumps(body)
