"""/v1/networks/validate: what can be trained, before anything is queued (datasets: service/api/datasets.py)."""

from __future__ import annotations

from flask import Blueprint

from service.api.body import json_body
from service.api.datasets import uploads_of_caller
from service.api.lookup import services
from service.spec.netspec import InvalidSpec
from service.spec.request_body import check

bp = Blueprint("networks", __name__, url_prefix="/v1")


@bp.post("/networks/validate")
def validate():
    try:
        return check(json_body(), services().config, uploads_of_caller()).as_dict()
    except InvalidSpec as exc:
        raise InvalidSpec(exc.errors, title="Invalid network") from None
