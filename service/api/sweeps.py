"""/v1/sweeps: many jobs from one base request, compared in one table and one figure."""

from __future__ import annotations

import re

from flask import Blueprint, Response, current_app, request, url_for

from service import report
from service.api import sweep_views
from service.spec import sweep as sweep_spec
from service.store.sweeps import SweepNotFound, SweepRecord, SweepStore
from service.api.body import json_body
from service.api.errors import Problem
from service.api.jobs import _cursor_arg, _int_arg, check_quota, create, publish
from service.api.security import owns, principal
from service.store.jobs import ID, TERMINAL, new_id, now
from service.spec.netspec import InvalidSpec

bp = Blueprint("sweeps", __name__, url_prefix="/v1/sweeps")
FORMATS = {"md": "text/markdown", "csv": "text/csv", "png": "image/png"}


def _services():
    return current_app.extensions["convtrain"]


def _store() -> SweepStore:
    return SweepStore(_services().store.r)


def _record(sweep_id: str) -> SweepRecord:
    if not ID.fullmatch(sweep_id):
        raise Problem(404, "Not Found", f"no sweep {sweep_id!r}")
    try:
        record = _store().get(sweep_id)
    except SweepNotFound:
        record = None
    if record is None or not owns(record.owner):  # someone else's sweep does not exist, for you
        raise Problem(404, "Not Found", f"no sweep {sweep_id!r}")
    return record


def _view(record: SweepRecord) -> dict:
    return sweep_views.view(record, _store().jobs(record))


@bp.post("")
def submit():
    s = _services()
    body = json_body()
    try:
        spec = sweep_spec.parse(body)
    except InvalidSpec as exc:
        raise Problem(422, "Invalid sweep", f"{len(exc.errors)} problem(s) found; nothing was queued",
                      errors=[e.as_dict() for e in exc.errors]) from None
    try:
        planned = sweep_spec.plan(spec, s.config)
    except sweep_spec.InvalidSweep as exc:
        names = ", ".join(repr(name) for name in exc.names)
        which = f"variant {names} is" if len(exc.names) == 1 else f"variants {names} are"
        raise Problem(422, "Invalid sweep", f"{which} not a valid job request; nothing was queued",
                      errors=exc.errors, variants=exc.names) from None

    # Repeat-major order: the first repeat of every variant trains first, so a partial sweep compares them all.
    order = [(i, repeat) for repeat in range(spec.repeats) for i in range(len(planned))]
    requests = {(i, r): planned[i].job_request(r, spec.name, spec.repeats) for i, r in order}
    ids = {key: new_id() for key in order}
    check_quota([(requests[i, r], planned[i].params) for i, r in order], f" (this sweep is {len(order)} jobs)")
    who = principal()
    record = SweepRecord(
        id=new_id(), name=spec.name, owner=who.name, created_at=now(), repeats=spec.repeats, seed=spec.seed,
        variants=[{"name": p.variant.name, "patch": p.variant.patch, "grid": p.variant.grid,
                   "jobs": [ids[i, r] for r in range(spec.repeats)]} for i, p in enumerate(planned)],
        body=body)
    store = _store()
    store.create(record)
    created = []
    for i, r in order:
        created.append(create(requests[i, r], planned[i].summary, ids[i, r]))
    # Published only once every record exists: a failed publish is retried by the reaper like any other.
    for job in created:
        publish(job)
    return _view(record), 202, {"Location": url_for("sweeps.read", sweep_id=record.id)}


@bp.get("")
def listing():
    limit = _int_arg("limit", 50, 1, 500)
    who = principal()
    store = _store()
    records, next_cursor = store.list(owner=None if who.admin else who.name, cursor=_cursor_arg(), limit=limit)
    return {"sweeps": [sweep_views.summary(r, store.statuses(r)) for r in records], "next": next_cursor}


@bp.get("/<sweep_id>")
def read(sweep_id: str):
    return _view(_record(sweep_id))


@bp.get("/<sweep_id>/report")
def report_file(sweep_id: str):
    fmt = request.args.get("format", "md")
    if fmt not in FORMATS:
        raise Problem(400, "Bad Request", f"format must be one of {', '.join(FORMATS)}, got {fmt!r}",
                      errors=[{"path": "query.format", "message": f"unknown format {fmt!r}"}])
    sweep = _view(_record(sweep_id))
    if fmt == "md":
        body: bytes | str = report.markdown(sweep)
    elif fmt == "csv":
        body = report.csv_text(sweep["table"])
    else:
        store = _services().store
        points = {job["id"]: store.points(job["id"], 0, None)
                  for variant in sweep["variants"] for job in variant["jobs"] if job["status"] != "deleted"}
        body = report.figure_for(sweep, points)
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", sweep["name"] or "sweep").strip("-") or "sweep"
    response = Response(body, mimetype=FORMATS[fmt])
    response.headers["Content-Disposition"] = f'inline; filename="{name}-{sweep_id}.{fmt}"'
    return response


@bp.post("/<sweep_id>/cancel")
def cancel(sweep_id: str):
    record = _record(sweep_id)
    s, store = _services(), _store()
    statuses = store.statuses(record)
    if all(status is None or status in TERMINAL for status in statuses):
        raise Problem(409, "Conflict", f"the sweep has {sweep_views.status_of(statuses, record.cancel_requested)} "
                                       "already; every job has ended")
    store.mark_cancelled(record.id)
    # The last jobs first: they are the queued ones, so no worker starts one while the running ones are stopped.
    for job_id, status in reversed(list(zip(record.job_ids, statuses))):
        if status is None or status in TERMINAL:
            continue
        if s.store.cancel(job_id) == "cancelled":  # not running: no worker will write the event
            job = s.store.get(job_id)
            s.store.add_event(job_id, "cancelled", examples=job["progress"]["examples_seen"])
    return _view(store.get(record.id)), 202


@bp.delete("/<sweep_id>")
def delete(sweep_id: str):
    record = _record(sweep_id)
    s, store = _services(), _store()
    statuses = store.statuses(record)
    running = sum(1 for status in statuses if status is not None and status not in TERMINAL)
    if running:
        raise Problem(409, "Conflict", f"{running} of the sweep's jobs have not ended; cancel the sweep before "
                                       "deleting it")
    for job_id, status in zip(record.job_ids, statuses):
        if status is not None:
            s.artifacts.delete_job(job_id)
            s.store.delete(job_id)
    store.delete(record.id)
    return Response(status=204)
