"""Look inside a job: layer statistics and pictures from the worker's snapshots, and test predictions."""

from __future__ import annotations

import json

from flask import Blueprint, Response, request, url_for

from service.api.lookup import services, visible_job
from service.api.params import int_arg
from service.errors import Conflict, NotFound
from service.lifecycle import WITH_MODEL

bp = Blueprint("layers", __name__, url_prefix="/v1/jobs")
PICTURES = ("activations", "gradients", "filters")


def _snapshot(job_id: str) -> tuple[int, dict]:
    """The snapshot asked for with ?snapshot=K, or the latest; 404 when there is none (yet)."""
    store = services().store
    count = store.snapshot_count(job_id)
    if count == 0:
        raise NotFound("the job has no layer snapshot yet; the first comes with its first batch")
    number = int_arg("snapshot", count, 1, count)
    return number, store.snapshot(job_id, number)


@bp.get("/<job_id>/layers")
def layers(job_id: str):
    visible_job(job_id)
    number, snapshot = _snapshot(job_id)
    count = services().store.snapshot_count(job_id)
    out = []
    for layer in snapshot["layers"]:
        kinds = PICTURES if layer["type"] == "conv" else PICTURES[:2]
        images = {kind: url_for("layers.picture", job_id=job_id, index=layer["index"], kind=kind, snapshot=number)
                  for kind in kinds}
        out.append({**layer, "images": images})
    return {"snapshot": number, "snapshots": count, "examples": snapshot["examples"], "layers": out}


@bp.get("/<job_id>/layers/<int:index>/<kind>.png")
def picture(job_id: str, index: int, kind: str):
    visible_job(job_id)
    if kind not in PICTURES:
        raise NotFound(f"no {kind!r} picture; there are {', '.join(PICTURES)}")
    number, snapshot = _snapshot(job_id)
    if index >= len(snapshot["layers"]) or (kind == "filters" and snapshot["layers"][index]["type"] != "conv"):
        raise NotFound(f"layer {index} has no {kind} picture")
    try:
        data = services().artifacts.get(job_id, f"snapshots/{number}/layer-{index}-{kind}.png")
    except FileNotFoundError:
        raise NotFound("the picture is missing from the artifact store") from None
    # A numbered snapshot never changes; "the latest" does. Private: the picture belongs to one tenant.
    cache = "private, max-age=86400, immutable" if "snapshot" in request.args else "private, no-cache"
    return Response(data, mimetype="image/png", headers={"Cache-Control": cache})


@bp.get("/<job_id>/predictions")
def predictions(job_id: str):
    job = visible_job(job_id)
    limit = int_arg("limit", 20, 1, 100)
    if job["status"] not in WITH_MODEL:
        raise Conflict(f"the job is {job['status']}; test predictions come when it has succeeded")
    try:
        saved = json.loads(services().artifacts.get(job_id, services().store.predictions_file(job_id)))
    except FileNotFoundError:
        raise NotFound("the predictions are missing from the artifact store") from None
    return {"test_acc": saved["test_acc"], "predictions": saved["predictions"][:limit]}
