"""Liveness and readiness for orchestrators and the test harness."""

from __future__ import annotations

import redis
from flask import Blueprint, current_app

from service.api.errors import problem_response

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz():
    return {"status": "ok"}


@bp.get("/readyz")
def readyz():
    store = current_app.extensions["convtrain"].store
    try:
        store.r.ping()
        workers = store.workers()
    except redis.exceptions.RedisError as exc:
        current_app.logger.warning("readyz: redis unreachable: %s", exc)
        return problem_response(503, "Service Unavailable", "Redis is unreachable",
                                headers={"Retry-After": "5"}, checks={"redis": False, "workers": 0})
    if not workers:
        return problem_response(503, "Service Unavailable", "no worker is alive to train jobs",
                                headers={"Retry-After": "5"}, checks={"redis": True, "workers": 0})
    return {"status": "ready", "checks": {"redis": True, "workers": len(workers)}, "workers": workers}
