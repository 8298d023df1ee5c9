"""/v1/jobs: submit, read, list, watch, control and download training jobs."""

from __future__ import annotations

import hashlib
import json
import math
import re

from flask import Blueprint, Response, current_app, request, url_for

from service.spec import initial_weights
from service.store import quotas
from service.api.body import json_body
from service.api.errors import Problem
from service.api.security import owns, principal
from service.celery_app import TRAIN_TASK, queue_for
from service.store.jobs import ID, STATUSES, TERMINAL, JobNotFound, new_id
from service.spec.schemas import load_job_request, load_trainer_patch
from service.spec.series import downsample

bp = Blueprint("jobs", __name__, url_prefix="/v1/jobs")


def _services():
    return current_app.extensions["convtrain"]


def _job(job_id: str) -> dict:
    if not ID.fullmatch(job_id):
        raise Problem(404, "Not Found", f"no job {job_id!r}")
    try:
        job = _services().store.get(job_id)
    except JobNotFound:
        job = None
    if job is None or not owns(job["owner"]):  # someone else's job does not exist, for you
        raise Problem(404, "Not Found", f"no job {job_id!r}")
    return job


def _int_arg(name: str, default: int, lo: int, hi: int) -> int:
    raw = request.args.get(name)
    if raw is None:
        return default
    try:
        if not raw.isascii() or not raw.isdigit():
            raise ValueError(raw)
        value = int(raw)
    except ValueError:
        raise Problem(400, "Bad Request", f"{name} must be a whole number, got {raw!r}",
                      errors=[{"path": f"query.{name}", "message": f"{name} must be a whole number"}]) from None
    if not lo <= value <= hi:
        raise Problem(400, "Bad Request", f"{name} must be in [{lo}, {hi}], got {value}",
                      errors=[{"path": f"query.{name}", "message": f"{name} must be in [{lo}, {hi}]"}])
    return value


def check_quota(jobs: list[tuple[dict, int]], context: str = "") -> None:
    """429 if the caller's quotas do not allow these jobs (each a request and its parameter count)."""
    s, who = _services(), principal()
    if who.admin:
        return
    try:
        quotas.check(s.store.r, who.name, quotas.limits(s.config, who.quotas), jobs)
    except quotas.OverQuota as over:
        raise Problem(429, "Too Many Requests", over.message + context, headers={"Retry-After": str(over.retry_after)},
                      limit=over.limit) from None


def create(job_request: dict, summary: dict, job_id: str) -> dict:
    """Store a queued job owned by the caller (its task is published separately)."""
    s, who = _services(), principal()
    job = s.store.create(job_request, summary, queue=queue_for(job_request["device"]), job_id=job_id, owner=who.name)
    quotas.track(s.store.r, who.name, job_id)
    return job


def _cursor_arg() -> float | None:
    """The ?cursor= of a listing: a score this API returned in `next`."""
    cursor = request.args.get("cursor")
    try:
        value = float(cursor) if cursor else None
        if value is not None and not math.isfinite(value):
            raise ValueError(cursor)
    except ValueError:
        raise Problem(400, "Bad Request", "cursor is not one that this API returned",
                      errors=[{"path": "query.cursor", "message": "invalid cursor"}]) from None
    return value


def publish(job: dict) -> None:
    """Queue the job's task; the job record already says queued, so a failed publish is retried by the reaper."""
    s = _services()
    s.celery.send_task(TRAIN_TASK, args=[job["id"]], queue=queue_for(job["device"]))


def _visible_job(job_id: str) -> dict | None:
    """The job, or None where it does not exist for this caller (init {"job": ID})."""
    try:
        return _job(job_id)
    except Problem:
        return None


@bp.post("")
def submit():
    s = _services()
    body = json_body()
    key = request.headers.get("Idempotency-Key")
    if key is not None and not re.fullmatch(r"[\x21-\x7e]{1,200}", key):
        raise Problem(400, "Bad Request", "Idempotency-Key must be 1 to 200 visible ASCII characters")
    # init {"job": ID} (service/initial_weights.py): the job must be one this caller can see.
    job_request, network = initial_weights.load_request(body, s.config, _visible_job, load_job_request)
    job_id, claimed = new_id(), None
    if key:
        # Keys are per principal: another tenant's key neither collides with yours nor reveals its job.
        claimed = f"{principal().name}:{key}"
        digest = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
        existing = s.store.claim_idempotency(claimed, digest, job_id)
        if existing:
            old_id, old_digest = existing
            if old_digest != digest:
                raise Problem(409, "Conflict", "this Idempotency-Key was used with a different body")
            if s.store.exists(old_id):
                return _job(old_id), 200, {"Location": url_for("jobs.read", job_id=old_id)}
            job_id = old_id  # the first submit with this key did not complete: complete it under its id
    try:
        check_quota([(job_request, network.params)])  # after the idempotency check: a replay is not a new submit
        initial_weights.store_snapshot(job_request, s.artifacts, job_id)  # a snapshot in init: kept as an artifact
        job = create(job_request, network.as_dict(), job_id)
    except Exception:
        if claimed and not s.store.exists(job_id):
            s.store.release_idempotency(claimed)  # a refused submit does not use up its key
        raise
    publish(job)
    return job, 202, {"Location": url_for("jobs.read", job_id=job["id"])}


@bp.get("")
def listing():
    s = _services()
    status = request.args.get("status")
    if status is not None and status not in STATUSES:
        raise Problem(400, "Bad Request", f"status must be one of {', '.join(STATUSES)}",
                      errors=[{"path": "query.status", "message": f"unknown status {status!r}"}])
    limit = _int_arg("limit", 50, 1, 500)
    who = principal()
    jobs, next_cursor = s.store.list(status=status, owner=None if who.admin else who.name, cursor=_cursor_arg(),
                                     limit=limit)
    for job in jobs:
        job.pop("request", None)
        job.pop("network", None)
    return {"jobs": jobs, "next": next_cursor}


@bp.get("/<job_id>")
def read(job_id: str):
    return _job(job_id)


@bp.get("/<job_id>/metrics")
def metrics(job_id: str):
    _job(job_id)
    store = _services().store
    if "points" in request.args:
        buckets = _int_arg("points", 100, 1, 10_000)
        history = store.points(job_id, 0, None)
        return {"buckets": downsample(history, buckets), "next": history[-1]["seq"] if history else 0}
    after = _int_arg("after", 0, 0, 2**53)
    limit = _int_arg("limit", 1000, 1, 10_000)
    points = store.points(job_id, after, limit)
    return {"points": points, "next": points[-1]["seq"] if points else after}


@bp.post("/<job_id>/cancel")
def cancel(job_id: str):
    _job(job_id)
    outcome = _services().store.cancel(job_id)
    if outcome.startswith("already "):
        raise Problem(409, "Conflict", f"the job has {outcome.split()[1]} already and cannot be cancelled")
    if outcome == "cancelled":  # not running: no worker will write the event
        _services().store.add_event(job_id, "cancelled", examples=_job(job_id)["progress"]["examples_seen"])
    return _job(job_id), 202


@bp.post("/<job_id>/pause")
def pause(job_id: str):
    _job(job_id)
    outcome = _services().store.pause(job_id)
    if outcome not in ("paused", "pausing"):
        raise Problem(409, "Conflict", f"a {outcome} job cannot be paused")
    if outcome == "paused":
        _services().store.add_event(job_id, "paused", examples=_job(job_id)["progress"]["examples_seen"])
    return _job(job_id), 202


@bp.post("/<job_id>/resume")
def resume(job_id: str):
    job = _job(job_id)
    outcome = _services().store.resume(job_id)
    if outcome == "resumed":
        _services().store.add_event(job_id, "queued", examples=job["progress"]["examples_seen"], reason="resume requested")
        publish(job)
    elif outcome != "running":  # resuming a running job cancels a pause that has not happened yet
        raise Problem(409, "Conflict", f"a {outcome} job cannot be resumed; only a paused one can")
    return _job(job_id), 202


@bp.patch("/<job_id>/trainer")
def change_trainer(job_id: str):
    _job(job_id)
    changes = load_trainer_patch(json_body(), _services().config)
    outcome = _services().store.patch_trainer(job_id, changes)
    if outcome in TERMINAL:
        raise Problem(409, "Conflict", f"the job has {outcome} already; its trainer can no longer change")
    return _job(job_id)


@bp.delete("/<job_id>")
def delete(job_id: str):
    job = _job(job_id)
    if job["status"] not in TERMINAL:
        raise Problem(409, "Conflict", f"the job is {job['status']}; cancel it before deleting it")
    s = _services()
    s.artifacts.delete_job(job_id)
    s.store.delete(job_id)
    return Response(status=204)
