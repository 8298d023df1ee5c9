"""GET /v1/jobs/{id}/model: a succeeded job's trained weights."""

from __future__ import annotations

import re

from flask import Blueprint, Response, current_app, request

from service.api.errors import Problem
from service.api.jobs import _job
from service.storage import sha256

bp = Blueprint("models", __name__, url_prefix="/v1/jobs")
MODEL_FILE = "model.pt"


@bp.get("/<job_id>/model")
def model(job_id: str):
    job = _job(job_id)
    fmt = request.args.get("format", "pt")
    if fmt != "pt":
        raise Problem(400, "Bad Request", f"unknown model format {fmt!r}; available: pt",
                      errors=[{"path": "query.format", "message": "available formats: pt"}])
    if job["status"] != "succeeded":
        raise Problem(409, "Conflict", f"the job is {job['status']}; its model is available once it has succeeded")
    try:
        data = current_app.extensions["convtrain"].artifacts.get(job_id, (job.get("model") or {}).get("file", MODEL_FILE))
    except FileNotFoundError:
        raise Problem(404, "Not Found", "the model file is missing from the artifact store") from None
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", job["name"] or "model").strip("-") or "model"
    return Response(data, mimetype="application/octet-stream", headers={
        "Content-Disposition": f'attachment; filename="{name}-{job_id}.pt"',
        "ETag": f'"{sha256(data)}"',
    })
