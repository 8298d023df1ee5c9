"""Bad input never hurts: schemathesis fuzzes every operation of openapi.yaml, and hostile bodies get a 4xx.

`test_fuzz` is one test per operation of the description (schemathesis's examples, coverage
and fuzzing phases, positive and negative data): no response may be a 5xx or break the
documented status codes, content types, headers and body schemas, and data that breaks the
schema must be refused. The `app` fixture checks every response against the description once
more (tests/openapi_check.py). The schema is loaded when the module is imported and each case
is sent to the fixture's app with `case.call(app=app)`; `schemathesis.pytest.from_fixture`
would be the lazy way, but schemathesis 4.32 breaks on pytest 9.2 there (Function._nodeid).

Path ids: the fuzzer draws random ids (404s) and the examples this module adds to the
`job_id` parameter: stand-ins that the test swaps for real jobs in each state (queued, paused,
succeeded, cancelled), so the handlers behind the 404 run too. An event stream stays open while
its job lives, so stream operations get finished jobs only.

Jobs the fuzzer submits are cancelled at once and every job this module made is deleted at
the end, so the shared worker trains nothing but the two tiny jobs (200 examples) of the `succeeded` state.

Bounded: CONVTRAIN_FUZZ_EXAMPLES (default 30) examples per operation in the fuzzing phase,
plus the examples and coverage phases (their size follows the description), from the seed
CONVTRAIN_FUZZ_SEED (fixed by default, so that runs repeat; set another to explore).
"""

from __future__ import annotations

import collections
import copy
import gzip
import io
import json
import os
import random
import re

import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from service.api import create_app
from tests import openapi_check
from tests.conftest import example, wait_status

pytestmark = pytest.mark.e2e

MAX_EXAMPLES = int(os.environ.get("CONVTRAIN_FUZZ_EXAMPLES", "30"))
SEED = int(os.environ.get("CONVTRAIN_FUZZ_SEED", "20260611"))
TERMINAL = ("succeeded", "failed", "cancelled")
# Real ids are 23 hex digits (time and randomness); these 40-digit ones stand in for real jobs.
STATES = ("queued", "paused", "succeeded", "cancelled")
STAND_INS = {f"{i:040x}": state for i, state in enumerate(STATES, 1)}
# A job on the gpu queue waits there: the shared worker of a machine without CUDA takes cpu and auto.
PARKED = "gpu"
DELETE_JOB = "DELETE /v1/jobs/{job_id}"


def small(examples: int = 200, **changes) -> dict:
    return example("net1-default.json", budget={"examples": examples}, **changes)


def fuzz_description() -> dict:
    """openapi.yaml with the stand-in ids as examples of every job_id parameter."""
    spec = copy.deepcopy(openapi_check.spec())
    spec["components"]["parameters"]["JobId"]["examples"] = {
        state: {"summary": f"a {state} job", "value": stand_in} for stand_in, state in STAND_INS.items()}
    return spec


schema = schemathesis.openapi.from_dict(fuzz_description())
schema.config.seed = SEED
schema.config.generation.update(modes=list(schemathesis.GenerationMode))  # positive and negative data
CHECKS = [
    schemathesis.checks.not_a_server_error,
    schemathesis.checks.status_code_conformance,
    schemathesis.checks.content_type_conformance,
    schemathesis.checks.response_headers_conformance,
    schemathesis.checks.response_schema_conformance,
    schemathesis.checks.negative_data_rejection,
]


class Jobs:
    """Real jobs in each state for the stand-in ids, made on first use; cleans up every job it has seen."""

    def __init__(self, client):
        self.client = client
        self.made: list[str] = []
        self.pool: dict[tuple[str, str], str] = {}
        self.cases: collections.Counter = collections.Counter()  # (operation, status) -> cases run

    def submit(self, body: dict) -> str:
        response = self.client.post("/v1/jobs", json=body)
        assert response.status_code == 202, response.get_json()
        self.made.append(response.get_json()["id"])
        return self.made[-1]

    def get(self, state: str, operation: str) -> str:
        """A job in `state` for `operation`.

        Each operation gets its own, since cancel, pause, resume and delete change them; only the
        succeeded one, which takes the worker a few seconds to train, is shared by all but DELETE.
        """
        key = (state, "*" if state == "succeeded" and operation != DELETE_JOB else operation)
        if key not in self.pool:
            if state == "succeeded":
                job_id = self.submit(small(name="fuzz-succeeded"))
                assert wait_status(self.client, job_id, TERMINAL)["status"] == "succeeded"
            else:
                job_id = self.submit(small(name=f"fuzz-{state}", device=PARKED))
            if state in ("paused", "cancelled"):
                action = "pause" if state == "paused" else "cancel"
                assert self.client.post(f"/v1/jobs/{job_id}/{action}").status_code == 202
            self.pool[key] = job_id
        return self.pool[key]

    def cleanup(self) -> None:
        for job_id in self.made:
            if self.client.get(f"/v1/jobs/{job_id}").status_code == 404:
                continue
            self.client.post(f"/v1/jobs/{job_id}/cancel")
            wait_status(self.client, job_id, TERMINAL, timeout=30)
            assert self.client.delete(f"/v1/jobs/{job_id}").status_code == 204


@pytest.fixture(scope="module")
def module_app(service):
    """An app for the module's own bookkeeping requests, checked against the description like `app`."""
    application = create_app(service.config, service.url)
    application.testing = True
    violations = openapi_check.install(application)
    yield application
    assert not violations, "responses that break openapi.yaml:\n" + "\n".join(violations)


@pytest.fixture(scope="module")
def jobs(module_app, request):
    known = Jobs(module_app.test_client())
    yield known
    known.cleanup()
    if known.cases:  # how much the fuzzer did, shown in the summary of the run
        by_class = collections.Counter(f"{status // 100}xx" for (_, status) in known.cases.elements())
        line = (f"schemathesis: {sum(by_class.values())} cases on {len({op for op, _ in known.cases})} operations "
                f"({', '.join(f'{n} {c}' for c, n in sorted(by_class.items()))}), seed {SEED}")
        reporter = request.config.pluginmanager.get_plugin("terminalreporter")
        capture = request.config.pluginmanager.get_plugin("capturemanager")
        if reporter is not None and capture is not None:
            with capture.global_and_fixture_disabled():
                reporter.write_line("\n" + line)


def streams(operation) -> bool:
    """Whether the operation answers with an event stream, which stays open as long as its job lives."""
    responses = operation.definition.raw.get("responses", {})
    return any("text/event-stream" in (response.get("content") or {}) for response in responses.values())


@schema.parametrize()
# `app` is built once per operation and serves all its cases, as a real server would; its
# teardown then checks every response the operation got against the description.
@settings(max_examples=MAX_EXAMPLES, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.filter_too_much, HealthCheck.data_too_large])
def test_fuzz(case, app, jobs):
    state = STAND_INS.get((case.path_parameters or {}).get("job_id"))
    if state is not None:
        if streams(case.operation) and state not in TERMINAL:
            state = "succeeded"  # a live job's stream would only end at schemathesis's read timeout
        case.path_parameters["job_id"] = jobs.get(state, case.operation.label)
    response = case.call(app=app)
    try:
        case.validate_response(response, checks=CHECKS)
    finally:
        jobs.cases[case.operation.label, response.status_code] += 1
        if case.method == "POST" and case.path == "/v1/jobs" and response.status_code in (200, 202):
            # The fuzzer's jobs must not keep the shared worker busy: stop each one at once.
            job_id = response.json()["id"]
            jobs.made.append(job_id)
            jobs.client.post(f"/v1/jobs/{job_id}/cancel")


# --- hostile bodies, sent to each endpoint that reads one --------------------------------------

MiB = 1 << 20
TARGETS = ("submit", "validate", "trainer")


class Target:
    """One endpoint that reads a JSON body, a valid body for it, and how to send it raw bytes."""

    def __init__(self, name: str, client, jobs: Jobs):
        self.name, self.client, self.jobs = name, client, jobs
        if name == "submit":
            self.method, self.path, self.valid = "POST", "/v1/jobs", small(device=PARKED)
        elif name == "validate":
            self.method, self.path, self.valid = "POST", "/v1/networks/validate", small()
        else:
            self.method, self.path = "PATCH", f"/v1/jobs/{jobs.get('queued', 'hostile bodies')}/trainer"
            self.valid = {"learning_rate": 0.001}

    @property
    def number_field(self) -> str:
        return "learning_rate" if self.name == "trainer" else "trainer.learning_rate"

    def send(self, data: bytes, content_type: str = "application/json"):
        response = self.client.open(self.path, method=self.method, data=data, content_type=content_type)
        self.forget(response)
        return response

    def forget(self, response) -> None:
        """Cancel a job that a hostile body got queued after all; cleanup() deletes it."""
        if self.name == "submit" and response.status_code in (200, 202):
            self.jobs.made.append(response.get_json()["id"])
            self.client.post(f"/v1/jobs/{response.get_json()['id']}/cancel")

    def send_json(self, body):
        return self.send(json.dumps(body, ensure_ascii=False).encode())

    def with_literal(self, where: str, literal: str) -> bytes:
        """The valid body as JSON text, with the value at dotted path `where` replaced by `literal` verbatim."""
        sentinel = "@@LITERAL@@"
        body = copy.deepcopy(self.valid)
        *parents, last = where.split(".")
        node = body
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node.setdefault(part, {})
        if isinstance(node, list):
            node[int(last)] = sentinel
        else:
            node[last] = sentinel
        return json.dumps(body).replace(f'"{sentinel}"', literal).encode()


@pytest.fixture(params=TARGETS)
def target(request, client, jobs):
    return Target(request.param, client, jobs)


def problem(response, status: int) -> dict:
    assert response.status_code == status, (response.status_code, response.get_data(as_text=True)[:500])
    assert response.mimetype == "application/problem+json"
    body = response.get_json()
    assert body["status"] == status
    return body


def test_a_2_mib_body_is_413(target):
    stuffed = json.dumps({**target.valid, "name": "x" * (2 * MiB)}) if target.name != "trainer" else None
    padded = json.dumps(target.valid) + " " * (2 * MiB)  # valid JSON, were it not for its size
    for data in filter(None, (stuffed, padded)):
        problem(target.send(data.encode()), 413)


def test_a_2_mib_streamed_body_is_413(target):
    """Sent chunked, without Content-Length, the way gunicorn hands it to the app (wsgi.input_terminated)."""
    padded = json.dumps(target.valid).encode() + b" " * (2 * MiB)
    response = target.client.open(target.path, method=target.method, input_stream=io.BytesIO(padded),
                                  content_type="application/json", headers={"Transfer-Encoding": "chunked"},
                                  environ_overrides={"wsgi.input_terminated": True})
    target.forget(response)
    problem(response, 413)


DEEP = 10_000


@pytest.mark.parametrize("nesting", ["arrays", "objects", "unclosed", "in a field"])
def test_json_nested_10000_levels_is_400(target, nesting):
    data = {
        "arrays": "[" * DEEP + "]" * DEEP,
        "objects": '{"a":' * DEEP + "1" + "}" * DEEP,
        "unclosed": "[" * DEEP,
        "in a field": target.with_literal(target.number_field, "[" * DEEP + "]" * DEEP).decode(),
    }[nesting]
    assert "nested deeper" in problem(target.send(data.encode()), 400)["detail"]


@pytest.mark.parametrize("sign", ["", "-"])
def test_a_5000_digit_number_is_400(target, sign):
    body = problem(target.send(target.with_literal(target.number_field, sign + "7" * 5000)), 400)
    assert "not valid JSON" in body["detail"]


HUGE = {"1e999": "1e999", "-1e999": "-1e999", "10**400": "1" + "0" * 400, "-10**400": "-1" + "0" * 400}
# Fields that a number this size breaks: its own range, or (for layer sizes) the network's limits.
NUMBER_FIELDS = {
    "submit": ["trainer.learning_rate", "trainer.batch_size", "budget.examples", "budget.seconds", "seed",
               "data.validation_fraction", "network.layers.1.sx", "network.layers.1.bias_pref"],
    "validate": ["trainer.momentum", "data.test_crops", "network.layers.0.out_sx", "network.layers.1.filters",
                 "network.layers.1.l2_decay_mul", "network.layers.5.num_classes"],
    "trainer": ["learning_rate", "momentum", "batch_size", "l1_decay", "l2_decay"],
}
HUGE_CASES = [(name, field, literal) for name in TARGETS for field in NUMBER_FIELDS[name] for literal in HUGE]


@pytest.mark.parametrize("name, field, literal", HUGE_CASES, ids=[f"{n}-{f}-{v}" for n, f, v in HUGE_CASES])
def test_infinite_and_huge_numbers_are_422(client, jobs, name, field, literal):
    """1e999 parses as infinity and 10**400 fits no float: both are field errors, never a 500."""
    target = Target(name, client, jobs)
    if field.startswith("budget."):
        target.valid = {**target.valid, "budget": {}}
    body = problem(target.send(target.with_literal(field, HUGE[literal])), 422)
    expected = {"trainer." + field if name == "trainer" else re.sub(r"\.(\d+)", r"[\1]", field)}
    if field.startswith("network.") and literal.lstrip("-") == "10**400":
        expected.add("network.layers")  # a huge size may be reported as the network's parameter count
    assert expected & {e["path"] for e in body["errors"]}, body["errors"]


NAMES = {
    "emoji": "🧠🔥 net 👩‍👩‍👧 🇪🇺",
    "rtl marks": "\u202eten-1\u202c \u200fשלום\u200f \u200eمرحبا\u200e",
    "combining and wide": "Zalgo Z̷̢͓a̸l̵g̶o \u4e2d\u6587 \U0001d518\U0001d52b\U0001d526",
    "controls": "tab\tnewline\nnul\u0000bell\u0007",
    "noncharacters": "\ufffe\uffff\U0010ffff",
}


@pytest.mark.parametrize("kind", list(NAMES))
def test_unicode_names_are_kept_as_sent(target, kind):
    """A name is any text up to 200 characters: emoji, bidi marks, controls and noncharacters included."""
    name = NAMES[kind]
    if target.name == "trainer":  # the trainer patch has no name; unicode keys are unknown fields
        body = problem(target.send_json({**target.valid, name: 1}), 422)
        assert f"trainer.{name}" in [e["path"] for e in body["errors"]]
        return
    response = target.send_json({**target.valid, "name": name})
    assert response.status_code == (202 if target.name == "submit" else 200), response.get_data(as_text=True)[:500]
    if target.name == "submit":  # stored and shown as sent
        job_id = response.get_json()["id"]
        assert response.get_json()["name"] == name
        assert target.client.get(f"/v1/jobs/{job_id}").get_json()["name"] == name
        assert name in [j["name"] for j in target.client.get("/v1/jobs?limit=500").get_json()["jobs"]]
    layer = copy.deepcopy(target.valid)
    layer["network"]["layers"][1]["type"] = name
    body = problem(target.send_json(layer), 422)
    assert "network.layers[1].type" in [e["path"] for e in body["errors"]]


def test_a_lone_surrogate_is_not_a_500(target):
    """A lone "\\ud800" is valid JSON text but no Unicode character: a 400 that says so, never a 500."""
    field = "name" if target.name != "trainer" else "learning_rate"
    response = target.send(target.with_literal(field, '"\\ud800 \\udfff"'))
    key = target.send(json.dumps({**target.valid, "\ud800": 1}).encode())  # json.dumps escapes it
    for refused in (response, key):  # not text: the body is refused before any field is read
        assert "unpaired UTF-16 surrogate" in problem(refused, 400)["detail"]


GARBAGE = {
    "every byte": bytes(range(256)),
    "random": random.Random(1).randbytes(4096),
    "png": b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x18",
    "gzip json": gzip.compress(b'{"learning_rate": 0.001}'),
    "utf-16": '{"learning_rate": 0.001}'.encode("utf-16"),
    "utf-8 bom": b"\xef\xbb\xbf{}",
    "nul bytes": b"\x00" * 64,
    "truncated utf-8": '{"name": "\u00e9'.encode()[:-1],
    "overlong utf-8": b'{"name": "\xc0\xaf"}',
    "cesu surrogate": b'{"name": "\xed\xa0\x80"}',
    "empty": b"",
    "not json": b"hello, world",
}


@pytest.mark.parametrize("garbage", list(GARBAGE))
def test_garbage_bodies_are_400(target, garbage):
    problem(target.send(GARBAGE[garbage]), 400)


def test_latin1_bodies_are_400_and_the_charset_is_ignored(target):
    """JSON is UTF-8 (RFC 8259): a latin-1 é is refused; ASCII reads the same in either, so it is accepted."""
    latin = {**target.valid, "name": "café Motörhead"} if target.name != "trainer" else {**target.valid, "café": 1}
    data = json.dumps(latin, ensure_ascii=False).encode("latin-1")
    assert "UTF-8" in problem(target.send(data, "application/json; charset=latin-1"), 400)["detail"]
    ascii_only = target.send(json.dumps(target.valid).encode("latin-1"), "application/json; charset=latin-1")
    assert ascii_only.status_code in (200, 202), ascii_only.get_data(as_text=True)[:500]
