"""Check responses against openapi.yaml: the documented status, content type, headers and body schema.

`install(app)` checks every response a Flask app sends (the `app` fixture in conftest.py
fails a test whose responses break the description); `check(...)` checks one response
obtained any other way, for instance over real HTTP with requests.
"""

from __future__ import annotations

import functools
import json
import re
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

SPEC_PATH = Path(__file__).resolve().parents[1] / "openapi.yaml"
BASE = "urn:convtrain:openapi"
VIOLATIONS: list[str] = []  # every violation that any installed hook has seen
_FLASK_PARAM = re.compile(r"<(?:[^<>:]+:)?([^<>]+)>")
# Unknown routes and 405s have no url_rule; they must still be problem details.
GENERIC_PROBLEM = {"$ref": f"{BASE}#/components/schemas/Problem"}


@functools.cache
def spec() -> dict:
    return yaml.safe_load(SPEC_PATH.read_text("utf-8"))


@functools.cache
def _registry() -> Registry:
    return Registry().with_resource(BASE, Resource(contents=spec(), specification=DRAFT202012))


def _pointer(*parts: str) -> str:
    return "#/" + "/".join(str(p).replace("~", "~0").replace("/", "~1") for p in parts)


def validator(pointer: str) -> Draft202012Validator:
    """A validator for the schema at a JSON pointer into the document, e.g. '#/components/schemas/Job'."""
    return Draft202012Validator({"$ref": BASE + pointer}, registry=_registry())


def schema_errors(pointer: str, value: Any) -> list[str]:
    """Each way `value` breaks the schema at `pointer`, as 'at $.a.b: message' lines."""
    out = []
    for error in sorted(validator(pointer).iter_errors(value), key=lambda e: list(e.absolute_path)):
        where = "$" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path)
        detail = error.message if len(error.message) < 300 else error.message[:297] + "..."
        # oneOf/anyOf failures say little by themselves; name the deepest sub-errors.
        best = sorted(error.context or [], key=lambda e: -len(e.absolute_path))[:3]
        hints = "; ".join(f"{'$' + ''.join(f'.{p}' for p in e.absolute_path)}: {e.message[:150]}" for e in best)
        out.append(f"at {where}: {detail}" + (f" (e.g. {hints})" if hints else ""))
    return out


def openapi_path(rule: str) -> str:
    """A Flask rule such as /v1/jobs/<job_id> as an OpenAPI path, /v1/jobs/{job_id}."""
    return _FLASK_PARAM.sub(r"{\1}", rule)


def _resolve(obj: dict) -> tuple[dict, list[str]]:
    """Follow a response or header object's $ref within the document; return it and its pointer parts."""
    parts: list[str] = []
    while "$ref" in obj:
        parts = obj["$ref"].lstrip("#/").split("/")
        obj = spec()
        for p in parts:
            obj = obj[p.replace("~1", "/").replace("~0", "~")]
    return obj, parts


def _media_type(content_type: str | None) -> str:
    return (content_type or "").split(";")[0].strip().lower()


def _is_json(media_type: str) -> bool:
    return media_type == "application/json" or media_type.endswith("+json")


def check(method: str, rule: str | None, status: int, content_type: str | None, body: Any,
          headers=None) -> list[str]:
    """The ways one response breaks the description; [] when it conforms.

    `rule` is the Flask rule (``/v1/jobs/<job_id>``) or OpenAPI path (``/v1/jobs/{job_id}``)
    that served it, or None for a URL that matched no route. `body` is bytes, text, an
    already parsed JSON value, or None to skip the body check (HEAD, streamed files).
    `headers`, when given, must hold the response headers the description marks required.
    """
    method = method.upper()
    if method == "OPTIONS":
        return []
    if method == "HEAD":
        method, body = "GET", None
    media_type = _media_type(content_type)
    where = f"{method} {rule or '(no route)'} -> {status}"
    if rule is None:
        if status < 400:
            return [f"{where}: a URL that matches no route answered {status}"]
        if media_type != "application/problem+json":
            return [f"{where}: content type {content_type!r} is not application/problem+json"]
        return [f"{where}: {e}" for e in _body_errors(GENERIC_PROBLEM["$ref"][len(BASE):], body)]

    path = openapi_path(rule)
    operation = spec()["paths"].get(path, {}).get(method.lower())
    if operation is None:
        return [f"{where}: {method} {path} is not in openapi.yaml"]
    responses = operation.get("responses", {})
    code = next((c for c in (str(status), f"{status // 100}XX", "default") if c in responses), None)
    if code is None:
        return [f"{where}: status {status} is not documented (documented: {', '.join(responses)})"]
    response, ref_parts = _resolve(responses[code])
    base = ref_parts or ["paths", path, method.lower(), "responses", code]
    problems: list[str] = []

    for name, header in (response.get("headers") or {}).items():
        header, _ = _resolve(header)
        if headers is not None and header.get("required") and name not in headers:
            problems.append(f"{where}: required header {name} is missing")

    content = response.get("content")
    if not content:
        if body not in (None, b"", ""):
            problems.append(f"{where}: documented without a body, but has one: {str(body)[:100]!r}")
        return problems
    if media_type not in content:
        problems.append(f"{where}: content type {content_type!r} is not one of {', '.join(content)}")
        return problems
    if "schema" in content[media_type] and _is_json(media_type):
        pointer = _pointer(*base, "content", media_type, "schema")
        problems += [f"{where}: {e}" for e in _body_errors(pointer, body)]
    return problems


def _body_errors(pointer: str, body: Any) -> list[str]:
    if body is None:
        return []
    if isinstance(body, (bytes, bytearray, str)):
        try:
            body = json.loads(body)
        except ValueError as exc:
            return [f"the body is not JSON: {exc}"]
    return schema_errors(pointer, body)


def install(app) -> list[str]:
    """Check every response `app` sends; return the list that collects this app's violations.

    A failed check is recorded, never raised: an exception in an after_request hook would
    turn the response into a 500. The caller asserts the list is empty after the test.
    """
    from flask import request

    violations: list[str] = []

    @app.after_request
    def _check_response(response):
        rule = request.url_rule.rule if request.url_rule is not None else None
        body = None if response.direct_passthrough or response.is_streamed else response.get_data()
        try:
            found = check(request.method, rule, response.status_code, response.content_type, body,
                          headers=response.headers)
        except Exception as exc:  # a broken description must fail the test, not the request
            found = [f"{request.method} {request.path}: the check itself failed: {type(exc).__name__}: {exc}"]
        violations.extend(found)
        VIOLATIONS.extend(found)
        return response

    return violations
