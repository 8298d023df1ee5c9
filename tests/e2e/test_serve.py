"""`convtrain serve` however it stops: its children die with it, and one serve per home.

Real processes throughout: `convtrain serve` as a subprocess (embedded redis-server, gunicorn and its
workers, a Celery worker), its children found by PID before it is signalled, and checked by PID after.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from service.cli import lifeline
from service.cli.embedded import EmbeddedRedis
from service.cli.serve import HOME_BUSY
from tests.conftest import data_dir, example, wait_for
from tests.e2e.test_cli import STOP_TIMEOUT, Serve, _names, alive, descendants

pytestmark = [pytest.mark.e2e,
              pytest.mark.skipif(not sys.platform.startswith("linux"), reason="children die with serve on Linux")]
needs_mnist = pytest.mark.skipif(not (data_dir() / "mnist").is_dir(), reason=f"no MNIST in {data_dir()}")
GONE_TIMEOUT = 30  # redis-server flushes its file, gunicorn drains within its 5 s graceful timeout


def wait_gone(pids: set[int], serve: Serve, timeout: float = GONE_TIMEOUT) -> None:
    try:
        wait_for(lambda: not any(alive(pid) for pid in pids), timeout, "every child gone", every=0.05)
    except TimeoutError:
        left = {pid for pid in pids if alive(pid)}
        raise AssertionError(f"still running {timeout} s after serve: {_names(left)}\n{serve.tail()}") from None


def lock_record(home: Path) -> dict:
    text = (home / lifeline.LOCK_NAME).read_text()
    return json.loads(text) if text.strip() else {}


def started_children(serve: Serve) -> set[int]:
    """Every process below serve once all are up: redis-server, gunicorn's master and its 2 workers, the
    Celery worker. Recorded before serve is signalled."""
    serve.wait_ready()

    def complete():
        names = _names(serve.remember_children())
        counts = {kind: sum(kind in n for n in names) for kind in ("redis-server", "gunicorn", "-m worker")}
        return counts if counts["redis-server"] == 1 and counts["gunicorn"] >= 3 and counts["-m worker"] == 1 else None

    wait_for(complete, 30, "serve's children all started")
    children = set(serve.children)
    record = lock_record(serve.home)
    assert record["pid"] == serve.proc.pid and record["url"] == serve.base
    assert record["redis_pid"] in children and "redis-server" in _names({record["redis_pid"]})[0]
    assert not descendants(record["redis_pid"]), "redis-server has children of its own"
    return children


def start(home: Path, log: Path, serves: list) -> Serve:
    serve = Serve(home, log)
    serve.home = home
    serves.append(serve)
    return serve


@needs_mnist
def test_sigkill_leaves_no_process_and_the_next_serve_takes_the_home_over(tmp_path, serves):
    home = tmp_path / "home"
    first = start(home, tmp_path / "serve1.log", serves)
    children = started_children(first)

    os.kill(first.proc.pid, signal.SIGKILL)
    assert first.proc.wait(10) == -signal.SIGKILL
    wait_gone(children, first)

    # The lock file still names the dead serve; the next serve takes it over and starts its own Redis on
    # the same append-only file.
    assert lock_record(home)["pid"] == first.proc.pid
    second = start(home, tmp_path / "serve2.log", serves)
    second_children = started_children(second)
    assert "took over" in second.tail()
    assert requests.get(second.base + "/healthz", timeout=5).json() == {"status": "ok"}
    assert second.stop() == 0, second.tail()
    wait_gone(second_children, second)
    assert lock_record(home) == {}  # emptied by a clean stop


@needs_mnist
def test_sighup_stops_in_order_and_the_running_job_is_checkpointed_and_requeued(tmp_path, serves):
    home = tmp_path / "home"
    first = start(home, tmp_path / "serve1.log", serves)
    children = started_children(first)
    job = requests.post(first.base + "/v1/jobs", timeout=10,
                        json=example("net1-default.json", budget={"examples": 1_000_000}, seed=3)).json()

    def events(base: str) -> list[dict]:
        points = requests.get(f"{base}/v1/jobs/{job['id']}/metrics?limit=10000", timeout=10).json()["points"]
        return [p for p in points if "event" in p]

    wait_for(lambda: any(e["event"] == "checkpoint" for e in events(first.base)), 120, "a checkpoint")

    first.proc.send_signal(signal.SIGHUP)  # the terminal or SSH session closed
    assert first.proc.wait(STOP_TIMEOUT) == 0, first.tail()
    wait_gone(children, first)
    redis_log = (home / "redis" / "redis.log").read_text()
    assert "ready to exit" in redis_log  # a clean shutdown: it had SIGTERM and flushed its file

    second = start(home, tmp_path / "serve2.log", serves)
    second_children = started_children(second)
    assert "took over" not in second.tail()  # the first released the home
    kinds = [e["event"] for e in events(second.base)]
    assert "requeued" in kinds, kinds  # the worker checkpointed and gave the job back
    resumed = wait_for(lambda: [e for e in events(second.base) if e["event"] == "resumed"], 120, "job resumed")
    assert resumed[0]["examples"] > 0  # from the checkpoint, not from scratch
    assert requests.post(f"{second.base}/v1/jobs/{job['id']}/cancel", timeout=10).status_code < 300
    assert second.stop() == 0, second.tail()
    wait_gone(second_children, second)


@needs_mnist
def test_a_second_serve_on_a_live_home_refuses_and_leaves_the_first_alone(tmp_path, serves):
    home = tmp_path / "home"
    first = start(home, tmp_path / "serve1.log", serves)
    children = started_children(first)
    before = lock_record(home)

    second = start(home, tmp_path / "serve2.log", serves)
    assert second.proc.wait(60) == HOME_BUSY, second.tail()
    message = second.tail()
    assert f"is in use by convtrain serve PID {first.proc.pid}" in message, message
    assert first.base in message and "CONVTRAIN_HOME" in message
    assert not descendants(second.proc.pid)

    # The first is untouched: same lock, same children, still serving.
    assert lock_record(home) == before
    assert all(alive(pid) for pid in children)
    assert requests.get(first.base + "/readyz", timeout=5).status_code == 200
    assert first.stop() == 0, first.tail()
    wait_gone(children, first)


def test_a_stale_lock_is_taken_over(tmp_path):
    """Left by a process that is gone, or naming a PID now used by something that is not a serve."""
    done = subprocess.Popen([sys.executable, "-c", "pass"])
    done.wait()
    for pid in (done.pid, os.getpid()):
        home = tmp_path / f"home-{pid}"
        home.mkdir()
        (home / lifeline.LOCK_NAME).write_text(json.dumps({"pid": pid, "start_time": 1, "url": "http://x"}))
        lock = lifeline.HomeLock(home)
        lock.acquire(url="http://127.0.0.1:1")
        try:
            assert lock.previous["pid"] == pid
            assert lock_record(home)["pid"] == os.getpid()
        finally:
            lock.release()


def test_a_redis_server_left_by_a_dead_serve_keeps_its_home(tmp_path):
    """Where a redis-server outlives its serve (no PR_SET_PDEATHSIG, or not yet exited), no second one
    may start on its append-only file."""
    home = tmp_path / "home"
    orphan = EmbeddedRedis(home / "redis")
    orphan.start()
    try:
        done = subprocess.Popen([sys.executable, "-c", "pass"])
        done.wait()
        pid = orphan.process.pid
        (home / lifeline.LOCK_NAME).write_text(json.dumps(
            {"pid": done.pid, "start_time": 1, "redis_pid": pid, "redis_start_time": lifeline.start_time(pid),
             "redis_port": orphan.port}))
        with pytest.raises(lifeline.HomeBusy, match=f"redis-server PID {pid} .* still runs"):
            lifeline.HomeLock(home).acquire(url="http://127.0.0.1:1", orphan_wait=0.2)
        assert orphan.process.poll() is None
    finally:
        orphan.stop()
    lock = lifeline.HomeLock(home)
    lock.acquire(url="http://127.0.0.1:1", orphan_wait=0.2)
    lock.release()
