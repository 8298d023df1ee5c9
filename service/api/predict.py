"""POST /v1/jobs/{id}/predict: classify your own image (or pixels) with a trained job's model."""

from __future__ import annotations

import base64

from flask import Blueprint, request

from service.api.body import json_body
from service.api.lookup import services, visible_job
from service.errors import (
    BadRequest,
    Conflict,
    ConvtrainError,
    FieldError,
    Invalid,
    UnsupportedMediaType,
)
from service.lifecycle import WITH_MODEL
from service.store.predictions import ask

bp = Blueprint("predict", __name__, url_prefix="/v1/jobs")
IMAGE_TYPES = ("image/png", "image/jpeg")


def _payload() -> tuple[str, object]:
    """What was sent: ("image", base64 bytes) or ("pixels", a JSON array)."""
    mimetype = request.mimetype or ""
    if mimetype == "multipart/form-data":
        upload = request.files.get("image")
        if upload is None:
            raise BadRequest("send the picture in a multipart field named 'image'", errors=[FieldError("image", "missing")])
        data = upload.read()
    elif mimetype in IMAGE_TYPES:
        data = request.get_data()
    elif mimetype == "application/json" or mimetype.endswith("+json"):
        body = json_body()
        pixels = body.get("pixels") if isinstance(body, dict) else body
        if not isinstance(pixels, list):
            raise Invalid("send a JSON array of pixels, or {\"pixels\": [...]}", title="Invalid pixels",
                          errors=[FieldError("pixels", "must be an array of numbers (or rows of numbers)")])
        return "pixels", pixels
    else:
        raise UnsupportedMediaType("send a PNG or JPEG (as the body or a multipart field 'image'), or JSON pixels")
    if not data:
        raise BadRequest("the image is empty", errors=[FieldError("image", "empty")])
    return "image", base64.b64encode(data).decode()


@bp.post("/<job_id>/predict")
def predict(job_id: str):
    s = services()
    request.max_content_length = s.config.max_upload_bytes
    job = visible_job(job_id)
    if job["status"] not in WITH_MODEL:
        raise Conflict(f"the job is {job['status']}; predictions need a succeeded job")
    kind, payload = _payload()
    answer = ask(s.store.r, job_id, kind, payload, s.config.predict_timeout_seconds)  # NoPredictor: 503
    if "error" in answer:
        error = answer["error"]
        raise ConvtrainError(error["message"], title=error.get("title", "Invalid image"), status=error.get("status", 422),
                             errors=[FieldError(error.get("path", kind), error["message"])])
    return answer
