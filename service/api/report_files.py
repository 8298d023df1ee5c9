"""A sweep's or a search's report as a file: md, csv or png, named after it."""

from __future__ import annotations

from flask import Response

from service.text import file_stem

FORMATS = {"md": "text/markdown", "csv": "text/csv", "png": "image/png"}


def report_response(body: bytes | str, fmt: str, name: str | None, kind: str, item_id: str) -> Response:
    """`body` served inline as `<name>-<id>.<fmt>` (`kind` when it has no usable name)."""
    response = Response(body, mimetype=FORMATS[fmt])
    response.headers["Content-Disposition"] = f'inline; filename="{file_stem(name, kind)}-{item_id}.{fmt}"'
    return response
