"""A job's record: the fields of its Redis hash, how values are written into it, and the job the API shows.

Fields: id, name, status, owner, created_at, started_at, finished_at, queue, device, request (JSON, the
accepted request), summary (JSON, the desugared network), examples_seen, examples_total, metrics (JSON,
the last point), result, error and model (JSON: the model's files, which are the succeeding attempt's),
predictions (the test predictions' artifact), starts, preemptions, seq (the last stream entry),
token and worker (the attempt holding the lease), heartbeat_at, requeued_at, checkpoint and
checkpoint_examples, cancel_requested, pause_requested, trainer_patch (JSON, changes not yet applied);
a search's trial also has search (its id), trial (its number) and rungs (JSON: [examples, val_acc] pairs).
"""

from __future__ import annotations

import json
import time

from service.lifecycle import RUNNING, SUCCEEDED


def now() -> float:
    """Seconds since the epoch, to the millisecond: every timestamp in a record."""
    return round(time.time(), 3)


def encode(value) -> str:
    """A value as a hash field holds it: JSON for objects and lists, '' for None."""
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    if value is None:
        return ""
    return str(value)


def _num(value: str | None, kind=float):
    if value is None or value == "":
        return None
    return kind(float(value))


def _json(value: str | None):
    return json.loads(value) if value else None


def present(record: dict) -> dict:
    """A raw Redis hash as the API's job object."""
    status = record.get("status")
    seen = _num(record.get("examples_seen"), int) or 0
    total = _num(record.get("examples_total"), int)
    metrics = _json(record.get("metrics"))
    fraction = 1.0 if status == SUCCEEDED else (min(1.0, seen / total) if total else None)
    rate = (metrics or {}).get("examples_per_second")
    eta = round(max(0, total - seen) / rate, 1) if status == RUNNING and total and rate else None
    job = {
        "id": record["id"],
        "name": record.get("name", ""),
        "status": status,
        "created_at": _num(record.get("created_at")),
        "started_at": _num(record.get("started_at")),
        "finished_at": _num(record.get("finished_at")),
        "progress": {"examples_seen": seen, "examples_total": total, "fraction": fraction, "eta_seconds": eta},
        "metrics": metrics,
        "result": _json(record.get("result")),
        "error": _json(record.get("error")),
        "network": _json(record.get("summary")),
        "request": _json(record.get("request")),
        "device": record.get("device") or "auto",
        "worker": record.get("worker") or None,
        "attempts": _num(record.get("starts"), int) or 0,
        "owner": record.get("owner") or None,
        "model": _json(record.get("model")),
    }
    if status == RUNNING and record.get("cancel_requested") == "1":
        job["status_detail"] = "cancelling"
    elif status == RUNNING and record.get("pause_requested") == "1":
        job["status_detail"] = "pausing"
    return job
