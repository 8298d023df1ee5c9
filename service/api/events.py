"""GET /v1/jobs/{id}/events: the job's timeline as Server-Sent Events, resumable with Last-Event-ID."""

from __future__ import annotations

import json

from flask import Blueprint, Response, request, stream_with_context

from service.api.lookup import services, visible_job
from service.errors import BadRequest, FieldError
from service.lifecycle import STATUS_AFTER, TERMINAL

bp = Blueprint("events", __name__, url_prefix="/v1/jobs")
BLOCK_MS = 5000  # how long one read waits for news; also the keep-alive period


def sse(kind: str, data: dict, seq: int | None = None) -> str:
    head = f"id: {seq}\n" if seq is not None else ""
    return f"{head}event: {kind}\ndata: {json.dumps(data)}\n\n"


def kind_of(point: dict) -> str:
    event = point.get("event")
    if event is None:
        return "metrics"
    return "status" if event in STATUS_AFTER else event


def _cursor() -> int:
    """Where to start: the Last-Event-ID header, else ?after=, else the beginning; both are checked."""
    given = {"header.Last-Event-ID": request.headers.get("Last-Event-ID"), "query.after": request.args.get("after")}
    for path, raw in given.items():
        if raw is not None and (not raw.isascii() or not raw.isdigit() or len(raw) > 15):
            raise BadRequest("Last-Event-ID and after must be sequence numbers this stream sent",
                             errors=[FieldError(path, "not a sequence number")])
    return int(given["header.Last-Event-ID"] or given["query.after"] or 0)


@bp.get("/<job_id>/events")
def events(job_id: str):
    visible_job(job_id)
    cursor = _cursor()
    store = services().store

    def stream():
        nonlocal cursor
        yield "retry: 1000\n\n"
        while True:
            # The status is read before the stream, so an end seen here follows every entry written before it.
            status = store.status(job_id)
            if status is None:
                return
            entries = store.follow(job_id, cursor, None if status in TERMINAL else BLOCK_MS)
            for point in entries:
                status_now = {"status": STATUS_AFTER[point["event"]]} if kind_of(point) == "status" else {}
                yield sse(kind_of(point), {**point, **status_now}, point["seq"])
                cursor = point["seq"]
            if status in TERMINAL and not entries:
                yield sse("end", store.get(job_id))
                return
            if not entries:
                yield ": keep-alive\n\n"

    return Response(stream_with_context(stream()), mimetype="text/event-stream",
                    headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
