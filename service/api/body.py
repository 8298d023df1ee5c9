"""Reading a JSON request body safely: type, size, nesting and number checks before any use."""

from __future__ import annotations

import json

from flask import current_app, request
from werkzeug.exceptions import RequestEntityTooLarge

from service.api.errors import Problem


def _depth(text: str) -> int:
    """The deepest bracket nesting in JSON text, strings skipped, without building anything."""
    depth = deepest = 0
    in_string = escaped = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in "]}":
            depth -= 1
    return deepest


def _reject_constant(name: str):
    raise ValueError(f"{name} is not valid JSON")


def json_body(required: bool = True):
    """The request's JSON body; 415 for another type, 400 for bad JSON, 413 above the size limit."""
    raw = request.get_data(cache=True)  # MAX_CONTENT_LENGTH makes this raise 413 first
    limit = request.max_content_length
    if limit is not None and request.content_length is None and len(raw) >= limit:
        # A chunked body has no length up front: werkzeug stops reading at the limit without an error.
        if request.environ["wsgi.input"].read(1):
            raise RequestEntityTooLarge()
    if not raw and not required:
        return None
    mimetype = request.mimetype or ""
    if mimetype != "application/json" and not mimetype.endswith("+json"):
        raise Problem(415, "Unsupported Media Type",
                      f"send the body as application/json, not {mimetype or 'no content type'}")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise Problem(400, "Bad Request", f"the body is not UTF-8 text: {exc.reason} at byte {exc.start}") from None
    limit = current_app.extensions["convtrain"].config.max_json_depth
    if _depth(text) > limit:
        raise Problem(400, "Bad Request", f"the JSON is nested deeper than the limit of {limit} levels")
    try:
        value = json.loads(text, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as exc:
        raise Problem(400, "Bad Request", f"the body is not valid JSON: {exc}") from None
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        raise Problem(400, "Bad Request", "the body contains an unpaired UTF-16 surrogate (\\ud800-\\udfff), "
                      "which is not text") from None
    return value
