"""Sweep requests: merge patches, paths and grids, parsing and planning (service/spec)."""

from __future__ import annotations

import copy
import json

import pytest

from service import lifecycle
from service.config import Config
from service.spec import patch as json_patch
from service.spec import paths
from service.spec import sweep as sweep_spec
from service.spec.netspec import InvalidSpec
from tests.conftest import EXAMPLES, example

BASE = example("net1-default.json", budget={"examples": 600})


LAYERS = BASE["network"]["layers"]


SINGLE_CONV = [LAYERS[0], LAYERS[1], LAYERS[2], LAYERS[5]]


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
    assert lifecycle.sweep_status(statuses, cancelled) == expected


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


# --- limits, checked on counts before anything is expanded or validated ---------------------------------

SMALL = Config(sweep_max_grid_paths=3, sweep_max_grid_values=4, sweep_max_variants=5, sweep_max_repeats=6,
               sweep_max_jobs=40, sweep_max_check_bytes=1 << 20)


def refused(body, config=SMALL):
    with pytest.raises(InvalidSpec) as caught:
        sweep_spec.parse(body, config)
    return [(e.path, e.message) for e in caught.value.errors]


def test_the_limits_are_configuration_with_the_old_defaults():
    config = Config()
    assert (config.sweep_max_variants, config.sweep_max_grid_values, config.sweep_max_jobs,
            config.sweep_max_repeats, config.sweep_max_grid_paths) == (100, 100, 500, 100, 20)
    assert config.sweep_max_check_bytes == 1 << 20
    assert (sweep_spec.MAX_VARIANTS, sweep_spec.MAX_JOBS, sweep_spec.MAX_REPEATS) == (100, 500, 100)
    env = {"CONVTRAIN_SWEEP_MAX_GRID_PATHS": "3", "CONVTRAIN_SWEEP_MAX_GRID_VALUES": "4",
           "CONVTRAIN_SWEEP_MAX_VARIANTS": "5", "CONVTRAIN_SWEEP_MAX_REPEATS": "6", "CONVTRAIN_SWEEP_MAX_JOBS": "40",
           "CONVTRAIN_SWEEP_MAX_CHECK_BYTES": "1048576"}
    assert Config.from_env(env, home=SMALL.home) == SMALL


def test_too_many_grid_paths():
    grid = {f"trainer.k{i}": [1] for i in range(4)}
    assert refused({"base": BASE, "grid": grid}) == [("grid", "4 paths is more than the limit of 3 grid paths")]
    assert len(sweep_spec.parse({"base": BASE, "grid": {"trainer.batch_size": [5]} | {
        f"data.augment.{k}": [True] for k in ("crop", "flip")}}, SMALL).variants) == 1  # 3 paths are allowed
    many = {f"trainer.k{i}": [1] for i in range(21)}
    assert [e.path for e in pytest.raises(InvalidSpec, sweep_spec.parse, {"base": BASE, "grid": many}).value.errors] \
        == ["grid"], "the default is 20 paths"


def test_too_many_values_at_one_path():
    body = {"base": BASE, "grid": {"trainer.batch_size": [1, 2, 3, 4, 5], "seed": [1, 2]}}
    assert refused(body) == [("grid.trainer.batch_size",
                              "5 values is more than the limit of 4 values at one grid path")]


def test_too_many_variants():
    variants = [{"name": str(i), "patch": {}} for i in range(6)]
    assert refused({"base": BASE, "variants": variants}) == [
        ("variants", "6 variants is more than the limit of 5 variants")]


def test_too_many_repeats():
    message = "repeats must be between 1 and 6 (the limit of repeats), got 7"
    assert refused({"base": BASE, "repeats": 7}) == [("repeats", message)]
    assert sweep_spec.parse({"base": BASE, "repeats": 6}, SMALL).repeats == 6


def test_too_many_jobs_is_counted_without_expanding():
    body = {"base": BASE, "repeats": 5, "grid": {"trainer.batch_size": [1, 2, 3], "seed": [1, 2, 3]},
            "variants": [{"name": "a", "patch": {}}]}
    assert refused(body) == [("", ("this sweep would be 45 jobs (variants x grid combinations x repeats); "
                                   "the limit is 40 jobs"))]
    huge = {"base": BASE, "grid": {f"trainer.k{i}": list(range(100)) for i in range(20)}}  # 100**20 combinations
    [(path, message)] = refused(huge, Config())
    assert path == "" and "would be 1e40 jobs" in message
    assert message.endswith("the limit is 500 jobs")


def test_the_bytes_to_check_name_what_makes_them():
    small_bytes = SMALL.replace(sweep_max_check_bytes=20_000)
    seeds = {"seed": [1, 2, 3, 4]}
    big_base = {**BASE, "name": "x" * 10_000}
    [(path, message)] = refused({"base": big_base, "grid": seeds}, small_bytes)
    assert path == "base" and "the base (10 KiB) is part of each of them" in message
    assert "4 distinct job requests would add up to about 41 KiB" in message and "the limit is 20 KiB" in message
    big_patch = {"name": "y" * 9_000}
    [(path, message)] = refused({"base": BASE, "grid": seeds, "variants": [{"name": "a", "patch": big_patch}]},
                                small_bytes)
    assert path == "variants" and "each variant's patch is part of 4 of them" in message
    [(path, message)] = refused({"base": BASE, "grid": {"name": ["z" * 7_000, "w" * 7_000, "v" * 7_000]}},
                                small_bytes)
    assert path == "grid" and "the limit is 20 KiB" in message
    # Identical patches make identical requests, checked once: they count once.
    same = [{"name": str(i), "patch": big_patch} for i in range(5)]
    assert len(sweep_spec.parse({"base": BASE, "variants": same}, small_bytes).variants) == 5


def test_limits_are_checked_before_anything_is_read_expanded_or_validated(monkeypatch):
    def boom(*args, **kwargs):
        raise AssertionError("expanded or validated a sweep over its limits")

    for name in ("merge_patch", "set_paths", "load_job_request", "parse_path"):
        monkeypatch.setattr(sweep_spec, name, boom)
    garbage = {"a..b": 5, "": None, "x" * 300: [], "seed": list(range(1000))}  # 4 paths: none of them is read
    assert [p for p, _ in refused({"base": BASE, "grid": garbage})] == ["grid"]
    assert [p for p, _ in refused({"base": BASE, "variants": [5, {"nom": 1}] * 100})] == ["variants"]
    monkeypatch.setattr(sweep_spec, "parse_path", paths.parse_path)
    body = {"base": BASE, "repeats": 2, "variants": [{"name": "a", "patch": {}}, {"name": "b", "patch": {}}],
            "grid": {"seed": [1, 2, 3, 4], "trainer.batch_size": [1, 2, 3, 4]}}
    assert [p for p, _ in refused(body)] == [""]  # 2 x 16 x 2 = 64 jobs
    body["repeats"] = 1
    assert [p for p, _ in refused({**body, "base": {**BASE, "name": "n" * 100_000}})] == ["base"]  # 3 MiB to check


def test_the_api_limits_are_the_default_config():
    """parse(body) without a config uses Config()'s limits."""
    variants = [{"name": str(i), "patch": {}} for i in range(101)]
    with pytest.raises(InvalidSpec) as caught:
        sweep_spec.parse({"base": BASE, "variants": variants})
    assert caught.value.errors[0].message == "101 variants is more than the limit of 100 variants"
    assert len(sweep_spec.parse({"base": BASE, "variants": variants[:100]}).variants) == 100


# --- linear planning --------------------------------------------------------------------------------------

def test_set_paths_is_set_path_one_after_another():
    document = {"trainer": {"batch_size": 20, "method": "sgd"}, "l": [{"a": 1}, {"a": 2}], "n": None}
    assignments = [("trainer.batch_size", 40), ("trainer.momentum", 0.5), ("l[1].a", 3), ("l[0]", {"b": [1]}),
                   ("l[0].b.0", 9), ("n.deep.er", True), ("trainer", {"method": "adam"}), ("trainer.batch_size", 7)]
    before = copy.deepcopy(document)
    one_by_one = document
    for path, value in assignments:
        one_by_one = paths.set_path(one_by_one, paths.parse_path(path), value)
    values = [value for _, value in assignments]
    values_before = copy.deepcopy(values)
    at_once = paths.set_paths(document, [(paths.parse_path(p), v) for p, v in zip([p for p, _ in assignments], values)])
    assert at_once == one_by_one == {"trainer": {"method": "adam", "batch_size": 7}, "l": [{"b": [9]}, {"a": 3}],
                                     "n": {"deep": {"er": True}}}
    assert document == before and values == values_before, "neither the document nor the values change"
    at_once["l"][0]["b"].append(1)
    assert values[3] == {"b": [1]}, "the result shares no value with the assignments"


def test_set_paths_says_which_path_failed():
    with pytest.raises(paths.PathError, match="past the end of a list of 2") as caught:
        paths.set_paths({"l": [1, 2]}, [(["x"], 1), (["l", 0], 5), (["l", 2], 1)])
    assert caught.value.index == 2
    spec = {"base": BASE, "grid": {"trainer.batch_size": [10], "network.layers[9].sx": [3]}}
    with pytest.raises(InvalidSpec) as error:
        sweep_spec.parse(spec)
    assert [e.path for e in error.value.errors] == ["grid.network.layers[9].sx"]


def test_variants_share_what_they_do_not_change_with_the_base():
    """No request is a copy of the base: what a patch or grid path does not touch is the base's own."""
    base = {**BASE, "seed": 1}
    spec = sweep_spec.parse({"base": base, "grid": {"trainer.batch_size": [10, 20], "data.augment.crop": [False]},
                             "variants": [{"name": "a", "patch": {}},
                                          {"name": "b", "patch": {"budget": {"examples": None, "epochs": 1}}}]})
    assert len(spec.variants) == 4
    for variant in spec.variants:
        assert variant.request["network"] is base["network"]
        assert variant.request["trainer"] is not base["trainer"] and variant.request["trainer"]["method"] == "adadelta"
    assert spec.variants[0].request["budget"] is base["budget"] and spec.variants[3].request["budget"] == {"epochs": 1}
    assert base == {**BASE, "seed": 1}


def test_parse_and_plan_change_nothing_in_the_body():
    body = {"name": "s", "base": copy.deepcopy(BASE), "repeats": 2,
            "variants": [{"name": "a", "patch": {"network": {"layers": SINGLE_CONV}}}, {"name": "b", "patch": {}}],
            "grid": {"trainer.batch_size": [10, 20], "network.layers[1].filters": [4]}}
    before = copy.deepcopy(body)
    spec = sweep_spec.parse(body)
    planned = sweep_spec.plan(spec, Config())
    for p in planned:
        p.job_request(1, spec.name, 2)
    assert body == before


def test_identical_requests_share_one_validation(monkeypatch):
    calls = []
    real = sweep_spec.load_job_request

    def counting(request, config, uploads=None):
        calls.append(request["name"])
        return real(request, config, uploads)

    monkeypatch.setattr(sweep_spec, "load_job_request", counting)
    variants = [{"name": f"same {i}", "patch": {"trainer": {"batch_size": 10}}} for i in range(50)]
    variants.append({"name": "other", "patch": {"trainer": {"batch_size": 30}}})
    spec = sweep_spec.parse({"name": "s", "base": BASE, "variants": variants, "repeats": 3})
    planned = sweep_spec.plan(spec, Config())
    assert calls == ["s/same 0/1", "s/other/1"]
    assert [p.request["name"] for p in planned[:2]] == ["s/same 0/1", "s/same 1/1"]
    assert planned[7].job_request(2, "s", 3)["name"] == "s/same 7/3"
    assert planned[-1].request["trainer"]["batch_size"] == 30 and planned[3].request["trainer"]["batch_size"] == 10


def test_a_sweep_full_of_bad_variants_stops_at_the_error_limit(monkeypatch):
    calls = []
    real = sweep_spec.load_job_request
    monkeypatch.setattr(sweep_spec, "load_job_request", lambda r, c, u=None: calls.append(1) or real(r, c, u))
    no_budget = {k: v for k, v in BASE.items() if k != "budget"}
    spec = sweep_spec.parse({"base": no_budget, "grid": {"seed": list(range(100)), "trainer.batch_size": [1, 2, 3]}})
    with pytest.raises(sweep_spec.InvalidSweep) as caught:
        sweep_spec.plan(spec, Config())
    assert len(caught.value.errors) == sweep_spec.MAX_ERRORS == 100 and len(calls) == 100
    assert caught.value.names[:2] == ["seed=0, batch_size=1", "seed=0, batch_size=2"] and len(caught.value.names) == 100
    assert caught.value.unchecked == 200
    assert caught.value.detail.endswith("(checking stopped at 100 problems: 200 more variants were not checked)")
    assert all(e["path"] == "budget" for e in caught.value.errors)


def test_one_request_with_many_errors_reports_the_first_hundred():
    # 180 unknown fields, each section under the 100 that is refused as a crowd before anything is checked.
    junk = {**BASE, "trainer": {**BASE["trainer"], **{f"k{i}": i for i in range(90)}},
            "data": {**BASE.get("data", {}), **{f"d{i}": i for i in range(90)}}}
    spec = sweep_spec.parse({"base": junk, "variants": [{"name": "a", "patch": {}},
                                                        {"name": "b", "patch": {"seed": 1}}]})
    with pytest.raises(sweep_spec.InvalidSweep) as caught:
        sweep_spec.plan(spec, Config())
    assert len(caught.value.errors) == 100 and caught.value.names == ["a"] and caught.value.unchecked == 1


def test_a_long_grid_value_is_named_by_its_position():
    long_layers = [LAYERS, SINGLE_CONV]
    spec = sweep_spec.parse({"base": BASE, "grid": {"network.layers": long_layers, "data.augment": [{"crop": False}]}})
    assert [v.name for v in spec.variants] == ['layers=#1, augment={"crop":false}', 'layers=#2, augment={"crop":false}']
    assert spec.variants[1].request["network"]["layers"] == SINGLE_CONV
    assert spec.variants[1].grid == {"network.layers": SINGLE_CONV, "data.augment": {"crop": False}}
    with pytest.raises(InvalidSpec) as caught:  # a long value listed twice
        sweep_spec.parse({"base": BASE, "grid": {"network.layers": [LAYERS, SINGLE_CONV, LAYERS]}})
    assert [(e.path, e.message) for e in caught.value.errors] == [
        ("grid", ("two variants would both be called 'layers=#1'; every row of the table needs its own name, so "
                  "list each value once"))]
