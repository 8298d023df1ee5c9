"""Reading a JSON request body safely: type, size, nesting and number checks before any use."""

from __future__ import annotations

import json

from flask import current_app, request

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
        return json.loads(text, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as exc:
        raise Problem(400, "Bad Request", f"the body is not valid JSON: {exc}") from None
