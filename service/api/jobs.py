"""/v1/jobs: submit, read, list, watch, control and delete training jobs."""

from __future__ import annotations

import functools
import hashlib
import json
import re

from flask import Blueprint, Response, request, url_for

from service.api.body import json_body
from service.api.datasets import uploads_of_caller
from service.api.lookup import services, visible_job
from service.api.params import choice_arg, cursor_arg, int_arg
from service.api.security import principal
from service.celery_app import queue_for
from service.errors import BadRequest, Conflict, NotFound, OverQuota
from service.ids import new_id
from service.lifecycle import STATUSES
from service.spec import initial_weights
from service.spec.schemas import load_job_request, load_trainer_patch
from service.spec.series import downsample
from service.store import quotas
from service.store.jobs import NewJob

bp = Blueprint("jobs", __name__, url_prefix="/v1/jobs")


def store_jobs(jobs: list[NewJob], sizes: list[tuple[dict, int]], context: str = "") -> str:
    """Store queued jobs owned by the caller, within the caller's quotas (429 otherwise), in one step; each
    of `sizes` is a job's request and parameter count. Returns `created`, or `exists` for a retried
    idempotent submit whose job another request has just stored (that request publishes it)."""
    s, who = services(), principal()
    quota = None if who.admin else quotas.limits(s.config, who.quotas)
    try:
        if quota is None:
            return s.store.create_many(jobs, owner=who.name)
        quotas.check_sizes(quota, sizes)
        return s.store.create_many(jobs, owner=who.name, active_limit=quota["active_jobs"],
                                   submits_limit=quota["submits_per_minute"])
    except OverQuota as over:
        raise OverQuota(over.limit, over.message + context, over.retry_after) from None


def _visible_or_none(job_id: str) -> dict | None:
    """The job, or None where it does not exist for this caller (init {"job": ID})."""
    try:
        return visible_job(job_id)
    except NotFound:
        return None


@bp.post("")
def submit():
    s = services()
    body = json_body()
    key = request.headers.get("Idempotency-Key")
    if key is not None and not re.fullmatch(r"[\x21-\x7e]{1,200}", key):
        raise BadRequest("Idempotency-Key must be 1 to 200 visible ASCII characters")
    # init {"job": ID} (service/spec/initial_weights.py): the job must be one this caller can see.
    load = functools.partial(load_job_request, uploads=uploads_of_caller())  # data.dataset may be the caller's
    job_request, network = initial_weights.load_request(body, s.config, _visible_or_none, load)
    job_id, claimed = new_id(), None
    if key:
        # Keys are per principal: another tenant's key neither collides with yours nor reveals its job.
        claimed = f"{principal().name}:{key}"
        digest = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
        existing = s.store.claim_idempotency(claimed, digest, job_id)
        if existing:
            old_id, old_digest = existing
            if old_digest != digest:
                raise Conflict("this Idempotency-Key was used with a different body")
            if s.store.exists(old_id):
                return visible_job(old_id), 200, {"Location": url_for("jobs.read", job_id=old_id)}
            job_id = old_id  # the first submit with this key did not complete: complete it under its id
    try:
        initial_weights.store_snapshot(job_request, s.artifacts, job_id)  # a snapshot in init: kept as an artifact
        new = NewJob(job_id, job_request, network.as_dict(), queue_for(job_request["device"]))
        # After the idempotency check: a replay is not a new submit.
        outcome = store_jobs([new], [(job_request, network.params)])
    except Exception:
        if claimed and not s.store.exists(job_id):
            s.store.release_idempotency(claimed)  # a refused submit does not use up its key
        raise
    location = {"Location": url_for("jobs.read", job_id=job_id)}
    if outcome == "exists":  # a parallel submit with this key stored it first, and publishes it
        return visible_job(job_id), 200, location
    s.control.publish(job_id, new.request["device"])
    return visible_job(job_id), 202, location


@bp.get("")
def listing():
    status = choice_arg("status", STATUSES)
    limit = int_arg("limit", 50, 1, 500)
    who = principal()
    jobs, next_cursor = services().store.list(status=status, owner=None if who.admin else who.name,
                                              cursor=cursor_arg(), limit=limit)
    for job in jobs:
        job.pop("request", None)
        job.pop("network", None)
    return {"jobs": jobs, "next": next_cursor}


@bp.get("/<job_id>")
def read(job_id: str):
    return visible_job(job_id)


@bp.get("/<job_id>/metrics")
def metrics(job_id: str):
    visible_job(job_id)
    store = services().store
    if "points" in request.args:
        buckets = int_arg("points", 100, 1, 10_000)
        history = store.points(job_id, 0, None)
        return {"buckets": downsample(history, buckets), "next": history[-1]["seq"] if history else 0}
    after = int_arg("after", 0, 0, 2**53)
    limit = int_arg("limit", 1000, 1, 10_000)
    points = store.points(job_id, after, limit)
    return {"points": points, "next": points[-1]["seq"] if points else after}


@bp.post("/<job_id>/cancel")
def cancel(job_id: str):
    visible_job(job_id)
    services().control.cancel(job_id)
    return visible_job(job_id), 202


@bp.post("/<job_id>/pause")
def pause(job_id: str):
    visible_job(job_id)
    services().control.pause(job_id)
    return visible_job(job_id), 202


@bp.post("/<job_id>/resume")
def resume(job_id: str):
    visible_job(job_id)
    services().control.resume(job_id)
    return visible_job(job_id), 202


@bp.patch("/<job_id>/trainer")
def change_trainer(job_id: str):
    visible_job(job_id)
    s = services()
    s.control.change_trainer(job_id, load_trainer_patch(json_body(), s.config))
    return visible_job(job_id)


@bp.delete("/<job_id>")
def delete(job_id: str):
    visible_job(job_id)
    s = services()
    s.control.delete(job_id, s.artifacts)
    return Response(status=204)
