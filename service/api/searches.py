"""/v1/searches: an architecture search; Optuna samples and prunes in the workers, each trial is a job."""

from __future__ import annotations

from flask import Blueprint, Response, url_for

from service import search_report
from service.api import search_views
from service.api.body import json_body
from service.api.datasets import uploads_of_caller
from service.api.lookup import services
from service.api.params import choice_arg, cursor_arg, int_arg
from service.api.report_files import FORMATS, report_response
from service.api.security import owns, principal
from service.errors import Conflict, OverQuota
from service.ids import ID, new_id
from service.lifecycle import TERMINAL, advance_search
from service.spec import search as search_spec
from service.spec.netspec import InvalidSpec
from service.store import quotas
from service.store.record import now
from service.store.searches import RUNNING, SearchNotFound, SearchRecord, SearchStore

bp = Blueprint("searches", __name__, url_prefix="/v1/searches")


def _searches() -> SearchStore:
    return services().searches


def visible_search(search_id: str) -> SearchRecord:
    """The search's record; SearchNotFound (404) where it does not exist for this caller."""
    if not ID.fullmatch(search_id):
        raise SearchNotFound(search_id)
    record = _searches().get(search_id)
    if not owns(record.owner):
        raise SearchNotFound(search_id)
    return record


def _view(record: SearchRecord) -> dict:
    store = services().store
    ids = record.job_ids
    return search_views.view(record, store.many(ids), dict(zip(ids, store.field_of(ids, "rungs"))))


@bp.post("")
def submit():
    s = services()
    body = json_body()
    pinned: dict = {}  # the caller's uploads that the architectures name, kept with the search for its trials
    caller = uploads_of_caller()

    def find(name: str) -> dict | None:
        record = caller(name)
        if record is not None:
            pinned[name] = record
        return record

    try:
        spec = search_spec.parse(body, s.config, find)  # InvalidSearch names every architecture that is not valid
    except InvalidSpec as exc:
        raise InvalidSpec(exc.errors, title="Invalid search",
                          detail=f"{len(exc.errors)} problem(s) found; nothing was queued") from None
    who = principal()
    # The owner's quotas now, for the trials' jobs that the workers create later.
    quota = None if who.admin else quotas.limits(s.config, who.quotas)
    if quota is not None and (running := s.searches.running(who.name)) >= quota["searches"]:
        # Not atomic with the create below: submits at the same instant may pass it together, a few at most.
        raise OverQuota("searches", f"you have {running} searches running; your quota is {quota['searches']}: "
                                    "cancel one or wait for one to end", 60)
    # The seed drawn for a body without one is kept, so that every step samples from the same sequence.
    record = SearchRecord(id=new_id(), name=spec.name, owner=who.name, created_at=now(),
                          body={**body, "seed": spec.seed, "trials": spec.trials, "parallel": spec.parallel},
                          quota=quota, uploads=pinned)
    s.searches.create(record)
    advance_search(s.celery, record.id)  # lost: the reaper sends it again (service/store/reaper.py)
    return _view(s.searches.get(record.id)), 202, {"Location": url_for("searches.read", search_id=record.id)}


@bp.get("")
def listing():
    limit = int_arg("limit", 50, 1, 500)
    who = principal()
    records, next_cursor = _searches().list(owner=None if who.admin else who.name, cursor=cursor_arg(), limit=limit)
    return {"searches": [search_views.summary(r) for r in records], "next": next_cursor}


@bp.get("/<search_id>")
def read(search_id: str):
    return _view(visible_search(search_id))


@bp.get("/<search_id>/report")
def report_file(search_id: str):
    fmt = choice_arg("format", FORMATS, "md")
    search = _view(visible_search(search_id))
    if fmt == "md":
        body: bytes | str = search_report.markdown(search)
    elif fmt == "csv":
        body = search_report.csv_text(search)
    else:
        best = search["best"]
        points = services().store.points(best["job"], 0, None) if best else []
        body = search_report.figure(search, points)
    return report_response(body, fmt, search["name"], "search", search_id)


@bp.post("/<search_id>/cancel")
def cancel(search_id: str):
    record = visible_search(search_id)
    s = services()
    if record.status != RUNNING:
        raise Conflict(f"the search has {record.status} already")
    s.searches.mark_cancelled(record.id)
    # The newest trials first: they are the queued ones, so no worker starts one while the others stop.
    ids = record.job_ids
    for job_id, status in reversed(list(zip(ids, s.store.statuses(ids)))):
        if status is not None and status not in TERMINAL:
            s.control.cancel_quietly(job_id)
    advance_search(s.celery, record.id)  # tells Optuna and ends the search once every trial has stopped
    return _view(s.searches.get(record.id)), 202


@bp.delete("/<search_id>")
def delete(search_id: str):
    record = visible_search(search_id)
    s = services()
    if record.status == RUNNING:
        raise Conflict("the search is running; cancel it before deleting it")
    ids = record.job_ids
    for job_id, status in zip(ids, s.store.statuses(ids)):
        if status is not None:
            s.control.delete(job_id, s.artifacts)
    s.searches.delete(record.id)
    return Response(status=204)
