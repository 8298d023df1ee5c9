"""/v1/networks/validate and /v1/datasets: what can be trained, before anything is queued."""

from __future__ import annotations

from flask import Blueprint, current_app

from service.spec import datasets
from service.api.body import json_body
from service.api.errors import problem_response
from service.spec.request_body import validate_body

bp = Blueprint("networks", __name__, url_prefix="/v1")


@bp.post("/networks/validate")
def validate():
    status, body = validate_body(json_body(), current_app.extensions["convtrain"].config)
    if status == 200:
        return body
    return problem_response(422, "Invalid network", f"{len(body['errors'])} problem(s) found", errors=body["errors"])


@bp.get("/datasets")
def listing():
    return {"datasets": datasets.describe(current_app.extensions["convtrain"].config.data_path)}
