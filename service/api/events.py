"""GET /v1/jobs/{id}/events: the job's timeline as Server-Sent Events, resumable with Last-Event-ID."""

from __future__ import annotations

import json

from flask import Blueprint, Response, current_app, request, stream_with_context

from service.api.errors import Problem
from service.api.jobs import _job
from service.store.jobs import TERMINAL

bp = Blueprint("events", __name__, url_prefix="/v1/jobs")
BLOCK_MS = 5000  # how long one read waits for news; also the keep-alive period
# Timeline events that change a job's status travel as `status` events.
STATUS_EVENTS = ("started", "resumed", "paused", "queued", "requeued", "cancelled", "failed", "finished")


def sse(kind: str, data: dict, seq: int | None = None) -> str:
    head = f"id: {seq}\n" if seq is not None else ""
    return f"{head}event: {kind}\ndata: {json.dumps(data)}\n\n"


def kind_of(point: dict) -> str:
    event = point.get("event")
    if event is None:
        return "metrics"
    return "status" if event in STATUS_EVENTS else event


def _cursor() -> int:
    """Where to start: the Last-Event-ID header, else ?after=, else the beginning; both are checked."""
    given = {"header.Last-Event-ID": request.headers.get("Last-Event-ID"), "query.after": request.args.get("after")}
    for path, raw in given.items():
        if raw is not None and (not raw.isascii() or not raw.isdigit() or len(raw) > 15):
            raise Problem(400, "Bad Request", "Last-Event-ID and after must be sequence numbers this stream sent",
                          errors=[{"path": path, "message": "not a sequence number"}])
    return int(given["header.Last-Event-ID"] or given["query.after"] or 0)


@bp.get("/<job_id>/events")
def events(job_id: str):
    _job(job_id)
    cursor = _cursor()
    store = current_app.extensions["convtrain"].store
    key = store.key(job_id, "metrics")

    def stream():
        nonlocal cursor
        yield "retry: 1000\n\n"
        while True:
            # The status is read before the stream, so an end seen here follows every entry written before it.
            status = store.r.hget(store.key(job_id), "status")
            if status is None:
                return
            entries = store.r.xread({key: f"{cursor}-0"}, count=500, block=None if status in TERMINAL else BLOCK_MS)
            for _, items in entries or []:
                for entry_id, fields in items:
                    seq = int(entry_id.split("-")[0])
                    point = {"seq": seq, **json.loads(fields["data"])}
                    status_now = {"status": _status_after(point)} if kind_of(point) == "status" else {}
                    yield sse(kind_of(point), {**point, **status_now}, seq)
                    cursor = seq
            if status in TERMINAL and not entries:
                yield sse("end", store.get(job_id))
                return
            if not entries:
                yield ": keep-alive\n\n"

    return Response(stream_with_context(stream()), mimetype="text/event-stream",
                    headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


def _status_after(point: dict) -> str:
    return {"started": "running", "resumed": "running", "paused": "paused", "queued": "queued",
            "requeued": "queued", "cancelled": "cancelled", "failed": "failed",
            "finished": "succeeded"}[point["event"]]
