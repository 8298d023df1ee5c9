"""GET /v1/jobs/{id}/model?format= and /model/card: a succeeded job's trained model, in every export format."""

from __future__ import annotations

from flask import Blueprint, Response

from service.api.lookup import services, visible_job
from service.api.params import choice_arg
from service.errors import Conflict, NotFound
from service.lifecycle import WITH_MODEL
from service.spec.model_card import card as model_card
from service.spec.model_card import exports, file_name
from service.spec.model_formats import FORMATS
from service.storage import sha256

bp = Blueprint("models", __name__, url_prefix="/v1/jobs")


def _succeeded(job_id: str) -> dict:
    job = visible_job(job_id)
    if job["status"] not in WITH_MODEL:  # a pruned trial keeps the weights it stopped with
        raise Conflict(f"the job is {job['status']}; its model is available once it has succeeded")
    return job


@bp.get("/<job_id>/model")
def model(job_id: str):
    visible_job(job_id)
    fmt = choice_arg("format", FORMATS, "pt")
    job = _succeeded(job_id)
    info = exports(job)[fmt]
    if "error" in info:
        raise NotFound(f"this job has no {fmt} export: {info['error']}")
    try:
        data = services().artifacts.get(job_id, info["file"])
    except FileNotFoundError:
        raise NotFound("the model file is missing from the artifact store") from None
    return Response(data, mimetype=FORMATS[fmt].media_type, headers={
        "Content-Disposition": f'attachment; filename="{file_name(job, fmt)}"',
        "ETag": f'"{sha256(data)}"',
    })


@bp.get("/<job_id>/model/card")
def card(job_id: str):
    return model_card(_succeeded(job_id))
