"""/v1/sweeps: many jobs from one base request, compared in one table and one figure."""

from __future__ import annotations

from flask import Blueprint, Response, url_for

from service import report
from service.api import sweep_views
from service.api.body import json_body
from service.api.datasets import uploads_of_caller
from service.api.jobs import store_jobs
from service.api.lookup import services, visible_sweep
from service.api.params import choice_arg, cursor_arg, int_arg
from service.api.report_files import FORMATS, report_response
from service.api.security import principal
from service.celery_app import queue_for
from service.errors import Conflict
from service.ids import new_id
from service.lifecycle import TERMINAL, sweep_status
from service.spec import sweep as sweep_spec
from service.spec.netspec import InvalidSpec
from service.store.jobs import NewJob
from service.store.record import now
from service.store.sweeps import SweepRecord

bp = Blueprint("sweeps", __name__, url_prefix="/v1/sweeps")


def _view(record: SweepRecord) -> dict:
    return sweep_views.view(record, services().store.many(record.job_ids))


@bp.post("")
def submit():
    s = services()
    body = json_body()
    try:
        spec = sweep_spec.parse(body, s.config)
    except InvalidSpec as exc:
        raise InvalidSpec(exc.errors, title="Invalid sweep",
                          detail=f"{len(exc.errors)} problem(s) found; nothing was queued") from None
    planned = sweep_spec.plan(spec, s.config, uploads_of_caller())  # InvalidSweep names every bad variant

    # Repeat-major order: the first repeat of every variant trains first, so a partial sweep compares them all.
    order = [(i, repeat) for repeat in range(spec.repeats) for i in range(len(planned))]
    requests = {(i, r): planned[i].job_request(r, spec.name, spec.repeats) for i, r in order}
    ids = {key: new_id() for key in order}
    who = principal()
    record = SweepRecord(
        id=new_id(), name=spec.name, owner=who.name, created_at=now(), repeats=spec.repeats, seed=spec.seed,
        variants=[{"name": p.variant.name, "patch": p.variant.patch, "grid": p.variant.grid,
                   "jobs": [ids[i, r] for r in range(spec.repeats)]} for i, p in enumerate(planned)],
        body=body)
    jobs = [NewJob(ids[i, r], requests[i, r], planned[i].summary, queue_for(requests[i, r]["device"])) for i, r in order]
    # Every job in one step, within the quotas; the sweep's record only once its jobs exist.
    store_jobs(jobs, [(requests[i, r], planned[i].params) for i, r in order], f" (this sweep is {len(order)} jobs)")
    s.sweeps.create(record)
    # Published only once every record exists: a failed publish is retried by the reaper like any other.
    for job in jobs:
        s.control.publish(job.id, job.request["device"])
    return _view(record), 202, {"Location": url_for("sweeps.read", sweep_id=record.id)}


@bp.get("")
def listing():
    limit = int_arg("limit", 50, 1, 500)
    who = principal()
    s = services()
    records, next_cursor = s.sweeps.list(owner=None if who.admin else who.name, cursor=cursor_arg(), limit=limit)
    return {"sweeps": [sweep_views.summary(r, s.store.statuses(r.job_ids)) for r in records], "next": next_cursor}


@bp.get("/<sweep_id>")
def read(sweep_id: str):
    return _view(visible_sweep(sweep_id))


@bp.get("/<sweep_id>/report")
def report_file(sweep_id: str):
    fmt = choice_arg("format", FORMATS, "md")
    sweep = _view(visible_sweep(sweep_id))
    if fmt == "md":
        body: bytes | str = report.markdown(sweep)
    elif fmt == "csv":
        body = report.csv_text(sweep["table"])
    else:
        store = services().store
        points = {job["id"]: store.points(job["id"], 0, None)
                  for variant in sweep["variants"] for job in variant["jobs"] if job["status"] != "deleted"}
        body = report.figure_for(sweep, points)
    return report_response(body, fmt, sweep["name"], "sweep", sweep_id)


@bp.post("/<sweep_id>/cancel")
def cancel(sweep_id: str):
    record = visible_sweep(sweep_id)
    s = services()
    statuses = s.store.statuses(record.job_ids)
    if all(status is None or status in TERMINAL for status in statuses):
        raise Conflict(f"the sweep has {sweep_status(statuses, record.cancel_requested)} already; every job has ended")
    s.sweeps.mark_cancelled(record.id)
    # The last jobs first: they are the queued ones, so no worker starts one while the running ones are stopped.
    for job_id, status in reversed(list(zip(record.job_ids, statuses))):
        if status is not None and status not in TERMINAL:
            s.control.cancel_quietly(job_id)
    return _view(s.sweeps.get(record.id)), 202


@bp.delete("/<sweep_id>")
def delete(sweep_id: str):
    record = visible_sweep(sweep_id)
    s = services()
    statuses = s.store.statuses(record.job_ids)
    running = sum(1 for status in statuses if status is not None and status not in TERMINAL)
    if running:
        raise Conflict(f"{running} of the sweep's jobs have not ended; cancel the sweep before deleting it")
    for job_id, status in zip(record.job_ids, statuses):
        if status is not None:
            s.control.delete(job_id, s.artifacts)
    s.sweeps.delete(record.id)
    return Response(status=204)
