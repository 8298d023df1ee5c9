"""GET /metrics in Prometheus text format and request-latency measurement.

Every API process times its requests and adds them to a latency histogram kept in Redis,
so that all gunicorn processes (and every API replica on the same Redis) report one set
of numbers. Per series, i.e. per (method, route rule, status class), one hash
``http:["GET", "/v1/jobs/<job_id>", "2xx"]`` (keys in service/store/keys.py) holds one counter per bucket
(``le:0.005``: requests that took at most 5 ms and more than the bucket below) and
``sum_us`` (total microseconds); the set ``http:series`` names the hashes. A request
costs one MULTI/EXEC round trip of three commands, after its response is built. A Redis
failure never breaks a request: it is logged, and recording pauses for a few seconds.

/metrics reads the job counts (one pass over the job index, see JobStore.count_by_status),
the Celery queue lengths, the alive workers' liveness info and the histogram hashes, and
writes the text exposition format 0.0.4 itself (no client library needed).
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time

import redis
from flask import Blueprint, Flask, Response, current_app, g, request

from service.celery_app import QUEUES
from service.lifecycle import STATUSES
from service.store import keys

bp = Blueprint("observability", __name__)
log = logging.getLogger("convtrain.api.metrics")

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# Upper bounds in seconds: 1 ms .. 2.5 s, then +Inf.
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
SERIES = keys.HTTP_SERIES
METHODS = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}
UNMATCHED = "(unmatched)"  # 404s and 405s: no rule, and the raw path would make unbounded series
BACKOFF_SECONDS = 5.0
# Kombu's Redis transport keeps one list per priority step: `cpu`, then `cpu\x06\x163`, ... (kombu.transport.redis).
_KOMBU_SEP = "\x06\x16"
_KOMBU_PRIORITY_STEPS = (0, 3, 6, 9)
_SKIPPED_ENDPOINTS = {"observability.metrics"}


def _fmt(value: float) -> str:
    """A number as Prometheus writes it (Go's float formatting for the usual cases)."""
    if isinstance(value, bool):
        value = int(value)
    if isinstance(value, int):
        return str(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value == int(value) and abs(value) < 1e15:
        return f"{value:.1f}"
    return repr(value)


def _bucket_field(le: float) -> str:
    return f"le:{_fmt(le)}"


# --- recording --------------------------------------------------------------------------------


class _Recorder:
    """Adds request durations to the Redis histogram; pauses after a failure instead of slowing every request."""

    def __init__(self):
        self._paused_until = 0.0
        self._lock = threading.Lock()

    def record(self, client: redis.Redis, method: str, route: str, status_class: str, seconds: float) -> None:
        if time.monotonic() < self._paused_until:
            return
        le = next((b for b in BUCKETS if seconds <= b), math.inf)
        member = json.dumps([method, route, status_class])
        key = keys.http(member)
        try:
            pipe = client.pipeline(transaction=True)
            pipe.hincrby(key, _bucket_field(le), 1)
            pipe.hincrby(key, "sum_us", max(0, round(seconds * 1e6)))
            pipe.sadd(SERIES, member)
            pipe.execute()
        except Exception as exc:  # noqa: BLE001 -- Redis down or anything else: the request must not suffer
            with self._lock:
                first = time.monotonic() >= self._paused_until
                self._paused_until = time.monotonic() + BACKOFF_SECONDS
            if first:
                log.warning("request latency not recorded (paused %.0f s): %s: %s",
                            BACKOFF_SECONDS, type(exc).__name__, exc)


def init_app(app: Flask) -> None:
    """Install request timing on `app`: first of the before hooks, last of the after hooks."""
    recorder = _Recorder()
    app.extensions["convtrain.metrics"] = recorder

    def _start():
        g.convtrain_started = time.perf_counter()

    def _finish(response):
        try:
            started = g.pop("convtrain_started", None)
            if started is None or request.endpoint in _SKIPPED_ENDPOINTS:
                return response
            seconds = time.perf_counter() - started
            method = request.method if request.method in METHODS else "OTHER"
            route = request.url_rule.rule if request.url_rule is not None else UNMATCHED
            status_class = f"{response.status_code // 100}xx"
            recorder.record(current_app.extensions["convtrain"].store.r, method, route, status_class, seconds)
        except Exception:  # an exception here would turn the response into a 500
            log.exception("request timing failed")
        return response

    # Flask runs before_request hooks in order and after_request hooks in reverse order of registration:
    # being first in both lists times everything the other hooks do too.
    app.before_request_funcs.setdefault(None, []).insert(0, _start)
    app.after_request_funcs.setdefault(None, []).insert(0, _finish)


# --- exposition -------------------------------------------------------------------------------


def _escape_label(value: str) -> str:
    return str(value).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


class Exposition:
    """Metric families written in the Prometheus text format 0.0.4."""

    def __init__(self):
        self._lines: list[str] = []

    def family(self, name: str, kind: str, help_text: str) -> None:
        self._lines.append(f"# HELP {name} {_escape_help(help_text)}")
        self._lines.append(f"# TYPE {name} {kind}")

    def sample(self, name: str, value: float, labels: dict | None = None) -> None:
        if labels:
            inner = ",".join(f'{k}="{_escape_label(v)}"' for k, v in labels.items())
            self._lines.append(f"{name}{{{inner}}} {_fmt(value)}")
        else:
            self._lines.append(f"{name} {_fmt(value)}")

    def text(self) -> str:
        return "\n".join(self._lines) + "\n"


def queue_depths(client: redis.Redis, queues=QUEUES) -> dict[str, int]:
    """Messages waiting in each Celery queue (all of its priority lists; not the ones a worker has taken)."""
    pipe = client.pipeline(transaction=False)
    for queue in queues:
        for step in _KOMBU_PRIORITY_STEPS:
            pipe.llen(f"{queue}{_KOMBU_SEP}{step}" if step else queue)
    sizes = pipe.execute()
    n = len(_KOMBU_PRIORITY_STEPS)
    return {queue: sum(sizes[i * n:(i + 1) * n]) for i, queue in enumerate(queues)}


def latency_series(client: redis.Redis) -> list[tuple[dict, list[tuple[float, int]], float, int]]:
    """Each recorded series: labels, cumulative (le, count) buckets ending at +Inf, sum in seconds, count."""
    members = sorted(client.smembers(SERIES))
    if not members:
        return []
    pipe = client.pipeline(transaction=False)
    for member in members:
        pipe.hgetall(keys.http(member))
    out = []
    bounds = (*BUCKETS, math.inf)
    for member, fields in zip(members, pipe.execute()):
        try:
            method, route, status = json.loads(member)
        except (ValueError, TypeError):
            continue
        counts = [0] * len(bounds)
        for field, raw in fields.items():
            if not field.startswith("le:"):
                continue
            try:
                le, n = float(field[3:]), int(raw)
            except ValueError:
                continue
            # A bound from another bucket layout lands in the first current bucket above it: still correct.
            counts[next(i for i, b in enumerate(bounds) if le <= b)] += n
        cumulative, total = [], 0
        for bound, n in zip(bounds, counts):
            total += n
            cumulative.append((bound, total))
        if total == 0:
            continue
        seconds = int(fields.get("sum_us") or 0) / 1e6
        out.append(({"method": method, "route": route, "status": status}, cumulative, seconds, total))
    return out


def render(services) -> str:
    """The whole exposition; Redis errors propagate (the app answers 503)."""
    r = services.store.r
    jobs = services.store.count_by_status(STATUSES)
    depths = queue_depths(r)
    workers = services.workers.infos()
    series = latency_series(r)

    out = Exposition()
    out.family("convtrain_jobs", "gauge", "Jobs by status.")
    for status, n in jobs.items():
        out.sample("convtrain_jobs", n, {"status": status})
    out.family("convtrain_queue_depth", "gauge", "Tasks waiting in each Celery queue (not yet taken by a worker).")
    for queue, n in depths.items():
        out.sample("convtrain_queue_depth", n, {"queue": queue})
    out.family("convtrain_workers", "gauge", "Workers whose liveness heartbeat has not expired.")
    out.sample("convtrain_workers", len(workers))
    out.family("convtrain_worker_examples_per_second", "gauge",
               "Training throughput each alive worker last reported (0 when idle or not reported).")
    for name in sorted(workers):
        out.sample("convtrain_worker_examples_per_second", _rate(workers[name]), {"worker": name})
    out.family("convtrain_worker_checkpoint_failures_total", "counter",
               "Checkpoint writes that failed on each alive worker since it started (each is retried at the next).")
    for name in sorted(workers):
        out.sample("convtrain_worker_checkpoint_failures_total", _count(workers[name].get("checkpoint_failures")),
                   {"worker": name})
    out.family("convtrain_http_request_duration_seconds", "histogram",
               "API request latency by method, route and status class, from all API processes.")
    for labels, buckets, seconds, count in series:
        for le, n in buckets:
            out.sample("convtrain_http_request_duration_seconds_bucket", n, {**labels, "le": _fmt(float(le))})
        out.sample("convtrain_http_request_duration_seconds_sum", seconds, labels)
        out.sample("convtrain_http_request_duration_seconds_count", count, labels)
    out.family("convtrain_http_requests_total", "counter", "API requests by method, route and status class.")
    for labels, _, _, count in series:
        out.sample("convtrain_http_requests_total", count, labels)
    return out.text()


def _count(value) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


def _rate(info: dict) -> float:
    try:
        value = float(info.get("examples_per_second") or 0.0)
    except (TypeError, ValueError):
        return 0.0
    return value if math.isfinite(value) and value >= 0 else 0.0


@bp.get("/metrics")
def metrics():
    text = render(current_app.extensions["convtrain"])
    return Response(text, content_type=CONTENT_TYPE, headers={"Cache-Control": "no-store"})
