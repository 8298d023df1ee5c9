"""Liveness and readiness for orchestrators and the test harness."""

from __future__ import annotations

import redis
from flask import Blueprint, current_app

from service.api.lookup import services
from service.errors import Unavailable

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz():
    return {"status": "ok"}


@bp.get("/readyz")
def readyz():
    s = services()
    try:
        s.store.r.ping()
        workers = s.workers.names()
    except redis.exceptions.RedisError as exc:
        current_app.logger.warning("readyz: redis unreachable: %s", exc)
        raise Unavailable("Redis is unreachable", checks={"redis": False, "workers": 0}) from None
    if not workers:
        raise Unavailable("no worker is alive to train jobs", checks={"redis": True, "workers": 0})
    return {"status": "ready", "checks": {"redis": True, "workers": len(workers)}, "workers": workers}
