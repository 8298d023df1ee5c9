"""Search requests: bounds, field errors, architectures, path existence, candidates and rungs (service/spec)."""

from __future__ import annotations

import copy

import pytest

from service.config import Config
from service.spec import search as search_spec
from service.spec.netspec import InvalidSpec
from service.spec.search import InvalidSearch

LAYERS = [{"type": "input", "out_sx": 24, "out_sy": 24, "out_depth": 1},
          {"type": "conv", "sx": 5, "filters": 8, "activation": "relu"},
          {"type": "pool", "sx": 2, "stride": 2},
          {"type": "softmax", "num_classes": 10}]
THREE = LAYERS[:3] + [{"type": "conv", "sx": 3, "filters": 8, "pad": 1, "activation": "relu"},
                      {"type": "pool", "sx": 2, "stride": 2}, LAYERS[3]]
BASE = {"network": {"layers": LAYERS}, "trainer": {"method": "adadelta", "batch_size": 20},
        "budget": {"examples": 30000}}


def body(**changes) -> dict:
    out = {"name": "s", "base": copy.deepcopy(BASE),
           "architectures": [{"name": "one", "patch": {}}, {"name": "two", "patch": {"network": {"layers": THREE}}}],
           "space": {"network.layers[1].filters": {"choice": [8, 16]}, "network.layers[3].filters": {"choice": [8, 16]},
                     "trainer.l2_decay": {"float": [1e-5, 1e-2], "log": True}, "trainer.batch_size": {"int": [10, 50]}},
           "trials": 10, "parallel": 2, "pruner": {"type": "hyperband", "min_examples": 3000}, "seed": 1}
    out.update(changes)
    return out


def paths_of(excinfo) -> list[str]:
    return [e["path"] for e in excinfo.value.field_errors()]


def test_a_search_parses_with_its_defaults_and_skipped_paths():
    spec = search_spec.parse(body())
    assert [a.name for a in spec.architectures] == ["one", "two"]
    one, two = spec.architectures
    # layers[3] is the softmax in "one": filters is not one of its fields, so the path is skipped there.
    assert one.skipped == ("network.layers[3].filters",) and two.skipped == ()
    assert spec.sampler == "tpe" and spec.val_slice == search_spec.VAL_SLICE and spec.seed == 1
    assert spec.pruner == {"type": "hyperband", "min_examples": 3000, "reduction_factor": 3}


def test_no_architectures_means_the_base_alone():
    request = {k: v for k, v in body().items() if k != "architectures"}
    spec = search_spec.parse({**request, "space": {"trainer.batch_size": {"int": [10, 20]}}})
    assert [a.name for a in spec.architectures] == [search_spec.BASE_NAME]


@pytest.mark.parametrize("changes, path", [
    ({"trials": 0}, "trials"),
    ({"trials": 10**6}, "trials"),
    ({"parallel": 99}, "parallel"),
    ({"sampler": "grid"}, "sampler"),
    ({"objective": "loss"}, "objective"),
    ({"seed": -1}, "seed"),
    ({"val_slice": 10**9}, "val_slice"),
    ({"pruner": {"type": "hyperband"}}, "pruner.min_examples"),
    ({"pruner": {"type": "median", "min_examples": 10}}, "pruner.type"),
    ({"pruner": {"type": "hyperband", "min_examples": 100, "reduction_factor": 1}}, "pruner.reduction_factor"),
    ({"pruner": {"type": "none", "warmup": 1}}, "pruner.warmup"),
    ({"space": {"network.layers[1].sx": {"int": [5, 3]}}}, "space.network.layers[1].sx.int"),
    ({"space": {"trainer.l2_decay": {"float": [0, 1], "log": True}}}, "space.trainer.l2_decay.float"),
    ({"space": {"trainer.l2_decay": {"float": [0, "a"]}}}, "space.trainer.l2_decay.float"),
    ({"space": {"trainer.batch_size": {"int": [1.5, 3]}}}, "space.trainer.batch_size.int"),
    ({"space": {"trainer.batch_size": {"choice": []}}}, "space.trainer.batch_size.choice"),
    ({"space": {"trainer.batch_size": {"choice": [[1]]}}}, "space.trainer.batch_size.choice[0]"),
    ({"space": {"trainer.batch_size": {"choice": [1, 1]}}}, "space.trainer.batch_size.choice"),
    ({"space": {"trainer.batch_size": {"range": [1, 2]}}}, "space.trainer.batch_size"),
    ({"space": {"network..sx": {"choice": [1]}}}, "space.network..sx"),
    ({"space": {"seed": {"int": [1, 9]}}}, "space.seed"),
    ({"space": {"trainer.batch_size": {"choice": list(range(101))}}}, "space.trainer.batch_size.choice"),
    ({"space": {f"trainer.x{i}": {"choice": [1]} for i in range(21)}}, "space"),
    ({"architectures": [{"name": f"a{i}", "patch": {}} for i in range(21)]}, "architectures"),
    ({"architectures": [{"name": "a", "patch": {}}, {"name": "a", "patch": {}}]}, "architectures[1].name"),
    ({"architectures": [{"name": "a", "patch": []}]}, "architectures[0].patch"),
    ({"architectures": []}, "architectures"),
    ({"grid": {}}, "grid"),
    ({"base": 3}, "base"),
])
def test_hostile_bodies_name_the_field_at_fault(changes, path):
    with pytest.raises(InvalidSpec) as excinfo:
        search_spec.parse(body(**changes))
    assert path in paths_of(excinfo)


def test_the_limits_are_config_fields():
    with pytest.raises(InvalidSpec) as excinfo:
        search_spec.parse(body(trials=11), Config(search_max_trials=10))
    assert paths_of(excinfo) == ["trials"]


@pytest.mark.parametrize("changes, path", [
    # A path that no architecture has: every trial would skip it.
    ({"space": {"network.layers[9].sx": {"choice": [3, 5]}}}, "space.network.layers[9].sx"),
    ({"space": {"trainer.nothing": {"choice": [3, 5]}}}, "space.trainer.nothing"),
    # An architecture that is not a valid job request, at its path.
    ({"architectures": [{"name": "bad", "patch": {"network": {"layers": LAYERS[:1] + [{"type": "pool", "sx": 40}]
                                                              + LAYERS[3:]}}}]},
     "architectures[0].patch.network.layers[1]"),
    ({"base": {**BASE, "budget": {"seconds": 10}}}, "base.budget"),
    ({"pruner": {"type": "hyperband", "min_examples": 30000}}, "pruner.min_examples"),
    ({"base": {**BASE, "data": {"validation_fraction": 0}}}, "base.data.validation_fraction"),
])
def test_architectures_and_paths_are_checked_up_front(changes, path):
    with pytest.raises(InvalidSearch) as excinfo:
        search_spec.parse(body(**changes))
    assert any(p.startswith(path) for p in paths_of(excinfo)), paths_of(excinfo)


def test_a_candidate_sets_its_values_and_skips_what_its_architecture_lacks():
    spec = search_spec.parse(body())
    params = {"network.layers[1].filters": 16, "trainer.l2_decay": 0.001, "trainer.batch_size": 30}
    c = search_spec.candidate(spec, "one", params, 4, Config())
    assert c.errors == [] and c.skipped == ("network.layers[3].filters",)
    assert c.request["network"]["layers"][1]["filters"] == 16 and c.request["trainer"]["batch_size"] == 30
    assert c.request["trainer"]["l2_decay"] == 0.001 and c.request["name"] == "s/trial 4"
    assert c.request["seed"] == 1 and c.params == 16 * 25 + 16 + 16 * 10 * 10 * 10 + 10
    assert BASE["network"]["layers"][1]["filters"] == 8, "the base is not changed"


def test_an_invalid_combination_comes_back_with_its_errors():
    spec = search_spec.parse(body(space={"network.layers[1].sx": {"int": [3, 40]}}))
    c = search_spec.candidate(spec, "one", {"network.layers[1].sx": 40}, 0, Config())
    assert c.request is None and c.errors and c.errors[0]["path"].startswith("network.layers[1]")


@pytest.mark.parametrize("pruner, budget, rungs", [
    ({"type": "hyperband", "min_examples": 10000, "reduction_factor": 3}, 300000, [10000, 30000, 90000, 270000]),
    ({"type": "successive_halving", "min_examples": 500, "reduction_factor": 2}, 3000, [500, 1000, 2000]),
    ({"type": "none", "min_examples": None, "reduction_factor": 3}, 3000, []),
])
def test_rungs(pruner, budget, rungs):
    assert search_spec.rungs(pruner, budget) == rungs


def test_a_demo_paste_as_the_base_is_read_once_and_its_trials_vary_its_network():
    from tests.service.spec.test_jsparse import MNIST_DEMO

    base = {"convnetjs": MNIST_DEMO, "budget": {"examples": 30000}}
    spec = search_spec.parse({"base": base, "space": {"network.layers[1].filters": {"choice": [8, 16]}}, "trials": 2})
    c = search_spec.candidate(spec, search_spec.BASE_NAME, {"network.layers[1].filters": 16}, 0, Config())
    assert c.errors == [] and c.request["network"]["layers"][1]["filters"] == 16
    assert c.request["trainer"]["method"] == "adadelta"  # the paste's SGDTrainer options
