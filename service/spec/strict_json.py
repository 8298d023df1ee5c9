"""Strict JSON, as every body and file convtrain reads must be: UTF-8 text, no NaN or Infinity, bounded
nesting (checked on the text, before the parser can recurse), and no unpaired surrogates."""

from __future__ import annotations

import json
from typing import Any


class NotJSON(ValueError):
    """The input is not strict JSON; the message says why, in words a user understands."""


def nesting_depth(text: str) -> int:
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


def _refuse(constant: str):
    raise ValueError(f"{constant} is not a JSON number")


def loads(raw: str | bytes, max_depth: int) -> Any:
    """Parse strict JSON; raise NotJSON."""
    if isinstance(raw, (bytes, bytearray)):
        try:
            raw = bytes(raw).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise NotJSON(f"the input is not UTF-8 text: {exc.reason} at byte {exc.start}") from None
    if nesting_depth(raw) > max_depth:
        raise NotJSON(f"the JSON is nested deeper than the limit of {max_depth} levels")
    try:
        value = json.loads(raw, parse_constant=_refuse)
    except json.JSONDecodeError as exc:
        raise NotJSON(f"the input is not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})") from None
    except (ValueError, RecursionError) as exc:
        raise NotJSON(f"the input is not valid JSON: {exc}") from None
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        raise NotJSON("the input contains an unpaired UTF-16 surrogate (\\ud800-\\udfff), which is not text") from None
    return value
