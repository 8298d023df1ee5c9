"""`init` in a job request (torch-free): ConvNetJS snapshots checked and turned into networks, job references resolved."""

from __future__ import annotations

import copy

import pytest

from service.config import Config
from service.spec import convnetjs_snapshot, initial_weights, schemas
from service.spec.netspec import InvalidSpec, analyze
from service.spec.schemas import load_job_request
from tests import openapi_check
from tests.conftest import example

NET1 = example("net1-default.json")["network"]


def snapshot_of(spec: dict, *, as_objects: bool = True) -> dict:
    """What ConvNetJS's toJSON gives for `spec` (weights 0.01), w as JSON.stringify writes a Float64Array."""
    def vol(sx, sy, depth, value):
        w = [value] * (sx * sy * depth)
        return {"sx": sx, "sy": sy, "depth": depth, "w": {str(i): v for i, v in enumerate(w)} if as_objects else w}

    out = []
    for layer in analyze(spec).layers:
        item = {"layer_type": layer["type"], "out_sx": layer["out_sx"], "out_sy": layer["out_sy"],
                "out_depth": layer["out_depth"]}
        kind = layer["type"]
        if kind in ("conv", "pool"):
            item.update({k: layer[k] for k in ("sx", "sy", "stride", "pad", "in_depth")})
        if kind == "conv":
            item["filters"] = [vol(layer["sx"], layer["sy"], layer["in_depth"], 0.01) for _ in range(layer["filters"])]
            item["biases"] = vol(1, 1, layer["filters"], 0.1)
        if kind == "fc":
            n_in = layer["in_sx"] * layer["in_sy"] * layer["in_depth"]
            item.update(num_inputs=n_in, l1_decay_mul=0, l2_decay_mul=1,
                        filters=[vol(1, 1, n_in, 0.01) for _ in range(layer["num_neurons"])],
                        biases=vol(1, 1, layer["num_neurons"], 0.0))
        if kind == "dropout":
            item["drop_prob"] = layer["drop_prob"]
        if kind in ("softmax", "svm", "regression"):
            item["num_inputs"] = layer["in_depth"]
        out.append(item)
    return {"layers": out}


def errors_of(body) -> list[tuple[str, str]]:
    with pytest.raises(InvalidSpec) as bad:
        load_job_request(body, Config())
    return [(e.path, e.message) for e in bad.value.errors]


@pytest.mark.parametrize("as_objects", [True, False])
def test_a_snapshot_gives_the_network_it_was_built_from(as_objects):
    snapshot = snapshot_of(NET1, as_objects=as_objects)
    spec, network = convnetjs_snapshot.to_network(snapshot)
    assert [layer["layer_type"] for layer in snapshot["layers"]] == [layer["type"] for layer in network.layers]
    assert network.params == analyze(NET1).params == 5994
    request, network = load_job_request({"init": {"convnetjs": snapshot}, "budget": {"examples": 0}}, Config())
    assert request["network"] == spec and request["init"] == {"convnetjs": snapshot}
    assert request["trainer"]["method"] == "sgd" and request["defaults"] == {"trainer.eps": schemas.EPS_SOURCES[1e-6]}
    assert convnetjs_snapshot.first_difference(network.layers, analyze(NET1).layers, "x") is None


def test_a_network_given_with_a_snapshot_must_match_it():
    body = {"network": NET1, "init": {"convnetjs": snapshot_of(NET1)}, "budget": {"examples": 100}}
    load_job_request(copy.deepcopy(body), Config())
    other = copy.deepcopy(NET1)
    other["layers"][3]["filters"] = 12
    errors = errors_of({**body, "network": other})
    assert errors[0][0] == "network.layers[3]"
    assert "layer 4 after desugaring is conv 5x5/1 pad 2, 16 filters -> 12x12x16, but here it is " \
           "conv 5x5/1 pad 2, 12 filters -> 12x12x12" in errors[0][1]


@pytest.mark.parametrize("change, path, message", [
    (lambda s: s["layers"][1].update(layer_type="quadtransform"), "init.convnetjs.layers[1].layer_type",
     "unsupported layer_type \"quadtransform\""),
    (lambda s: s["layers"][1]["filters"].pop(), "init.convnetjs.layers[1].filters", "filters must be a list of 8 Vols"),
    (lambda s: s["layers"][1]["filters"][2]["w"].pop("24"), "init.convnetjs.layers[1].filters[2].w",
     "w must hold the keys \"0\" to \"24\""),
    (lambda s: s["layers"][1]["filters"][2]["w"].update({"3": "x"}), "init.convnetjs.layers[1].filters[2].w[3]",
     "weights must be finite numbers"),
    (lambda s: s["layers"][1].update(out_sx=23), "init.convnetjs.layers[1].out_sx",
     "out_sx is 23, but the layers before it give 24"),
    (lambda s: s["layers"][4].update(sx="5"), "init.convnetjs.layers[4].sx", "sx must be a whole number"),
    (lambda s: s["layers"].pop(-2), "init.convnetjs.layers", "ends with an fc layer followed by a softmax"),
    (lambda s: s["layers"].insert(3, {"layer_type": "dropout", "drop_prob": 0.5, "out_sx": 24, "out_sy": 24,
                                      "out_depth": 8}) or s["layers"].insert(4, {"layer_type": "tanh"}),
     "init.convnetjs.layers[3]", "only relu, pool, maxout or dropout layers may stand between them"),
    (lambda s: s.pop("layers"), "init.convnetjs", "a ConvNetJS snapshot is an object"),
])
def test_a_broken_snapshot_is_a_422_at_the_problem(change, path, message):
    snapshot = snapshot_of(NET1)
    change(snapshot)
    errors = errors_of({"init": {"convnetjs": snapshot}, "budget": {"examples": 0}})
    assert any(p == path and message in m for p, m in errors), errors


@pytest.mark.parametrize("init, path, message", [
    ({"job": "nope"}, "init.job", "init.job must be a job id"),
    ({"job": "0123abcd", "convnetjs": {}}, "init", "init must be"),
    ({"job": "0123abcd", "weights": 1}, "init.weights", "'weights' is not a field"),
    ({"job": "0123abcd", "sha256": "x"}, "init.sha256", "SHA-256"),
    ([], "init", "init must be"),
])
def test_bad_init_values(init, path, message):
    errors = errors_of({"network": NET1, "init": init, "budget": {"examples": 0}})
    assert any(p == path and message in m for p, m in errors), errors


def test_a_zero_budget_needs_init():
    assert errors_of({"network": NET1, "budget": {"examples": 0}}) == [
        ("budget.examples", "examples must be at least 1, got 0")]
    assert ("budget.examples", "examples must be at least 1, got -1") in errors_of(
        {"network": NET1, "init": {"job": "0123abcd"}, "budget": {"examples": -1}})


def _job(job_id="0123abcd", status="succeeded", network=NET1) -> dict:
    return {"id": job_id, "status": status, "request": {"network": network},
            "network": analyze(network).as_dict(), "model": {"sha256": "a" * 64, "file": "attempts/t1/model.pt"}}


def _load(body, jobs):
    return initial_weights.load_request(body, Config(), jobs.get, load_job_request)


def test_init_job_takes_the_network_of_a_succeeded_job():
    jobs = {"0123abcd": _job()}
    request, network = _load({"init": {"job": "0123abcd"}, "budget": {"examples": 0}}, jobs)
    assert request["network"] == NET1 and request["init"] == {"job": "0123abcd", "sha256": "a" * 64, "file": "attempts/t1/model.pt"}
    request, _ = _load({"network": NET1, "init": {"job": "0123abcd"}, "budget": {"examples": 10}}, jobs)
    assert request["init"]["job"] == "0123abcd"


@pytest.mark.parametrize("jobs, body_change, path, message", [
    ({}, {}, "init.job", "no job '0123abcd'"),
    ({"0123abcd": _job(status="running")}, {}, "init.job", "job 0123abcd is running"),
    ({"0123abcd": _job()}, {"init": {"job": "0123abcd", "sha256": "b" * 64}}, "init.sha256", "not the one given"),
    ({"0123abcd": _job()}, {"network": example("net2-3x3.json")["network"]}, "network.layers[1]",
     "the weights of job 0123abcd do not fit this network: its layer 1 after desugaring is conv 5x5/1 pad 2"),
])
def test_init_job_problems(jobs, body_change, path, message):
    body = {"init": {"job": "0123abcd"}, "budget": {"examples": 0}, **body_change}
    with pytest.raises(InvalidSpec) as bad:
        _load(body, jobs)
    assert any(e.path == path and message in e.message for e in bad.value.errors), bad.value.errors


@pytest.mark.parametrize("body, valid", [
    ({"init": {"job": "0123abcd"}, "budget": {"examples": 0}}, True),
    ({"network": NET1, "init": {"convnetjs": snapshot_of(NET1)}, "budget": {"examples": 0}}, True),
    ({"init": {"convnetjs": snapshot_of(NET1, as_objects=False)}, "budget": {"epochs": 1}}, True),
    ({"network": NET1, "budget": {"examples": 0}}, False),
    ({"init": {"job": "0123abcd", "x": 1}, "budget": {"examples": 0}}, False),
])
def test_the_job_request_schema_documents_init(body, valid):
    assert (openapi_check.schema_errors("#/components/schemas/JobRequest", body) == []) is valid
