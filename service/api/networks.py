"""/v1/networks/validate and /v1/datasets: what can be trained, before anything is queued."""

from __future__ import annotations

from flask import Blueprint

from service.api.body import json_body
from service.api.lookup import services
from service.spec import datasets
from service.spec.netspec import InvalidSpec
from service.spec.request_body import check

bp = Blueprint("networks", __name__, url_prefix="/v1")


@bp.post("/networks/validate")
def validate():
    try:
        return check(json_body(), services().config).as_dict()
    except InvalidSpec as exc:
        raise InvalidSpec(exc.errors, title="Invalid network") from None


@bp.get("/datasets")
def listing():
    return {"datasets": datasets.describe(services().config.data_path)}
