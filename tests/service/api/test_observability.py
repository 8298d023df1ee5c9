"""GET /metrics (Prometheus text format) and JSON-lines logs, on a real redis-server without a worker."""

from __future__ import annotations

import io
import json
import logging
import math
import threading
import warnings

import pytest
from prometheus_client.parser import text_string_to_metric_families

from service import logs
from service.api import create_app, observability
from service.celery_app import TRAIN_TASK
from service.config import Config
from service.lifecycle import STATUSES
from service.store import keys
from service.store.workers import Workers
from tests import openapi_check
from tests.conftest import example

DEAD_REDIS = "redis://127.0.0.1:1/0"  # nothing listens on port 1
BODY = example("net1-default.json")
HIST = "convtrain_http_request_duration_seconds"


def make_app(tmp_path, url):
    app = create_app(Config(home=tmp_path), url)
    app.testing = True
    return app


def scrape(client) -> dict:
    """GET /metrics parsed: {family name: family}."""
    r = client.get("/metrics")
    assert r.status_code == 200, r.get_data(as_text=True)
    assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    text = r.get_data(as_text=True)
    families = {f.name: f for f in text_string_to_metric_families(text)}
    assert all(name.startswith("convtrain_") for name in families)
    return families


def samples(family, name: str | None = None, **labels) -> list:
    return [s for s in family.samples if (name is None or s.name == name)
            and all(s.labels.get(k) == v for k, v in labels.items())]


def value(family, name: str | None = None, **labels) -> float:
    found = samples(family, name, **labels)
    assert len(found) == 1, (name, labels, found)
    return found[0].value


def _request(**changes) -> dict:
    return {"budget": {"examples": 100}, "device": "auto", **changes}


# --- jobs, queues, workers ------------------------------------------------------------------------


def test_empty_store_reports_every_status_as_zero(stored):
    c, _ = stored
    families = scrape(c)
    jobs = families["convtrain_jobs"]
    assert jobs.type == "gauge"
    assert {s.labels["status"]: s.value for s in jobs.samples} == dict.fromkeys(STATUSES, 0)
    assert {s.labels["queue"]: s.value for s in families["convtrain_queue_depth"].samples} == \
        {"cpu": 0, "gpu": 0, "auto": 0}
    assert value(families["convtrain_workers"]) == 0
    assert families["convtrain_worker_examples_per_second"].samples == []


def test_jobs_by_status_match_the_store(stored):
    c, services = stored
    store = services.store
    wanted = {"queued": 3, "running": 2, "paused": 1, "succeeded": 4, "failed": 1, "cancelled": 0, "pruned": 0}
    for status, n in wanted.items():
        for _ in range(n):
            job_id = store.create(_request(), {}, queue="auto")["id"]
            if status != "queued":
                store.r.hset(keys.job(job_id), "status", status)
    posted = [c.post("/v1/jobs", json={**BODY, "name": f"p{i}"}).get_json()["id"] for i in range(2)]
    assert all(posted)
    jobs = scrape(c)["convtrain_jobs"]
    assert {s.labels["status"]: s.value for s in jobs.samples} == {**wanted, "queued": wanted["queued"] + 2}
    assert store.count_by_status(STATUSES, page=2) == store.count_by_status(STATUSES), "paging gives the same counts"
    # A job whose record vanished from under the index is not counted.
    store.r.delete(keys.job(posted[0]))
    assert value(scrape(c)["convtrain_jobs"], status="queued") == wanted["queued"] + 1


def test_queue_depth_counts_waiting_messages(stored):
    c, services = stored
    for i in range(3):  # POST /v1/jobs publishes to the queue of the job's device: auto
        assert c.post("/v1/jobs", json={**BODY, "name": f"q{i}"}).status_code == 202
    services.celery.send_task(TRAIN_TASK, args=["x1"], queue="gpu")
    services.celery.send_task(TRAIN_TASK, args=["x2"], queue="gpu", priority=9)  # kombu's list `gpu\x06\x169`
    services.celery.send_task(TRAIN_TASK, args=["x3"], queue="cpu", priority=3)
    assert services.store.r.llen("gpu") == 1, "the priority-9 message sits in another list"
    depth = scrape(c)["convtrain_queue_depth"]
    assert {s.labels["queue"]: s.value for s in depth.samples} == {"auto": 3, "gpu": 2, "cpu": 1}
    services.store.r.lpop("auto")  # a worker took one
    assert value(scrape(c)["convtrain_queue_depth"], queue="auto") == 2


def test_workers_and_their_throughput(stored):
    c, services = stored
    store = services.store
    Workers(store.r).alive("w-gpu", 30, {"device": "cuda", "examples_per_second": 1234.5})
    Workers(store.r).alive("w-idle", 30, {"device": "cpu"})
    Workers(store.r).alive("w-odd", 30, {"examples_per_second": "fast"})
    Workers(store.r).alive("w-dead", 30, {"examples_per_second": 99})
    store.r.zadd("convtrain:workers", {"w-dead": 1.0})  # its heartbeat expired long ago
    families = scrape(c)
    assert value(families["convtrain_workers"]) == 3
    rates = {s.labels["worker"]: s.value for s in families["convtrain_worker_examples_per_second"].samples}
    assert rates == {"w-gpu": 1234.5, "w-idle": 0, "w-odd": 0}
    assert store.r.zscore("convtrain:workers", "w-dead") is not None, "a scrape changes nothing"


# --- the latency histogram --------------------------------------------------------------------------


def _series(family, **labels) -> dict:
    """One series of the histogram: cumulative buckets by le, sum and count."""
    buckets = {s.labels["le"]: s.value for s in samples(family, f"{HIST}_bucket", **labels)}
    return {"buckets": buckets, "sum": value(family, f"{HIST}_sum", **labels),
            "count": value(family, f"{HIST}_count", **labels)}


def test_request_latency_histogram(stored):
    c, _ = stored
    for _ in range(7):
        assert c.get("/healthz").status_code == 200
    for _ in range(2):
        assert c.get("/v1/jobs/0123abcd").status_code == 404
    assert c.get("/no/such/page").status_code == 404
    assert c.put("/healthz").status_code == 405
    scrape(c)  # /metrics itself is never counted
    families = scrape(c)
    hist = families[HIST]
    assert hist.type == "histogram"

    health = _series(hist, method="GET", route="/healthz", status="2xx")
    assert health["count"] == 7
    les = list(health["buckets"])
    assert les[-1] == "+Inf" and len(les) == len(observability.BUCKETS) + 1
    assert [float(le) for le in les] == sorted(float(le) for le in les)
    counts = list(health["buckets"].values())
    assert counts == sorted(counts), "buckets are cumulative"
    assert counts[-1] == health["count"]
    assert 0 < health["sum"] < 7 * 2.5

    assert _series(hist, method="GET", route="/v1/jobs/<job_id>", status="4xx")["count"] == 2
    unmatched = {(s.labels["method"], s.labels["status"]): s.value
                 for s in samples(hist, f"{HIST}_count", route=observability.UNMATCHED)}
    assert unmatched == {("GET", "4xx"): 1, ("PUT", "4xx"): 1}
    assert not samples(hist, route="/metrics")

    total = families["convtrain_http_requests"]  # the parser names a counter family without _total
    assert total.type == "counter"
    assert value(total, "convtrain_http_requests_total", method="GET", route="/healthz", status="2xx") == 7
    assert sum(s.value for s in total.samples) == 7 + 2 + 1 + 1


def test_histogram_is_shared_by_every_api_process(stored, tmp_path, redis_url):
    c, _ = stored
    other = make_app(tmp_path, redis_url).test_client()  # another gunicorn process, as far as Redis knows
    c.get("/healthz")
    other.get("/healthz")
    other.get("/healthz")
    for client in (c, other):
        assert _series(scrape(client)[HIST], route="/healthz")["count"] == 3


def test_a_slow_request_lands_in_its_bucket(stored):
    c, services = stored
    recorder = services_app_recorder(c)
    recorder.record(services.store.r, "POST", "/v1/jobs", "2xx", 0.3)  # in (0.25, 0.5]
    recorder.record(services.store.r, "POST", "/v1/jobs", "2xx", 60.0)  # beyond every bound: only +Inf
    series = _series(scrape(c)[HIST], method="POST", route="/v1/jobs", status="2xx")
    assert series["buckets"]["0.25"] == 0 and series["buckets"]["0.5"] == 1
    assert series["buckets"]["2.5"] == 1 and series["buckets"]["+Inf"] == 2
    assert math.isclose(series["sum"], 60.3)


def services_app_recorder(client):
    return client.application.extensions["convtrain.metrics"]


# --- Redis down -------------------------------------------------------------------------------------


def test_redis_down_metrics_answers_503_and_requests_still_work(tmp_path, caplog):
    app = make_app(tmp_path, DEAD_REDIS)
    violations = openapi_check.install(app)
    c = app.test_client()
    with caplog.at_level(logging.WARNING, logger="convtrain.api.metrics"):
        assert c.get("/healthz").status_code == 200  # the timing hook failed quietly
        assert c.get("/healthz").status_code == 200  # ...and is paused: no second warning
        r = c.get("/metrics")
    assert r.status_code == 503 and r.mimetype == "application/problem+json"
    assert r.headers["Retry-After"] and r.get_json()["status"] == 503
    assert c.get("/v1/jobs").status_code == 503  # a request that needs Redis: 503, not 500
    warnings_logged = [rec for rec in caplog.records if rec.name == "convtrain.api.metrics"]
    assert len(warnings_logged) == 1 and "not recorded" in warnings_logged[0].getMessage()
    assert not violations, "\n".join(violations)


def test_any_failure_of_the_timing_hook_is_swallowed(stored, monkeypatch):
    c, services = stored

    def broken(*args, **kwargs):
        raise RuntimeError("not a redis error")

    monkeypatch.setattr(services.store.r, "pipeline", broken)
    assert c.get("/healthz").status_code == 200
    monkeypatch.setattr(observability._Recorder, "record", broken)
    assert c.get("/healthz").status_code == 200


# --- the text format ----------------------------------------------------------------------------------


def test_label_values_are_escaped():
    out = observability.Exposition()
    out.family("convtrain_x", "gauge", "help with \\ and\nnewline")
    odd = 'a "quoted" \\ back\nslash'
    out.sample("convtrain_x", 1.5, {"worker": odd})
    out.sample("convtrain_x", float("inf"), {"worker": "inf"})
    (family,) = text_string_to_metric_families(out.text())
    assert family.documentation == "help with \\ and\nnewline"
    assert [(s.labels["worker"], s.value) for s in family.samples] == [(odd, 1.5), ("inf", math.inf)]


# --- JSON-lines logs ------------------------------------------------------------------------------------


@pytest.fixture
def json_logs():
    """logs.configure() into a buffer; the root logger and warnings capture are restored afterwards."""
    root = logging.getLogger()
    saved_handlers, saved_level = list(root.handlers), root.level
    buffer = io.StringIO()
    logs.configure("DEBUG", buffer)

    def lines() -> list[dict]:
        return [json.loads(line) for line in buffer.getvalue().splitlines()]

    yield lines
    for h in list(root.handlers):
        root.removeHandler(h)
    for h in saved_handlers:
        root.addHandler(h)
    root.setLevel(saved_level)
    logging.captureWarnings(False)


def test_log_lines_are_json_with_the_job_id_from_extra(json_logs):
    log = logging.getLogger("convtrain.test")
    log.info("plain %s", "line")
    log.warning("job %s failed", "j1", extra={"job_id": "j1", "attempt": 2})
    first, second = json_logs()
    assert set(first) == {"ts", "level", "logger", "message"}
    assert first["message"] == "plain line" and first["level"] == "INFO" and first["logger"] == "convtrain.test"
    assert first["ts"].endswith("Z") and "T" in first["ts"]
    assert second["job_id"] == "j1" and second["attempt"] == 2 and second["level"] == "WARNING"


def test_job_context_tags_every_line_in_its_thread(json_logs):
    log = logging.getLogger("some.library")
    barrier = threading.Barrier(2)

    def job(job_id):
        with logs.job_context(job_id, worker="w7"):
            barrier.wait()
            log.info("step of %s", job_id)
            barrier.wait()

    threads = [threading.Thread(target=job, args=(j,)) for j in ("ja", "jb")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    with logs.job_context("jc"):
        with warnings.catch_warnings():
            warnings.simplefilter("always")
            logging.captureWarnings(True)  # pytest's own warnings capture replaced it
            warnings.warn("a torch-like warning")
        try:
            raise ValueError("boom")
        except ValueError:
            logging.getLogger("convtrain.worker").exception("job failed")
        logging.getLogger("x").info("explicit wins", extra={"job_id": "jd"})
    logging.getLogger("x").info("outside")
    lines = json_logs()
    steps = {line["message"]: (line.get("job_id"), line.get("worker")) for line in lines[:2]}
    assert steps == {"step of ja": ("ja", "w7"), "step of jb": ("jb", "w7")}
    warning, failure, explicit, outside = lines[2:]
    assert warning["logger"] == "py.warnings" and warning["job_id"] == "jc" and "a torch-like warning" in warning["message"]
    assert failure["job_id"] == "jc" and "ValueError: boom" in failure["exc"] and failure["level"] == "ERROR"
    assert explicit["job_id"] == "jd"
    assert "job_id" not in outside and logs.current_job_id() is None


def test_configure_replaces_handlers_and_names_the_worker(json_logs):
    buffer = io.StringIO()
    logs.configure("INFO", buffer, worker="w-main")
    logs.configure("INFO", buffer, worker="w-main")  # twice: still one line per record
    logging.getLogger("celery.worker").debug("hidden")
    logging.getLogger("celery.worker").info("celery@w-main ready.", extra={"odd": object()})
    (line,) = [json.loads(x) for x in buffer.getvalue().splitlines()]
    assert line["worker"] == "w-main" and line["message"] == "celery@w-main ready."
    assert line["odd"].startswith("<object object")
    logs._default_worker = None


def test_celery_tasks_run_in_their_job_context(json_logs):
    from celery import Celery
    from celery.signals import task_postrun, task_prerun

    app = Celery("t", set_as_current=False)

    @app.task(name=TRAIN_TASK)
    def train(job_id):
        return job_id

    @app.task(name="other")
    def other(x):
        return x

    logs.tag_celery_tasks((TRAIN_TASK,))
    logs.tag_celery_tasks((TRAIN_TASK,))  # connecting twice changes nothing
    log = logging.getLogger("celery.app.trace")
    task_prerun.send(sender=train, task_id="t1", task=train, args=["j9"], kwargs={})
    log.info("inside")
    task_postrun.send(sender=train, task_id="t1", task=train, args=["j9"], kwargs={}, retval="ok", state="SUCCESS")
    log.info("after")
    task_prerun.send(sender=other, task_id="t2", task=other, args=["not-a-job"], kwargs={})
    log.info("other task")
    task_postrun.send(sender=other, task_id="t2", task=other, args=["not-a-job"], kwargs={}, retval=1, state="SUCCESS")
    inside, after, untagged = [line for line in json_logs() if line["logger"] == "celery.app.trace"]
    assert inside["job_id"] == "j9" and "job_id" not in after and "job_id" not in untagged
    assert logs.current_job_id() is None


def test_gunicorn_logger_writes_json(json_logs, capsys):
    from gunicorn.config import Config as GunicornConfig

    cfg = GunicornConfig()
    cfg.set("errorlog", "-")
    logger = logs.GunicornLogger(cfg)
    logger.error("worker %s timed out", 12)
    line = json.loads(capsys.readouterr().err.strip().splitlines()[-1])
    assert line["logger"] == "gunicorn.error" and line["message"] == "worker 12 timed out"
    assert any(getattr(h, "_convtrain", False) for h in logging.getLogger().handlers)
