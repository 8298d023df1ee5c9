"""Reading a JSON request body safely: type, size, nesting and number checks before any use."""

from __future__ import annotations

from flask import current_app, request
from werkzeug.exceptions import RequestEntityTooLarge

from service.errors import BadRequest, UnsupportedMediaType
from service.spec import strict_json


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
        raise UnsupportedMediaType(f"send the body as application/json, not {mimetype or 'no content type'}")
    try:
        return strict_json.loads(raw, current_app.extensions["convtrain"].config.max_json_depth)
    except strict_json.NotJSON as exc:
        raise BadRequest(str(exc).replace("the input", "the body")) from None
