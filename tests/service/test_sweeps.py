"""Sweeps without a worker: merge patches, paths, grids, expansion, validation, the report, and the API on a real Redis."""

from __future__ import annotations

import base64
import copy
import csv
import io
import json
import math

import pytest
from PIL import Image

from service import report
from service.api import sweep_views
from service.spec import patch as json_patch
from service.spec import paths
from service.spec import sweep as sweep_spec
from service.config import Config
from service.spec.netspec import InvalidSpec
from tests.conftest import EXAMPLES, example

BASE = example("net1-default.json", budget={"examples": 600})
LAYERS = BASE["network"]["layers"]
SINGLE_CONV = [LAYERS[0], LAYERS[1], LAYERS[2], LAYERS[5]]

# --- JSON merge patch: RFC 7396, Appendix A, every example, and more ---------------------------------

RFC_7396 = [
    ({"a": "b"}, {"a": "c"}, {"a": "c"}),
    ({"a": "b"}, {"b": "c"}, {"a": "b", "b": "c"}),
    ({"a": "b"}, {"a": None}, {}),
    ({"a": "b", "b": "c"}, {"a": None}, {"b": "c"}),
    ({"a": ["b"]}, {"a": "c"}, {"a": "c"}),
    ({"a": "c"}, {"a": ["b"]}, {"a": ["b"]}),
    ({"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}, {"a": {"b": "d"}}),
    ({"a": [{"b": "c"}]}, {"a": [1]}, {"a": [1]}),
    (["a", "b"], ["c", "d"], ["c", "d"]),
    ({"a": "b"}, ["c"], ["c"]),
    ({"a": "foo"}, None, None),
    ({"a": "foo"}, "bar", "bar"),
    ({"e": None}, {"a": 1}, {"e": None, "a": 1}),
    ([1, 2], {"a": "b", "c": None}, {"a": "b"}),
    ({}, {"a": {"bb": {"ccc": None}}}, {"a": {"bb": {}}}),
]
MORE = [
    ({"a": 1}, {}, {"a": 1}),  # the empty patch is the base itself
    (None, {"a": {"b": 1}}, {"a": {"b": 1}}),  # objects made where there were none
    ({"a": {"b": 1, "c": 2}}, {"a": {"c": 3, "d": 4}}, {"a": {"b": 1, "c": 3, "d": 4}}),  # deep merge
    ({"a": {"b": 1}}, {"a": None, "x": False}, {"x": False}),  # false is a value, only null removes
    ({"l": [1, 2, 3]}, {"l": [{"x": None}]}, {"l": [{"x": None}]}),  # nulls inside a list are kept as values
    ({"network": {"layers": [1, 2, 3]}, "trainer": {"method": "sgd"}},
     {"network": {"layers": [9]}}, {"network": {"layers": [9]}, "trainer": {"method": "sgd"}}),  # lists whole
]


@pytest.mark.parametrize("target, patch, expected", RFC_7396 + MORE)
def test_merge_patch(target, patch, expected):
    before_target, before_patch = copy.deepcopy(target), copy.deepcopy(patch)
    assert json_patch.merge_patch(target, patch) == expected
    assert (target, patch) == (before_target, before_patch), "neither argument may change"


def test_merge_patch_result_shares_nothing_with_the_patch():
    patch = {"network": {"layers": [{"type": "input"}]}}
    merged = json_patch.merge_patch({}, patch)
    merged["network"]["layers"][0]["type"] = "changed"
    assert patch["network"]["layers"][0]["type"] == "input"


# --- paths and grids ------------------------------------------------------------------------------------


@pytest.mark.parametrize("text, parts", [
    ("trainer.batch_size", ["trainer", "batch_size"]),
    ("seed", ["seed"]),
    ("network.layers[1].sx", ["network", "layers", 1, "sx"]),
    ("network.layers.1.sx", ["network", "layers", 1, "sx"]),
    ("a[0][2]", ["a", 0, 2]),
    ("1.a", ["1", "a"]),  # a leading number is a key: a job request is an object
    ("data.augment.crop", ["data", "augment", "crop"]),
])
def test_parse_path(text, parts):
    assert paths.parse_path(text) == parts


@pytest.mark.parametrize("text", ["", ".", "a.", ".a", "a..b", "[1]", "a[x]", "a[1", "a]1[", "a[-1]", 5, None])
def test_bad_paths(text):
    with pytest.raises(paths.PathError):
        paths.parse_path(text)


@pytest.mark.parametrize("document, path, value, expected", [
    ({"trainer": {"batch_size": 20, "method": "sgd"}}, "trainer.batch_size", 40,
     {"trainer": {"batch_size": 40, "method": "sgd"}}),
    ({}, "trainer.learning_rate", 0.1, {"trainer": {"learning_rate": 0.1}}),  # objects made on the way
    ({"trainer": None}, "trainer.momentum", 0.5, {"trainer": {"momentum": 0.5}}),
    ({"l": [{"a": 1}, {"a": 2}]}, "l[1].a", 3, {"l": [{"a": 1}, {"a": 3}]}),
    ({"l": [1, 2]}, "l.0", [7], {"l": [[7], 2]}),
    ({"a": 1}, "a", None, {"a": None}),  # a grid value is set as it is, null included
])
def test_set_path(document, path, value, expected):
    before = copy.deepcopy(document)
    assert paths.set_path(document, paths.parse_path(path), value) == expected
    assert document == before


@pytest.mark.parametrize("document, path, message", [
    ({"l": [1, 2]}, "l[2]", "past the end of a list of 2"),
    ({"l": [1, 2]}, "l.x", "cannot index a list"),
    ({"a": 5}, "a.b", "inside a whole number"),
])
def test_set_path_errors(document, path, message):
    with pytest.raises(paths.PathError, match=message):
        paths.set_path(document, paths.parse_path(path), 1)


@pytest.mark.parametrize("grid, expected", [
    ({}, [{}]),
    ({"a": [1]}, [{"a": 1}]),
    ({"a": [1, 2, 3]}, [{"a": 1}, {"a": 2}, {"a": 3}]),
    ({"a": [1, 2], "b": ["x", "y"]}, [{"a": 1, "b": "x"}, {"a": 1, "b": "y"}, {"a": 2, "b": "x"}, {"a": 2, "b": "y"}]),
    ({"a": [1, 2], "b": [None], "c": [True, False]},
     [{"a": 1, "b": None, "c": True}, {"a": 1, "b": None, "c": False},
      {"a": 2, "b": None, "c": True}, {"a": 2, "b": None, "c": False}]),
])
def test_expand_grid(grid, expected):
    assert paths.expand_grid(grid) == expected


@pytest.mark.parametrize("combination, label", [
    ({"trainer.batch_size": 20}, "batch_size=20"),
    ({"trainer.batch_size": 20, "trainer.learning_rate": 0.01}, "batch_size=20, learning_rate=0.01"),
    ({"trainer.method": "adam"}, 'method="adam"'),
    ({"network.layers[1].sx": 3, "network.layers[3].sx": 5}, "network.layers[1].sx=3, network.layers[3].sx=5"),
    ({"data.augment": {"crop": False}}, 'augment={"crop":false}'),
])
def test_grid_labels(combination, label):
    assert paths.grid_label(combination) == label


# --- a sweep request, expanded --------------------------------------------------------------------------


def test_variants_are_the_base_with_their_patches():
    spec = sweep_spec.parse({"name": "s", "base": {**BASE, "seed": 7}, "repeats": 2, "variants": [
        {"name": "default", "patch": {}},
        {"name": "single conv", "patch": {"network": {"layers": SINGLE_CONV}}},
        {"name": "adam", "patch": {"trainer": {"method": "adam", "l2_decay": None}}},
    ]})
    assert (spec.name, spec.repeats, spec.seed) == ("s", 2, 7)
    assert [v.name for v in spec.variants] == ["default", "single conv", "adam"]
    default, single, adam = (v.request for v in spec.variants)
    assert default == {**BASE, "seed": 7}
    assert single["network"]["layers"] == SINGLE_CONV and single["trainer"] == BASE["trainer"]
    assert adam["trainer"] == {"method": "adam", "batch_size": 20}
    assert spec.variants[1].patch == {"network": {"layers": SINGLE_CONV}} and spec.variants[1].grid is None


def test_a_grid_alone_and_crossed_with_variants():
    grid = {"trainer.batch_size": [10, 20], "network.layers[1].filters": [4, 8]}
    spec = sweep_spec.parse({"base": BASE, "grid": grid})
    assert [v.name for v in spec.variants] == ["batch_size=10, filters=4", "batch_size=10, filters=8",
                                              "batch_size=20, filters=4", "batch_size=20, filters=8"]
    last = spec.variants[-1]
    assert last.grid == {"trainer.batch_size": 20, "network.layers[1].filters": 8}
    assert last.request["trainer"]["batch_size"] == 20 and last.request["network"]["layers"][1]["filters"] == 8
    assert spec.name == BASE["name"], "the sweep is named after its base by default"

    crossed = sweep_spec.parse({"base": BASE, "grid": {"trainer.batch_size": [10, 20]},
                            "variants": [{"name": "a", "patch": {}}, {"name": "b", "patch": {"seed": 3}}]})
    assert [v.name for v in crossed.variants] == ["a, batch_size=10", "a, batch_size=20", "b, batch_size=10",
                                                  "b, batch_size=20"]
    assert [v.request["seed"] for v in crossed.variants] == [crossed.seed, crossed.seed, 3, 3]


def test_every_variant_gets_the_same_seeds_and_repeats_count_up():
    spec = sweep_spec.parse({"base": BASE, "repeats": 3, "variants": [{"name": "a", "patch": {}},
                                                                  {"name": "b", "patch": {"trainer": {"batch_size": 10}}}]})
    planned = sweep_spec.plan(spec, Config())
    seeds = [[p.job_request(r, spec.name, 3)["seed"] for r in range(3)] for p in planned]
    assert seeds[0] == seeds[1] == [spec.seed, spec.seed + 1, spec.seed + 2]
    assert planned[1].job_request(2, "study", 3)["name"] == "study/b/3"
    assert planned[0].job_request(0, "", 1)["name"] == "a"
    assert planned[0].summary["params"] == planned[0].params == 5994


def test_the_base_alone_is_one_variant():
    spec = sweep_spec.parse({"base": BASE})
    assert [(v.name, v.request["trainer"]) for v in spec.variants] == [(BASE["name"], BASE["trainer"])]
    assert sweep_spec.parse({"base": {k: v for k, v in BASE.items() if k != "name"}}).variants[0].name == "base"


@pytest.mark.parametrize("body, paths", [
    ([], [""]),
    ({}, ["base"]),
    ({"base": []}, ["base"]),
    ({"base": BASE, "budget": {"examples": 5}}, ["budget"]),
    ({"base": BASE, "name": None}, ["name"]),
    ({"base": BASE, "name": "x" * 201}, ["name"]),
    ({"base": BASE, "repeats": 0}, ["repeats"]),
    ({"base": BASE, "repeats": 101}, ["repeats"]),
    ({"base": BASE, "repeats": 2.0}, ["repeats"]),
    ({"base": BASE, "repeats": True}, ["repeats"]),
    ({"base": BASE, "variants": []}, ["variants"]),
    ({"base": BASE, "variants": {"a": {}}}, ["variants"]),
    ({"base": BASE, "variants": [5]}, ["variants[0]"]),
    ({"base": BASE, "variants": [{"patch": {}}]}, ["variants[0].name"]),
    ({"base": BASE, "variants": [{"name": " ", "patch": {}}]}, ["variants[0].name"]),
    ({"base": BASE, "variants": [{"name": "x" * 101, "patch": {}}]}, ["variants[0].name"]),
    ({"base": BASE, "variants": [{"name": "\ud800", "patch": {}}]}, ["variants[0].name"]),
    ({"base": BASE, "variants": [{"name": "a"}]}, ["variants[0].patch"]),
    ({"base": BASE, "variants": [{"name": "a", "patch": [1]}]}, ["variants[0].patch"]),
    ({"base": BASE, "variants": [{"name": "a", "patch": {}, "seed": 1}]}, ["variants[0].seed"]),
    ({"base": BASE, "variants": [{"name": "a", "patch": {}}, {"name": "a", "patch": {}}]}, ["variants[1].name"]),
    ({"base": BASE, "variants": [{"name": str(i), "patch": {}} for i in range(101)]}, ["variants"]),
    ({"base": BASE, "grid": {}}, ["grid"]),
    ({"base": BASE, "grid": [1]}, ["grid"]),
    ({"base": BASE, "grid": {"trainer.batch_size": []}}, ["grid.trainer.batch_size"]),
    ({"base": BASE, "grid": {"trainer.batch_size": 20}}, ["grid.trainer.batch_size"]),
    ({"base": BASE, "grid": {"a..b": [1]}}, ["grid.a..b"]),
    ({"base": BASE, "grid": {"a": list(range(101))}}, ["grid.a"]),
    ({"base": BASE, "grid": {"a": list(range(30)), "b": list(range(20))}}, [""]),  # 600 jobs
    ({"base": BASE, "repeats": 100, "variants": [{"name": str(i), "patch": {}} for i in range(6)]}, [""]),
    ({"base": BASE, "grid": {"network.layers[9].sx": [3]}}, ["grid.network.layers[9].sx"]),  # past the layers
    ({"base": BASE, "grid": {"seed": [1, 1]}}, ["grid"]),  # two rows called seed=1
])
def test_malformed_sweeps_name_the_field(body, paths):
    with pytest.raises(InvalidSpec) as caught:
        sweep_spec.parse(body)
    assert [e.path for e in caught.value.errors] == paths, caught.value.errors


def test_bad_variants_are_named_and_all_reported():
    bad_pool = copy.deepcopy(LAYERS)
    bad_pool[2]["sx"] = 30
    spec = sweep_spec.parse({"base": BASE, "variants": [
        {"name": "fine", "patch": {}},
        {"name": "huge pool", "patch": {"network": {"layers": bad_pool}}},
        {"name": "no budget", "patch": {"budget": None, "trainer": {"method": "rmsprop"}}},
    ]})
    with pytest.raises(sweep_spec.InvalidSweep) as caught:
        sweep_spec.plan(spec, Config())
    assert caught.value.names == ["huge pool", "no budget"]
    errors = caught.value.errors
    assert {(e["variant"], e["path"]) for e in errors} == {
        ("huge pool", "network.layers[2].sx"), ("no budget", "budget"), ("no budget", "trainer.method")}
    assert all(e["message"].startswith(f"variant {e['variant']!r}: ") for e in errors)


@pytest.mark.parametrize("statuses, cancelled, expected", [
    (["queued", "succeeded"], False, "running"),
    (["paused", "succeeded"], False, "running"),
    (["running", "cancelled"], True, "running"),
    (["succeeded", "succeeded"], False, "succeeded"),
    (["succeeded", "failed"], False, "failed"),
    (["succeeded", "cancelled"], False, "cancelled"),
    (["failed", "cancelled"], True, "cancelled"),
    (["failed", "cancelled"], False, "failed"),
    (["succeeded", None], False, "cancelled"),  # a job deleted on its own
    (["succeeded", "succeeded"], True, "succeeded"),  # cancelled after the last job ended: nothing was stopped
])
def test_sweep_status(statuses, cancelled, expected):
    assert sweep_views.status_of(statuses, cancelled) == expected


# --- the report -------------------------------------------------------------------------------------------


def _job(status="succeeded", test_acc=0.98, params=5994, **result):
    return {"status": status, "network": {"params": params, "macs": 578560},
            "result": {"test_acc": test_acc, "class_loss": 0.2, "train_acc": 0.95, "val_acc": 0.97,
                       "examples_per_second": 5000.0, "seconds": 6.0, **result} if status == "succeeded" else None}


def test_rows_are_means_over_the_repeats_that_succeeded():
    jobs = {"a1": _job(test_acc=0.97, seconds=5.0), "a2": _job(test_acc=0.98, seconds=7.0),
            "a3": _job("failed"), "b1": _job("running", params=100), "c1": None}
    table = report.rows([{"name": "a", "jobs": ["a1", "a2", "a3"]}, {"name": "b", "jobs": ["b1"]},
                         {"name": "c", "jobs": ["c1"]}], jobs)
    a, b, c = table
    assert (a["variant"], a["params"], a["macs"], a["jobs"], a["succeeded"]) == ("a", 5994, 578560, 3, 2)
    assert a["test_acc_mean"] == pytest.approx(0.975) and a["test_acc_std"] == pytest.approx(0.00707107, abs=1e-6)
    assert (a["test_acc_min"], a["test_acc_max"], a["test_accs"]) == (0.97, 0.98, [0.97, 0.98])
    assert a["seconds"] == 6.0 and a["train_loss"] == 0.2 and a["examples_per_second"] == 5000.0
    assert (b["params"], b["succeeded"], b["test_acc_mean"], b["test_acc_std"]) == (100, 0, None, None)
    assert c["params"] is None and c["jobs"] == 1

    one = report.rows([{"name": "x", "jobs": ["a1"]}], jobs)[0]
    assert one["test_acc_std"] is None, "no spread from one repeat"


def _sweep(table, status="succeeded"):
    return {"id": "abc12345", "name": "demo", "status": status, "repeats": 2, "wall_seconds": 75.2,
            "progress": {"jobs": 2 * len(table)}, "variants": [{"name": row["variant"], "jobs": []} for row in table],
            "table": table}


def test_markdown_and_csv():
    jobs = {"a1": _job(test_acc=0.97), "a2": _job(test_acc=0.98), "b1": _job(test_acc=0.99), "b2": _job("failed")}
    table = report.rows([{"name": "a | b", "jobs": ["a1", "a2"]}, {"name": "b", "jobs": ["b1", "b2"]}], jobs)
    text = report.markdown(_sweep(table))
    lines = text.splitlines()
    assert lines[0] == "## Sweep demo"
    assert "2 variants × 2 repeats = 4 jobs, succeeded; wall time 1 min 15 s" in text
    rows = [line for line in lines if line.startswith("| ")]
    assert len(rows) == 3 and rows[0].startswith("| variant | params | multiply-adds |")
    assert rows[1] == "| a \\| b | 5,994 | 578,560 | 5,000 | 0.200 | 0.95 | 0.9700 | 0.9750 ± 0.0071 | 6.0 |"
    assert "| 0.9900 (1 of 2) |" in rows[2]

    parsed = list(csv.DictReader(io.StringIO(report.csv_text(table))))
    assert [r["variant"] for r in parsed] == ["a | b", "b"]
    assert list(parsed[0]) == list(report.CSV_COLUMNS)
    assert float(parsed[0]["test_acc_mean"]) == pytest.approx(0.975) and parsed[1]["test_acc_std"] == ""


def test_curve_averages_repeats_by_examples_seen():
    run1 = [{"seq": 1, "event": "started", "examples": 0}] + [
        {"seq": i + 2, "examples": 100 * (i + 1), "class_loss": 1.0} for i in range(100)]
    run2 = [{"seq": i + 1, "examples": 100 * (i + 1), "class_loss": 3.0} for i in range(100)]
    run2.append({"seq": 200, "examples": 10_000, "class_loss": None})
    curve = report.curve([run1, run2], bins=10)
    assert len(curve) == 10
    assert all(y == pytest.approx(2.0) for _, y in curve)
    assert [round(x) for x, _ in curve] == sorted(round(x) for x, _ in curve)
    assert report.curve([[{"seq": 1, "event": "started", "examples": 0}]]) == []


def test_figure_is_a_png_with_a_colour_per_variant():
    jobs = {f"{v}{r}": _job(test_acc=0.97 + 0.005 * i + 0.001 * r) for i, v in enumerate("abc") for r in range(3)}
    table = report.rows([{"name": v, "jobs": [f"{v}{r}" for r in range(3)]} for v in "abc"], jobs)
    curves = {v: [(100 * k, 2.3 * math.exp(-k / (10 + i))) for k in range(1, 60)] for i, v in enumerate("abc")}
    image = Image.open(io.BytesIO(report.figure(table, curves, "demo")))
    assert image.format == "PNG" and image.size == (1500, 620)
    colours = {colour for _, colour in image.convert("RGB").getcolors(1 << 20)}
    for palette_colour in report.PALETTE[:3]:
        assert palette_colour in colours
    # With nothing to show yet it still draws its frame and says so.
    empty = Image.open(io.BytesIO(report.figure([], {}, "")))
    assert empty.size == (1500, 620) and len(empty.convert("RGB").getcolors(1 << 20)) > 2


def test_the_assignment_sweep_expands_to_the_six_example_networks():
    body = json.loads((EXAMPLES / "assignment-sweep.json").read_text())
    spec = sweep_spec.parse(body)
    assert spec.repeats == 3 and spec.name == "assignment-study"
    assert [v.name for v in spec.variants] == ["default", "3x3 kernels", "stride 2", "16 first filters",
                                              "third conv layer", "single conv layer"]
    networks = ["net1-default", "net2-3x3", "net3-stride2", "net4-16filters", "net5-third-conv", "net6-single-conv"]
    for variant, name in zip(spec.variants, networks):
        expected = example(f"{name}.json")
        assert variant.request["network"] == expected["network"], name
        assert variant.request["trainer"] == expected["trainer"] and variant.request["budget"] == {"examples": 30000}
    assert len(sweep_spec.plan(spec, Config())) == 6


# --- the API on a real Redis, no worker: the store plays the worker's part ---------------------------------


def _train_by_hand(store, job_id: str, test_acc: float, losses=(2.0, 1.0, 0.5)) -> None:
    start = store.start(job_id, "w1", 30, 3)
    store.add_point(job_id, start.token, {"event": "started", "examples": 0, "attempt": start.attempt})
    for i, loss in enumerate(losses, 1):
        point = {"examples": 200 * i, "epoch": 0.01 * i, "seconds": 0.1 * i, "class_loss": loss, "l2_loss": 0.01,
                 "l1_loss": 0.0, "train_acc": 0.9, "val_acc": None, "examples_per_second": 4000.0,
                 "forward_ms": 0.1, "backward_ms": 0.2, "learning_rate": 0.01, "batch_size": 20}
        store.add_point(job_id, start.token, point, metrics=point, examples_seen=point["examples"])
    result = {"examples_seen": 600, "epochs": 0.011, "train_acc": 0.9, "val_acc": 0.91, "test_acc": test_acc,
              "class_loss": losses[-1], "l2_loss": 0.01, "examples_per_second": 4000.0, "seconds": 0.15}
    assert store.finish(job_id, start.token, "succeeded", result=result, examples_seen=600)


def test_submit_read_report_and_delete(stored):
    c, services = stored
    body = {"name": "api", "base": BASE, "repeats": 2,
            "variants": [{"name": "default", "patch": {}}, {"name": "single", "patch": {"network": {"layers": SINGLE_CONV}}}]}
    r = c.post("/v1/sweeps", json=body)
    assert r.status_code == 202, r.get_json()
    sweep = r.get_json()
    assert r.headers["Location"] == f"/v1/sweeps/{sweep['id']}"
    assert (sweep["status"], sweep["jobs"], sweep["counts"]["queued"]) == ("running", 4, 4)
    assert [v["name"] for v in sweep["variants"]] == ["default", "single"]
    assert [len(v["jobs"]) for v in sweep["variants"]] == [2, 2]
    assert [row["params"] for row in sweep["table"]] == [5994, services.store.get(
        sweep["variants"][1]["jobs"][0]["id"])["network"]["params"]]
    ids = [job["id"] for v in sweep["variants"] for job in v["jobs"]]
    jobs = {job_id: services.store.get(job_id) for job_id in ids}
    assert [jobs[i]["name"] for i in ids] == ["api/default/1", "api/default/2", "api/single/1", "api/single/2"]
    assert [jobs[i]["request"]["seed"] for i in ids] == [sweep["seed"], sweep["seed"] + 1] * 2
    # Published repeat by repeat, the first repeat of every variant first (kombu pushes left, workers pop right).
    messages = [json.loads(m) for m in reversed(services.store.r.lrange("auto", 0, -1))]
    assert [json.loads(base64.b64decode(m["body"]))[0][0] for m in messages] == [ids[0], ids[2], ids[1], ids[3]]

    assert c.get("/v1/sweeps").get_json()["sweeps"][0]["id"] == sweep["id"]
    assert c.delete(f"/v1/sweeps/{sweep['id']}").status_code == 409, "jobs are queued: cancel first"
    for n, job_id in enumerate(ids):
        _train_by_hand(services.store, job_id, 0.9 + 0.01 * n)
    done = c.get(f"/v1/sweeps/{sweep['id']}").get_json()
    assert done["status"] == "succeeded" and done["finished_at"] >= done["created_at"]
    assert [row["test_acc_mean"] for row in done["table"]] == [pytest.approx(0.905), pytest.approx(0.925)]
    assert done["progress"] == {"jobs": 4, "ended": 4, "examples_seen": 2400, "examples_total": 2400, "fraction": 1.0}

    md = c.get(f"/v1/sweeps/{sweep['id']}/report")
    assert md.mimetype == "text/markdown" and md.get_data(as_text=True).count("\n| ") == 3
    assert 'filename="api-' in md.headers["Content-Disposition"]
    table = list(csv.DictReader(io.StringIO(c.get(f"/v1/sweeps/{sweep['id']}/report?format=csv").get_data(as_text=True))))
    assert [row["variant"] for row in table] == ["default", "single"] and table[0]["succeeded"] == "2"
    png = c.get(f"/v1/sweeps/{sweep['id']}/report?format=png")
    assert png.mimetype == "image/png" and Image.open(io.BytesIO(png.data)).size == (1500, 620)
    assert c.get(f"/v1/sweeps/{sweep['id']}/report?format=pdf").status_code == 400
    assert c.post(f"/v1/sweeps/{sweep['id']}/cancel").status_code == 409, "every job has ended"

    assert c.delete(f"/v1/sweeps/{sweep['id']}").status_code == 204
    assert c.get(f"/v1/sweeps/{sweep['id']}").status_code == 404
    assert all(not services.store.exists(job_id) for job_id in ids)
    assert c.get("/v1/sweeps").get_json() == {"sweeps": [], "next": None}


def test_cancel_stops_every_job_and_a_job_deleted_alone_is_tolerated(stored):
    c, services = stored
    sweep = c.post("/v1/sweeps", json={"base": BASE, "grid": {"trainer.batch_size": [10, 20, 40]}}).get_json()
    first, second, third = [v["jobs"][0]["id"] for v in sweep["variants"]]
    start = services.store.start(first, "w1", 30, 3)  # one running, two queued
    r = c.post(f"/v1/sweeps/{sweep['id']}/cancel")
    assert r.status_code == 202
    cancelling = r.get_json()
    assert cancelling["status"] == "running", "the running job stops at its next poll"
    assert [v["jobs"][0]["status"] for v in cancelling["variants"]] == ["running", "cancelled", "cancelled"]
    assert services.store.flags(first)["cancel"]
    services.store.finish(first, start.token, "cancelled")
    cancelled = c.get(f"/v1/sweeps/{sweep['id']}").get_json()
    assert cancelled["status"] == "cancelled" and cancelled["counts"]["cancelled"] == 3
    events = [p.get("event") for p in services.store.points(third)]
    assert events == ["cancelled"]
    services.store.delete(second)
    assert c.get(f"/v1/sweeps/{sweep['id']}").get_json()["variants"][1]["jobs"][0]["status"] == "deleted"
    assert c.get(f"/v1/sweeps/{sweep['id']}/report?format=png").status_code == 200
    assert c.delete(f"/v1/sweeps/{sweep['id']}").status_code == 204


def test_a_bad_variant_is_a_422_naming_it_and_nothing_is_queued(stored):
    c, services = stored
    bad = copy.deepcopy(LAYERS)
    bad[1]["activation"] = "relux"
    body = {"base": BASE, "variants": [{"name": "good", "patch": {}}, {"name": "typo", "patch": {"network": {"layers": bad}}}]}
    r = c.post("/v1/sweeps", json=body)
    assert r.status_code == 422
    problem = r.get_json()
    assert problem["variants"] == ["typo"] and "'typo'" in problem["detail"]
    assert [(e["variant"], e["path"]) for e in problem["errors"]] == [("typo", "network.layers[1].activation")]
    assert services.store.r.zcard("convtrain:jobs") == 0 and services.store.r.zcard("convtrain:sweeps") == 0
    malformed = c.post("/v1/sweeps", json={"base": BASE, "variants": [{"name": "x"}]})
    assert malformed.status_code == 422 and malformed.get_json()["errors"][0]["path"] == "variants[0].patch"


def test_listing_pages_and_bad_queries(stored):
    c, _ = stored
    ids = [c.post("/v1/sweeps", json={"base": {**BASE, "device": "gpu"}, "name": f"s{i}"}).get_json()["id"]
           for i in range(3)]
    first = c.get("/v1/sweeps?limit=2").get_json()
    assert [s["id"] for s in first["sweeps"]] == ids[::-1][:2] and first["next"]
    second = c.get(f"/v1/sweeps?limit=2&cursor={first['next']}").get_json()
    assert [s["id"] for s in second["sweeps"]] == ids[:1]
    assert second["sweeps"][0]["variant_names"] == ["s0"]
    for query in ("limit=0", "limit=x", "cursor=never", "cursor=nan"):
        assert c.get(f"/v1/sweeps?{query}").status_code == 400, query
    for sweep_id in ("not-an-id", "0123abcd"):
        assert c.get(f"/v1/sweeps/{sweep_id}").status_code == 404
        assert c.get(f"/v1/sweeps/{sweep_id}/report").status_code == 404
        assert c.post(f"/v1/sweeps/{sweep_id}/cancel").status_code == 404
        assert c.delete(f"/v1/sweeps/{sweep_id}").status_code == 404
    for body, status in (([1], 422), (b"{", 400), ("x", 415)):
        r = c.post("/v1/sweeps", data=body, content_type="text/plain") if status == 415 else \
            c.post("/v1/sweeps", data=body if isinstance(body, bytes) else json.dumps(body), content_type="application/json")
        assert r.status_code == status
