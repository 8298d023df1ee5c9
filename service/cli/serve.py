"""`convtrain serve`: Redis (embedded by default), workers and the API as one supervised group."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time

from service.celery_app import make_celery
from service.config import Config
from service.cli.embedded import EmbeddedRedis
from service.store.jobs import JobStore
from service.logs import configure
from service.store.reaper import Reaper

log = logging.getLogger("convtrain.serve")


def gunicorn_args(host: str, port: int, processes: int = 2, threads: int = 16,
                  worker_class: str = "gevent") -> list[str]:
    """The API under gunicorn. gevent workers serve each request as a greenlet, so hundreds of open
    event streams cost no threads; `threads` applies to the gthread class only."""
    concurrency = ["--worker-connections", "1000"] if worker_class == "gevent" else ["--threads", str(threads)]
    return [sys.executable, "-m", "gunicorn", "-b", f"{host}:{port}", "-w", str(processes), "-k", worker_class,
            *concurrency, "--graceful-timeout", "5", "--log-level", "warning",
            "--logger-class", "service.logs.GunicornLogger", "service.api:create_app()"]


LOOPBACK = ("127.0.0.1", "localhost", "::1")


def refuse_public_without_tokens(config: Config, host: str, insecure: bool, command: str) -> bool:
    """Without a tokens file every caller is the local admin: only loopback, unless --insecure."""
    if config.tokens_file or host in LOOPBACK or insecure:
        return False
    print(f"convtrain {command}: refusing to listen on {host} without tokens: anyone who reaches it could train, "
          "read and delete jobs. Create one with `convtrain token create NAME` and set CONVTRAIN_TOKENS_FILE, "
          "or pass --insecure.", file=sys.stderr)
    return True


def exec_api(config: Config, *, host: str, port: int, processes: int, insecure: bool = False) -> int:
    if not config.redis_url:
        print("convtrain api: set CONVTRAIN_REDIS_URL (or use `convtrain serve`)", file=sys.stderr)
        return 2
    if refuse_public_without_tokens(config, host, insecure, "api"):
        return 2
    args = gunicorn_args(host, port, processes)
    os.execv(args[0], args)
    return 0  # not reached


def _spawn(args: list[str], env: dict) -> subprocess.Popen:
    return subprocess.Popen(args, env=env, stdin=subprocess.DEVNULL)


def run(config: Config, *, host: str = "127.0.0.1", port: int = 8000, workers: int = 1,
        insecure: bool = False) -> int:
    """Run until Ctrl-C or SIGTERM, then stop everything cleanly (workers checkpoint and requeue)."""
    if refuse_public_without_tokens(config, host, insecure, "serve"):
        return 2
    configure("INFO")
    config.home.mkdir(parents=True, exist_ok=True)
    embedded = None
    url = config.redis_url
    if not url:
        embedded = EmbeddedRedis(config.home / "redis")
        url = embedded.start()
    env = {**os.environ, "CONVTRAIN_REDIS_URL": url, "CONVTRAIN_HOME": str(config.home)}
    if config.data_dir:
        env["CONVTRAIN_DATA_DIR"] = str(config.data_dir)

    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())

    def worker_args(i: int) -> list[str]:
        return [sys.executable, "-m", "worker", "worker", "--name", f"serve{i}-{os.getpid()}"]

    store = JobStore.from_url(url)
    reaper = Reaper(store, make_celery(config, url), config, name=f"reaper@serve-{os.getpid()}")
    reaper.start()
    worker_procs = [_spawn(worker_args(i), env) for i in range(workers)]
    api = _spawn(gunicorn_args(host, port), env)
    if config.tokens_file:
        print(f"tokens required (from {config.tokens_file})", flush=True)
    else:
        print("no tokens file: one local user, no token needed"
              + ("; WARNING: --insecure on a non-loopback address" if host not in LOOPBACK else ""), flush=True)
    print(f"convtrain serving on http://{host}:{port}  (Redis: {'embedded, ' + str(config.home / 'redis') if embedded else url}; "
          f"data: {config.data_path}; {workers} worker(s)). Ctrl-C stops.", flush=True)
    code = 0
    try:
        while not stop.wait(0.5):
            if api.poll() is not None:
                log.error("the API process exited with %s; stopping", api.returncode)
                code = 1
                break
            for i, proc in enumerate(worker_procs):
                if proc.poll() is not None:
                    log.warning("worker %d exited with %s; restarting it", i, proc.returncode)
                    worker_procs[i] = _spawn(worker_args(i), env)
    finally:
        reaper.stopped.set()
        _stop_all([api, *worker_procs], timeout=30)
        if embedded:
            embedded.stop()
    return code


def _stop_all(procs: list[subprocess.Popen], timeout: float) -> None:
    """SIGTERM everyone (workers checkpoint and requeue their jobs), then SIGKILL stragglers."""
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for proc in procs:
        try:
            proc.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
