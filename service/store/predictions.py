"""The `predict` queue: the API asks, a worker answers, through two Redis lists.

A training worker's Celery slot is busy for minutes at a time, so predictions do
not go through Celery: every worker process runs a small thread that pops
requests from one shared list and pushes each answer to the list its asker
waits on. Requests carry a deadline; a late one is dropped, not answered.
"""

from __future__ import annotations

import json
import secrets
import time

from service.errors import Unavailable
from service.store import keys

QUEUE = keys.PREDICT
MAX_WAITING = 1000


class NoPredictor(Unavailable):
    """No worker answered in time (503: try again when a worker is up)."""

    def __init__(self, timeout: float):
        super().__init__(f"no worker answered within {timeout:g} s; is a worker running?")


def ask(r, job_id: str, kind: str, payload, timeout: float) -> dict:
    """Queue one prediction and wait for its answer: {"probabilities", "top"} or {"error": {...}}."""
    reply = keys.predict_reply(secrets.token_hex(8))
    request = {"job": job_id, "kind": kind, "payload": payload, "reply": reply, "deadline": time.time() + timeout}
    pipe = r.pipeline()
    pipe.lpush(QUEUE, json.dumps(request))
    pipe.ltrim(QUEUE, 0, MAX_WAITING - 1)  # with no worker up, old requests go rather than pile up
    pipe.execute()
    # The store's socket timeout (30 s) must exceed this wait.
    answer = r.brpop([reply], timeout=max(1, min(int(timeout), 25)))
    if answer is None:
        raise NoPredictor(timeout)
    return json.loads(answer[1])


def take(r, timeout: float) -> dict | None:
    """The worker's side: the oldest waiting request that the asker still waits for, or None after `timeout`."""
    item = r.brpop([QUEUE], timeout=timeout)
    if item is None:
        return None
    request = json.loads(item[1])
    return request if request["deadline"] >= time.time() else None  # past it, the asker has given up


def answer(r, request: dict, result: dict, ttl: int = 30) -> None:
    pipe = r.pipeline()
    pipe.lpush(request["reply"], json.dumps(result))
    pipe.expire(request["reply"], ttl)
    pipe.execute()
