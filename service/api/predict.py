"""POST /v1/jobs/{id}/predict: classify your own image (or pixels) with a trained job's model."""

from __future__ import annotations

import base64

from flask import Blueprint, current_app, request

from service.api.body import json_body
from service.api.errors import Problem
from service.api.jobs import _job
from service.store.predictions import NoPredictor, ask

bp = Blueprint("predict", __name__, url_prefix="/v1/jobs")
IMAGE_TYPES = ("image/png", "image/jpeg")


def _payload() -> tuple[str, object]:
    """What was sent: ("image", base64 bytes) or ("pixels", a JSON array)."""
    mimetype = request.mimetype or ""
    if mimetype == "multipart/form-data":
        upload = request.files.get("image")
        if upload is None:
            raise Problem(400, "Bad Request", "send the picture in a multipart field named 'image'",
                          errors=[{"path": "image", "message": "missing"}])
        data = upload.read()
    elif mimetype in IMAGE_TYPES:
        data = request.get_data()
    elif mimetype == "application/json" or mimetype.endswith("+json"):
        body = json_body()
        pixels = body.get("pixels") if isinstance(body, dict) else body
        if not isinstance(pixels, list):
            raise Problem(422, "Invalid pixels", "send a JSON array of pixels, or {\"pixels\": [...]}",
                          errors=[{"path": "pixels", "message": "must be an array of numbers (or rows of numbers)"}])
        return "pixels", pixels
    else:
        raise Problem(415, "Unsupported Media Type",
                      "send a PNG or JPEG (as the body or a multipart field 'image'), or JSON pixels")
    if not data:
        raise Problem(400, "Bad Request", "the image is empty", errors=[{"path": "image", "message": "empty"}])
    return "image", base64.b64encode(data).decode()


@bp.post("/<job_id>/predict")
def predict(job_id: str):
    services = current_app.extensions["convtrain"]
    request.max_content_length = services.config.max_upload_bytes
    job = _job(job_id)
    if job["status"] != "succeeded":
        raise Problem(409, "Conflict", f"the job is {job['status']}; predictions need a succeeded job")
    kind, payload = _payload()
    try:
        answer = ask(services.store.r, job_id, kind, payload, services.config.predict_timeout_seconds)
    except NoPredictor as exc:
        raise Problem(503, "Service Unavailable", f"{exc}; is a worker running?", headers={"Retry-After": "5"}) from None
    if "error" in answer:
        error = answer["error"]
        raise Problem(error.get("status", 422), error.get("title", "Invalid image"), error["message"],
                      errors=[{"path": error.get("path", kind), "message": error["message"]}])
    return answer
