"""Query parameters, checked: whole numbers in a range, listing cursors, one of a set of names."""

from __future__ import annotations

import math

from flask import request

from service.errors import BadRequest


def int_arg(name: str, default: int, lo: int, hi: int) -> int:
    """?name= as a whole number in [lo, hi]; `default` when absent."""
    raw = request.args.get(name)
    if raw is None:
        return default
    if not raw.isascii() or not raw.isdigit():
        raise BadRequest.field(f"query.{name}", f"{name} must be a whole number",
                               f"{name} must be a whole number, got {raw!r}")
    value = int(raw)
    if not lo <= value <= hi:
        raise BadRequest.field(f"query.{name}", f"{name} must be in [{lo}, {hi}]",
                               f"{name} must be in [{lo}, {hi}], got {value}")
    return value


def cursor_arg() -> float | None:
    """The ?cursor= of a listing: a score this API returned in `next`."""
    cursor = request.args.get("cursor")
    try:
        value = float(cursor) if cursor else None
        if value is not None and not math.isfinite(value):
            raise ValueError(cursor)
    except ValueError:
        raise BadRequest.field("query.cursor", "invalid cursor", "cursor is not one that this API returned") from None
    return value


def choice_arg(name: str, choices, default: str | None = None) -> str | None:
    """?name= as one of `choices`; `default` when absent."""
    raw = request.args.get(name)
    if raw is None:
        return default
    if raw not in choices:
        raise BadRequest.field(f"query.{name}", f"unknown {name} {raw!r}",
                               f"{name} must be one of {', '.join(choices)}, got {raw!r}")
    return raw
