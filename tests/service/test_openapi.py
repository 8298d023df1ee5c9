"""openapi.yaml: it lists exactly the app's routes, it is valid OpenAPI 3.1, and responses match it."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import pytest
import yaml
from openapi_spec_validator import validate as validate_openapi

from service.api import create_app
from service.config import Config
from service.lifecycle import Attempt
from service.spec import datasets
from service.spec.netspec import InvalidSpec
from service.spec.schemas import load_job_request
from service.storage import sha256
from service.store.record import present
from service.store.workers import Workers
from tests import openapi_check
from tests.conftest import EXAMPLES, ROOT, example, wait_for

SPEC = openapi_check.spec()
SCHEMAS = SPEC["components"]["schemas"]
IGNORED_METHODS = {"HEAD", "OPTIONS"}
DEAD_REDIS = "redis://127.0.0.1:1/0"  # nothing listens on port 1: every Redis call fails at once


def schema(name: str) -> str:
    return f"#/components/schemas/{name}"


def errors(name: str, value) -> list[str]:
    return openapi_check.schema_errors(schema(name), value)


def make_app(tmp_path: Path, redis_url: str = DEAD_REDIS):
    """The app without a worker; it connects to Redis only when a request needs it."""
    app = create_app(Config(home=tmp_path), redis_url)
    app.testing = True
    return app


@pytest.fixture
def checked(tmp_path):
    """A test client of an app with no reachable Redis, every response checked against the description."""
    app = make_app(tmp_path)
    violations = openapi_check.install(app)
    yield app.test_client()
    assert not violations, "\n".join(violations)


# --- the description and the app agree -------------------------------------------------------------


def test_every_route_is_documented_and_every_documented_route_exists(tmp_path):
    app = make_app(tmp_path)
    routes = {(openapi_check.openapi_path(rule.rule), method.lower())
              for rule in app.url_map.iter_rules() if rule.endpoint != "static"
              for method in rule.methods - IGNORED_METHODS}
    documented = {(path, method) for path, item in SPEC["paths"].items()
                  for method in item if method in ("get", "put", "post", "delete", "patch", "head", "options", "trace")}
    assert routes - documented == set(), "routes of the app that openapi.yaml lacks"
    assert documented - routes == set(), "operations in openapi.yaml that the app does not have"


def test_path_parameters_match_the_flask_rules(tmp_path):
    for rule in make_app(tmp_path).url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        path = openapi_check.openapi_path(rule.rule)
        item = SPEC["paths"][path]
        for method in rule.methods - IGNORED_METHODS:
            params = [_deref(p) for p in item.get("parameters", []) + item[method.lower()].get("parameters", [])]
            in_path = {p["name"] for p in params if p["in"] == "path"}
            assert in_path == set(rule.arguments), f"{method} {path}: path parameters {in_path} != {rule.arguments}"
            assert all(p["required"] for p in params if p["in"] == "path")


def _deref(obj: dict) -> dict:
    while "$ref" in obj:
        obj = _at(obj["$ref"])
    return obj


def _at(ref: str):
    assert ref.startswith("#/"), f"only local references are used: {ref}"
    node = SPEC
    for part in ref[2:].split("/"):
        part = part.replace("~1", "/").replace("~0", "~")
        assert isinstance(node, dict) and part in node, f"{ref} does not resolve"
        node = node[part]
    return node


def test_the_description_is_valid_openapi_3_1():
    text = (ROOT / "openapi.yaml").read_text("utf-8")
    spec = yaml.safe_load(text)
    assert re.fullmatch(r"3\.1\.\d+", spec["openapi"])
    assert all(isinstance(code, str) for item in spec["paths"].values() for op in item.values()
               if isinstance(op, dict) and "responses" in op for code in op["responses"]), "quote status codes"
    validate_openapi(spec)

    refs = []

    def walk(node):
        if isinstance(node, dict):
            if isinstance(node.get("$ref"), str):
                refs.append(node["$ref"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(spec)
    assert refs
    for ref in refs:
        _at(ref)
    # Every component is used somewhere.
    for kind, entries in spec["components"].items():
        for name in entries:
            assert f"#/components/{kind}/{name}" in refs, f"components/{kind}/{name} is never referenced"


def _schemas(node, where="#"):
    """Every schema object in the document (bodies, parameters, components) with its JSON pointer."""
    if isinstance(node, dict):
        if "schema" in node and isinstance(node["schema"], dict):
            yield from _schema_tree(node["schema"], f"{where}/schema")
        for key, value in node.items():
            if key not in ("schema", "schemas", "example", "examples"):
                yield from _schemas(value, f"{where}/{key}")
        for name, value in (node.get("schemas") or {}).items() if where == "#/components" else ():
            yield from _schema_tree(value, f"{where}/schemas/{name}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _schemas(value, f"{where}/{i}")


def _schema_tree(schema, where):
    if not isinstance(schema, dict):
        return
    yield where, schema
    for key in ("items", "additionalProperties", "not", "if", "then", "else", "propertyNames", "contains"):
        yield from _schema_tree(schema.get(key), f"{where}/{key}")
    for key in ("properties", "patternProperties", "$defs", "dependentSchemas"):
        for name, sub in (schema.get(key) or {}).items():
            yield from _schema_tree(sub, f"{where}/{key}/{name}")
    for key in ("allOf", "anyOf", "oneOf", "prefixItems"):
        for i, sub in enumerate(schema.get(key) or []):
            yield from _schema_tree(sub, f"{where}/{key}/{i}")


ALL_SCHEMAS = list(_schemas(SPEC))
CONSTRAINT_ONLY = {"required", "not", "if", "then", "else", "minProperties", "maxProperties", "description"}


def test_the_description_is_one_code_generators_read_whole():
    """The forms that openapi-python-client and openapi-typescript (default options) read wrongly are not used.

    tests/e2e/test_generated_clients.py runs both generators on the served document; these are the
    rules behind it, checked in milliseconds.
    """
    assert len(ALL_SCHEMAS) > 300
    for where, schema in ALL_SCHEMAS:
        if re.search(r"/(if|then|else|not)(/|$)", where):
            continue  # a condition: only validation reads it, the generators skip it
        types = schema.get("type") if isinstance(schema.get("type"), list) else [schema.get("type")]
        # An array without items is skipped with its endpoint by openapi-python-client.
        if "array" in types:
            assert "items" in schema or "prefixItems" in schema, f"{where}: an array needs items"
        # An object with neither is Record<string, never> in openapi-typescript: nothing fits in it.
        if "object" in types:
            assert {"properties", "additionalProperties", "allOf", "oneOf", "anyOf"} & set(schema), \
                f"{where}: say what an object holds (properties, or additionalProperties: true)"
        if "enum" in schema or "const" in schema:
            assert "type" in schema, f"{where}: an enum or const needs its type"
        # openapi-typescript marks a property with a default required, in requests and responses alike;
        # the defaults are in the descriptions (a parameter's default is read right by both).
        if "/properties/" in where:
            assert "default" not in schema, f"{where}: a default makes the property required in TypeScript"
        # A union member that only constrains (e.g. {required: [network]}) is a union of Any to the
        # generators: constraints are written with not, if/then, minProperties and maxProperties.
        for key in ("oneOf", "anyOf"):
            for i, member in enumerate(schema.get(key) or []):
                assert set(member) - CONSTRAINT_ONLY, f"{where}/{key}/{i}: a union member must be a type"
        # allOf: a property narrowed in a later member must stay mergeable (same type, or an enum of it).
        for i, member in enumerate(schema.get("allOf") or []):
            if i and "$ref" not in member:
                for name, sub in (member.get("properties") or {}).items():
                    assert "const" not in sub, f"{where}/allOf/{i}/properties/{name}: use enum: [value]"


def test_binary_bodies_are_binary():
    """Files, pictures and uploads are `format: binary` strings, so that generated clients hand out bytes."""
    for path, item in SPEC["paths"].items():
        for method, op in item.items():
            if method == "parameters":
                continue
            bodies = [("requestBody", op.get("requestBody", {}))] + [
                (code, _deref(r)) for code, r in op["responses"].items()]
            for code, body in bodies:
                for media, content in (body.get("content") or {}).items():
                    if media.startswith("image/") or media == "application/octet-stream":
                        assert content["schema"].get("format") == "binary", f"{method} {path} {code} {media}"


def test_every_operation_documents_its_errors():
    for path, item in SPEC["paths"].items():
        for method, op in item.items():
            if method == "parameters":
                continue
            codes = set(op["responses"])
            assert "500" in codes, f"{method} {path}"
            assert any(c.startswith("2") for c in codes), f"{method} {path}"
            if "{job_id}" in path:
                assert {"404", "503"} <= codes, f"{method} {path}"
            if "requestBody" in op:
                assert {"400", "413", "415", "422"} <= codes, f"{method} {path}"
            if any(_deref(p)["in"] == "query" for p in op.get("parameters", [])):
                assert "400" in codes, f"{method} {path}"


# --- the docs endpoints -----------------------------------------------------------------------------


def test_openapi_yaml_and_json_are_served(checked):
    r = checked.get("/openapi.yaml")
    assert r.status_code == 200 and r.mimetype == "application/yaml"
    assert yaml.safe_load(r.get_data(as_text=True)) == SPEC
    r = checked.get("/openapi.json")
    assert r.status_code == 200 and r.mimetype == "application/json"
    assert r.get_json() == json.loads(json.dumps(SPEC))


def test_docs_page_is_self_contained(checked):
    r = checked.get("/docs")
    assert r.status_code == 200 and r.mimetype == "text/html"
    page = r.get_data(as_text=True)
    assert "/openapi.json" in page
    assert not re.search(r"https?://", page), "the page must not load anything from another site"
    # Its script and style sheet are separate same-origin files, as the content security policy demands.
    assets = re.findall(r'<(?:script|link)[^>]+(?:src|href)="([^"]+)"', page)
    assert sorted(assets) == ["/docs/docs.css", "/docs/docs.js"]
    for asset in assets:
        body = checked.get(asset).get_data(as_text=True)
        assert not re.search(r"https?://[^\s'\"]+\.(js|css)|@import|url\(", body), asset
    assert "<script>" not in page and "<style>" not in page


# --- sample bodies against the schemas ---------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(p.name for p in EXAMPLES.glob("net*.json")))
def test_example_job_requests_match_the_job_request_schema(name):
    body = example(name)
    assert errors("JobRequest", body) == []
    request, network = load_job_request(body, Config())
    assert errors("AcceptedRequest", request) == []
    assert errors("NetworkSummary", network.as_dict()) == []
    assert errors("ValidateRequest", body) == [] and errors("ValidateRequest", body["network"]) == []


def test_demo_source_request_matches_the_job_request_schema():
    source = (EXAMPLES / "net1-default.js").read_text()
    assert errors("JobRequest", {"convnetjs": source, "budget": {"examples": 1000}}) == []


BODY = example("net1-default.json")


@pytest.mark.parametrize("change, valid", [
    ({}, True),
    ({"trainer": None}, True),
    ({"seed": 7, "device": "cpu", "name": "x" * 200}, True),
    ({"data": {"dataset": "fashion-mnist", "augment": {"flip": True}, "test_crops": 4}}, True),
    ({"budget": {"seconds": 2.5}}, True),
    ({"budget": {}}, False),
    ({"budget": {"examples": 10, "epochs": 1}}, False),
    ({"budget": {"examples": 0}}, False),
    ({"trainer": {"method": "rmsprop"}}, False),
    ({"trainer": {"momentum": 1}}, False),
    ({"trainer": {"batch_size": 2.5}}, False),
    ({"trainer": {"lr": 0.1}}, False),
    ({"device": "tpu"}, False),
    ({"name": "x" * 201}, False),
    ({"seed": -1}, False),
    ({"data": {"validation_fraction": 0.6}}, False),
    ({"data": {"test_crops": 65}}, False),
    ({"colour": "red"}, False),
    ({"convnetjs": "layer_defs = [];"}, False),  # network and convnetjs together
])
def test_job_request_schema_agrees_with_the_api(change, valid):
    """What the schema accepts, the API accepts; what it rejects, the API rejects."""
    body = {**BODY, **change}
    assert (errors("JobRequest", body) == []) is valid
    try:
        load_job_request(body, Config())
        accepted = True
    except InvalidSpec:
        accepted = False
    assert accepted is valid


def test_layer_schema():
    assert errors("Layer", {"type": "conv", "sx": 3, "filters": 4, "activation": "relu"}) == []
    assert errors("Layer", {"type": "conv", "whatever": 1}) == []  # other fields are the API's to judge
    assert errors("Layer", {"type": "convolution"})
    assert errors("Layer", {"sx": 3})
    assert errors("Layer", {"type": "pool", "sx": 0})


def test_datasets_match():
    assert errors("Datasets", {"datasets": datasets.describe(None)}) == []


def _record(**fields) -> dict:
    request, network = load_job_request(dict(BODY), Config())
    record = {"id": "18f0a1b2c3d4e5f6a7b8c9d", "name": "n", "status": "queued", "owner": "",
              "created_at": "1700000000.5", "queue": "cpu", "device": "auto", "request": json.dumps(request),
              "summary": json.dumps(network.as_dict()), "examples_seen": "0", "examples_total": "30000",
              "starts": "0", "preemptions": "0", "seq": "0"}
    return {**record, **{k: json.dumps(v) if isinstance(v, dict) else str(v) for k, v in fields.items()}}


METRICS = {"examples": 2000, "epoch": 0.037, "seconds": 1.5, "class_loss": 0.5, "l2_loss": 0.01, "l1_loss": 0.0,
           "train_acc": 0.8, "val_acc": None, "examples_per_second": 1300.0, "forward_ms": 0.1, "backward_ms": 0.2,
           "learning_rate": 0.01, "batch_size": 20}
RESULT = {"examples_seen": 30000, "epochs": 0.5556, "train_acc": 0.97, "val_acc": 0.96, "test_acc": 0.97,
          "class_loss": 0.1, "l2_loss": 0.02, "examples_per_second": 9000.0, "seconds": 3.3}
MODEL = {"file": "model.pt", "format": "pt", "bytes": 30000, "sha256": "0" * 64}


@pytest.mark.parametrize("fields", [
    {},
    {"status": "running", "started_at": "1700000001", "worker": "w1", "starts": "1", "metrics": METRICS,
     "examples_seen": "2000", "cancel_requested": "1"},
    {"status": "paused", "started_at": "1700000001", "worker": "", "starts": "1", "pause_requested": "1"},
    {"status": "succeeded", "started_at": "1700000001", "finished_at": "1700000005", "metrics": METRICS,
     "result": {**RESULT, "test_acc_crops": 0.975}, "model": MODEL, "device": "cuda:0", "examples_seen": "30000"},
    {"status": "failed", "finished_at": "1700000005", "error": {"type": "diverged", "message": "NaN", "examples": 300}},
    {"status": "cancelled", "finished_at": "1700000005", "examples_total": ""},
])
def test_job_objects_match(fields):
    job = present(_record(**fields))
    assert errors("Job", job) == []
    listed = {k: v for k, v in job.items() if k not in ("request", "network")}
    assert errors("JobSummary", listed) == []
    assert errors("Job", listed), "a job read by id has its request and network"


def test_job_schema_lists_every_key_of_present():
    job = present(_record(status="running", cancel_requested="1"))
    documented = set(SCHEMAS["JobSummary"]["properties"]) | set(SCHEMAS["Job"]["allOf"][1]["properties"])
    assert set(job) == documented


def _dict_keys(func: ast.FunctionDef, variable: str | None) -> set[str]:
    """The string keys of the dict literal that `func` returns (variable None) or assigns to `variable`."""
    for node in ast.walk(func):
        if variable is None and isinstance(node, ast.Return) and isinstance(node.value, ast.Dict):
            return {k.value for k in node.value.keys}
        if (variable and isinstance(node, ast.Assign) and isinstance(node.value, ast.Dict)
                and any(isinstance(t, ast.Name) and t.id == variable for t in node.targets)):
            return {k.value for k in node.value.keys}
    raise AssertionError(f"no dict literal in {func.name}")


def test_metric_and_result_keys_match_the_trainer():
    """The worker's metric points and results carry exactly the documented keys (read from its source, no torch)."""
    tree = ast.parse((ROOT / "worker" / "trainer.py").read_text())
    funcs = {f.name: f for f in ast.walk(tree) if isinstance(f, ast.FunctionDef)}
    assert _dict_keys(funcs["point"], None) == set(SCHEMAS["MetricValues"]["required"])
    result_keys = _dict_keys(funcs["_finish"], "result")
    assert result_keys == set(SCHEMAS["Result"]["required"])
    assert result_keys | {"test_acc_crops"} == set(SCHEMAS["Result"]["properties"])
    documented = set(SCHEMAS["StreamEvent"]["properties"]["event"]["enum"])
    runner = (ROOT / "worker" / "runner.py").read_text() + (ROOT / "service" / "lifecycle.py").read_text() \
        + (ROOT / "worker" / "search.py").read_text()  # a search's trial writes its rungs
    trainer = (ROOT / "worker" / "trainer.py").read_text()
    # The API and the reaper write events too, for jobs that no worker holds.
    others = [(ROOT / "service" / "lifecycle.py").read_text()]
    emitted = set(re.findall(r'"event": "(\w+)"', runner)) | set(re.findall(r'on_event\(\{"type": "(\w+)"', trainer))
    emitted |= {e for source in others for e in re.findall(r'add_event\(job_id, "(\w+)"', source)}
    assert emitted - documented == set(), "events the worker writes that StreamEvent lacks"
    strings = {node.value for source in (runner, trainer, *others) for node in ast.walk(ast.parse(source))
               if isinstance(node, ast.Constant) and isinstance(node.value, str)}
    assert documented - strings == set(), "documented events that the worker never writes"


POINTS = [
    {"seq": 1, "event": "started", "examples": 0, "attempt": 1},
    {"seq": 2, **METRICS},
    {"seq": 3, "event": "trainer", "examples": 2000, "changes": {"learning_rate": 0.001}},
    {"seq": 4, "event": "checkpoint", "examples": 2000},
    {"seq": 5, "event": "paused", "examples": 2000},
    {"seq": 6, "event": "resumed", "examples": 2000, "attempt": 2},
    {"seq": 7, "event": "requeued", "examples": 2500, "reason": "worker shutting down"},
    {"seq": 8, "event": "cancelled", "examples": 2600},
    {"seq": 9, "event": "failed", "error": {"type": "internal", "message": "boom"}},
    {"seq": 10, "event": "finished", "examples": 30000, "result": RESULT},
]


def test_metric_points_match():
    assert errors("MetricsPage", {"points": POINTS, "next": 10}) == []
    assert errors("MetricPoint", {k: v for k, v in POINTS[1].items() if k != "seq"}), "seq is required"
    assert errors("MetricPoint", {"seq": 1, "event": "failed"}), "a failure carries its error"
    assert errors("MetricPoint", {"seq": 1, "event": "exploded", "examples": 1}), "unknown event"
    assert errors("MetricPoint", {"seq": 2, **{k: v for k, v in METRICS.items() if k != "class_loss"}})


# --- the checker itself -------------------------------------------------------------------------------


def test_checker_finds_violations():
    problem = {"type": "about:blank", "title": "Not Found", "status": 404, "instance": "/v1/jobs/ab12cd34"}
    check = openapi_check.check
    assert check("GET", "/v1/jobs/<job_id>", 404, "application/problem+json", json.dumps(problem)) == []
    assert check("GET", "/v1/jobs/{job_id}", 404, "application/problem+json", problem) == []
    assert check("HEAD", "/v1/jobs/<job_id>", 404, "application/problem+json", b"") == []
    assert check("OPTIONS", "/anything", 200, "text/html", b"") == []
    assert "not documented" in check("GET", "/v1/jobs/<job_id>", 418, "application/problem+json", problem)[0]
    assert "content type" in check("GET", "/v1/jobs/<job_id>", 404, "application/json", problem)[0]
    no_instance = {"type": "about:blank", "title": "Not Found", "status": 404}
    assert "'instance' is a required property" in check("GET", "/v1/jobs/<job_id>", 404, "application/problem+json",
                                                        no_instance)[0]
    assert "not JSON" in check("GET", "/healthz", 200, "application/json", b"ok")[0]
    assert "not in openapi.yaml" in check("PUT", "/healthz", 200, "application/json", b"{}")[0]
    assert "matches no route" in check("GET", None, 200, "text/html", b"")[0]
    assert check("GET", None, 404, "application/problem+json", problem) == []
    assert "without a body" in check("DELETE", "/v1/jobs/<job_id>", 204, "text/html", b"x")[0]
    assert check("DELETE", "/v1/jobs/<job_id>", 204, "text/html; charset=utf-8", b"") == []
    assert "Retry-After" in check("GET", "/v1/jobs", 503, "application/problem+json",
                                  {**problem, "status": 503}, headers={})[0]
    found = check("GET", "/v1/jobs/<job_id>", 200, "application/json", {"id": "x"})
    assert found and all(f.startswith("GET /v1/jobs/<job_id> -> 200: at $") for f in found)


def test_installed_checker_collects_violations(tmp_path):
    app = make_app(tmp_path)

    @app.get("/undocumented")
    def undocumented():
        return {"x": 1}

    violations = openapi_check.install(app)
    before = len(openapi_check.VIOLATIONS)
    assert app.test_client().get("/undocumented").status_code == 200  # a violation never breaks the response
    assert violations == ["GET /undocumented -> 200: GET /undocumented is not in openapi.yaml"]
    assert openapi_check.VIOLATIONS[before:] == violations
    del openapi_check.VIOLATIONS[before:]


# --- responses of the app without Redis --------------------------------------------------------------


def test_responses_without_redis_conform(checked):
    c = checked
    assert c.get("/healthz").get_json() == {"status": "ok"}
    assert c.head("/healthz").status_code == 200
    assert c.options("/v1/jobs").status_code == 200
    assert c.get("/v1/datasets").status_code == 503  # the caller's uploads are in the store
    assert c.post("/v1/networks/validate", json=BODY["network"]).status_code == 200
    assert c.post("/v1/networks/validate", json=BODY).status_code == 200
    assert c.post("/v1/networks/validate", json={"convnetjs": (EXAMPLES / "net1-default.js").read_text()}).status_code == 200
    assert c.post("/v1/networks/validate", json={"layers": []}).status_code == 422
    assert c.post("/v1/networks/validate", json=[1]).status_code == 422
    assert c.post("/v1/networks/validate", data="{", content_type="application/json").status_code == 400
    assert c.post("/v1/networks/validate", data=b"\xff", content_type="application/json").status_code == 400
    assert c.post("/v1/networks/validate", data="x", content_type="text/plain").status_code == 415
    assert c.post("/v1/networks/validate", data=b"[" * (2 << 20), content_type="application/json").status_code == 413
    assert c.post("/v1/jobs", json={**BODY, "budget": {}}).status_code == 422
    assert c.post("/v1/jobs", json=BODY, headers={"Idempotency-Key": "a b"}).status_code == 400
    assert c.get("/nope").status_code == 404
    assert c.put("/v1/jobs").status_code == 405
    # Redis unreachable: 503 with Retry-After, checked by the hook.
    assert c.get("/v1/jobs").status_code == 503
    assert c.get("/v1/jobs/0123abcd").status_code == 503
    assert c.post("/v1/jobs", json=BODY).status_code == 503
    ready = c.get("/readyz")
    assert ready.status_code == 503 and ready.get_json()["checks"] == {"redis": False, "workers": 0}
    assert c.get("/v1/jobs?limit=0").status_code == 400
    assert c.get("/v1/jobs?status=lost").status_code == 400
    assert c.get("/v1/jobs/not-an-id").status_code == 404


# --- responses of the app with Redis, without a worker --------------------------------------------------


def test_job_control_responses_conform(stored):
    c, _ = stored
    r = c.post("/v1/jobs", json=BODY, headers={"Idempotency-Key": "key-1"})
    assert r.status_code == 202 and r.headers["Location"] == f"/v1/jobs/{r.get_json()['id']}"
    job_id = r.get_json()["id"]
    assert c.post("/v1/jobs", json=BODY, headers={"Idempotency-Key": "key-1"}).status_code == 200
    assert c.post("/v1/jobs", json={**BODY, "name": "other"}, headers={"Idempotency-Key": "key-1"}).status_code == 409
    assert c.post("/v1/jobs", json={**BODY, "budget": {"seconds": 1}, "name": "second"}).status_code == 202
    page = c.get("/v1/jobs?limit=1").get_json()
    assert len(page["jobs"]) == 1 and page["next"]
    assert len(c.get(f"/v1/jobs?limit=1&cursor={page['next']}").get_json()["jobs"]) == 1
    assert c.get("/v1/jobs?status=queued").status_code == 200
    assert c.get("/v1/jobs?cursor=yesterday").status_code == 400
    assert c.get(f"/v1/jobs/{job_id}").status_code == 200
    assert c.head(f"/v1/jobs/{job_id}").status_code == 200
    assert c.get(f"/v1/jobs/{job_id}/metrics").get_json() == {"points": [], "next": 0}
    assert c.get(f"/v1/jobs/{job_id}/metrics?after=-1").status_code == 400
    assert c.get(f"/v1/jobs/{job_id}/model").status_code == 409
    assert c.post(f"/v1/jobs/{job_id}/pause").get_json()["status"] == "paused"
    assert c.post(f"/v1/jobs/{job_id}/pause").status_code == 202
    assert c.patch(f"/v1/jobs/{job_id}/trainer", json={"learning_rate": 0.001}).status_code == 200
    assert c.patch(f"/v1/jobs/{job_id}/trainer", json={"method": "adam"}).status_code == 422
    assert c.patch(f"/v1/jobs/{job_id}/trainer", json={}).status_code == 422
    assert c.patch(f"/v1/jobs/{job_id}/trainer", data="x", content_type="text/plain").status_code == 415
    assert c.delete(f"/v1/jobs/{job_id}").status_code == 409
    assert c.post(f"/v1/jobs/{job_id}/resume").get_json()["status"] == "queued"
    assert c.post(f"/v1/jobs/{job_id}/cancel").get_json()["status"] == "cancelled"
    for action in ("cancel", "pause", "resume"):
        assert c.post(f"/v1/jobs/{job_id}/{action}").status_code == 409
    assert c.patch(f"/v1/jobs/{job_id}/trainer", json={"momentum": 0.5}).status_code == 409
    assert c.delete(f"/v1/jobs/{job_id}").status_code == 204
    for r in (c.get(f"/v1/jobs/{job_id}"), c.get(f"/v1/jobs/{job_id}/metrics"), c.delete(f"/v1/jobs/{job_id}"),
              c.post(f"/v1/jobs/{job_id}/cancel"), c.get(f"/v1/jobs/{job_id}/model")):
        assert r.status_code == 404
    assert c.get("/readyz").status_code == 503  # Redis answers, but no worker is alive


def test_cancel_of_a_queued_job_answers_202(stored):
    c, _ = stored
    job_id = c.post("/v1/jobs", json=BODY).get_json()["id"]
    r = c.post(f"/v1/jobs/{job_id}/cancel")
    assert (r.status_code, r.get_json()["status"]) == (202, "cancelled")


def test_a_trained_job_conforms(stored):
    """The worker's side played by hand: events, metric points, a result and a model file."""
    c, services = stored
    store, artifacts = services.store, services.artifacts
    job_id = c.post("/v1/jobs", json=BODY).get_json()["id"]
    Workers(store.r).alive("w1", 30, {})
    assert c.get("/readyz").get_json()["workers"] == ["w1"]
    start = store.start(job_id, "w1", 30, 3)
    token = start.token
    store.add_point(job_id, token, {"event": "started", "examples": 0, "attempt": start.attempt})
    store.add_point(job_id, token, METRICS, metrics=METRICS, examples_seen=METRICS["examples"])
    assert c.post(f"/v1/jobs/{job_id}/pause").get_json()["status_detail"] == "pausing"
    assert c.post(f"/v1/jobs/{job_id}/resume").get_json()["status"] == "running"
    assert c.get(f"/v1/jobs/{job_id}").get_json()["progress"]["eta_seconds"] is not None
    for point in POINTS[2:]:  # every kind of event, whatever the order
        store.add_point(job_id, token, {k: v for k, v in point.items() if k != "seq"})
    blob = b"model bytes"
    artifacts.put(job_id, "model.pt", blob)
    model = {"file": "model.pt", "format": "pt", "bytes": len(blob), "sha256": sha256(blob)}
    assert Attempt(store, job_id, token).succeed(30000, RESULT, model)
    job = c.get(f"/v1/jobs/{job_id}").get_json()
    assert job["status"] == "succeeded" and job["progress"]["fraction"] == 1.0
    page = c.get(f"/v1/jobs/{job_id}/metrics?limit=3").get_json()
    assert [p["seq"] for p in page["points"]] == [1, 2, 3] and page["next"] == 3
    assert len(c.get(f"/v1/jobs/{job_id}/metrics?after=3").get_json()["points"]) == 8  # and the finished event
    r = c.get(f"/v1/jobs/{job_id}/model")
    assert r.status_code == 200 and r.data == blob and job_id in r.headers["Content-Disposition"]
    assert c.get(f"/v1/jobs/{job_id}/model?format=h5").status_code == 400
    assert c.get(f"/v1/jobs/{job_id}/model?format=onnx").status_code == 404  # a model file without exports
    card = c.get(f"/v1/jobs/{job_id}/model/card").get_json()
    assert card["formats"]["pt"]["sha256"] == sha256(blob) and "error" in card["formats"]["onnx"]
    assert c.delete(f"/v1/jobs/{job_id}").status_code == 204


# --- a real worker ------------------------------------------------------------------------------------


@pytest.mark.e2e
def test_real_training_conforms(client):
    """A short real job through the shared worker; the `app` fixture checks every response."""
    body = {**BODY, "budget": {"examples": 600}, "name": "openapi-e2e"}
    job_id = client.post("/v1/jobs", json=body).get_json()["id"]

    def finished():  # each look also reads the metrics mid-run, so their pages are checked too
        client.get(f"/v1/jobs/{job_id}/metrics")
        job = client.get(f"/v1/jobs/{job_id}").get_json()
        return job if job["status"] in ("succeeded", "failed") else None
    job = wait_for(finished, 120, "the job finished", every=0.1)
    assert job["status"] == "succeeded", job["error"]
    events = [p.get("event") for p in client.get(f"/v1/jobs/{job_id}/metrics").get_json()["points"]]
    assert events[0] == "started" and events[-1] == "finished" and None in events
    assert client.get(f"/v1/jobs/{job_id}/model").status_code == 200
    assert client.get("/readyz").status_code == 200
