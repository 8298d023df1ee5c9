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
from service.cli import lifeline
from service.cli.embedded import EmbeddedRedis
from service.config import Config
from service.logs import configure
from service.store.jobs import JobStore
from service.store.reaper import Reaper

log = logging.getLogger("convtrain.serve")


# gunicorn's stock gevent and gthread workers, but answering their own errors (414, 431, 400) as
# problem+json and dying with their master: see service/cli/gunicorn_worker.py.
WORKER_CLASSES = {"gevent": "service.cli.gunicorn_worker.ProblemGeventWorker",
                  "gthread": "service.cli.gunicorn_worker.ProblemThreadWorker"}


def gunicorn_args(host: str, port: int, processes: int = 2, threads: int = 16,
                  worker_class: str = "gevent") -> list[str]:
    """The API under gunicorn. gevent workers serve each request as a greenlet, so hundreds of open
    event streams cost no threads; `threads` applies to the gthread class only."""
    concurrency = ["--worker-connections", "1000"] if worker_class == "gevent" else ["--threads", str(threads)]
    return [sys.executable, "-m", "gunicorn", "-b", f"{host}:{port}", "-w", str(processes),
            "-k", WORKER_CLASSES.get(worker_class, worker_class),
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


# What each child gets when serve's main thread ends without stopping it (serve killed with SIGKILL, or
# crashed): workers SIGKILL (their jobs' leases expire and the next serve's reaper requeues them from their
# checkpoints; a SIGTERM'd worker would try to checkpoint against a Redis that is going down too), gunicorn
# SIGTERM (it stops its workers within --graceful-timeout, and they die with it anyway), redis-server
# SIGTERM (it flushes its append-only file). serve starts them all from its main thread.
WORKER_DEATH_SIGNAL = signal.SIGKILL
API_DEATH_SIGNAL = signal.SIGTERM
HOME_BUSY = 3  # exit status: another serve (or its Redis) holds this home
STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name))


def _spawn(args: list[str], env: dict, death_signal: int) -> subprocess.Popen:
    """A child in a session of its own (a terminal's Ctrl-C or hang-up reaches serve only, which stops
    everyone in order) that dies with serve's main thread."""
    return subprocess.Popen(args, env=env, stdin=subprocess.DEVNULL, start_new_session=True,
                            preexec_fn=lifeline.die_with_parent(death_signal))  # noqa: PLW1509 -- prctl only


def run(config: Config, *, host: str = "127.0.0.1", port: int = 8000, workers: int = 1,
        insecure: bool = False) -> int:
    """Run until Ctrl-C, SIGTERM or SIGHUP, then stop everything cleanly (workers checkpoint and requeue).
    Killed any other way, its children die with it (Linux). With the embedded Redis, one serve per home."""
    if threading.current_thread() is not threading.main_thread():
        raise RuntimeError("convtrain serve runs in the main thread (its children die with the thread that "
                           "started them)")
    if refuse_public_without_tokens(config, host, insecure, "serve"):
        return 2
    configure("INFO")
    config.home.mkdir(parents=True, exist_ok=True)

    stop = threading.Event()
    previous = {}
    for sig in STOP_SIGNALS:
        if sig == getattr(signal, "SIGHUP", None) and signal.getsignal(sig) == signal.SIG_IGN:
            continue  # under nohup: a hang-up is meant not to stop it
        previous[sig] = signal.signal(sig, lambda *_: stop.set())
    try:
        return _run(config, host=host, port=port, workers=workers, stop=stop)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _run(config: Config, *, host: str, port: int, workers: int, stop: threading.Event) -> int:
    warning = lifeline.pdeathsig_warning()
    if warning:
        log.warning(warning)
    lock = None
    embedded = None
    url = config.redis_url
    if not url:
        lock = lifeline.HomeLock(config.home)
        try:
            lock.acquire(url=f"http://{host}:{port}")
        except lifeline.HomeBusy as busy:
            print(busy, file=sys.stderr, flush=True)
            return HOME_BUSY
        if lock.previous.get("pid"):
            log.info("took over %s from convtrain serve PID %s, which is no longer running",
                     lock.path, lock.previous["pid"])
    procs: list[subprocess.Popen] = []
    reaper = None
    try:
        if lock is not None:
            embedded = EmbeddedRedis(config.home / "redis", die_with_parent=True)
            url = embedded.start()
            lock.set_redis(embedded.process.pid, embedded.port)
        if stop.is_set():  # told to stop while Redis was starting
            return 0
        env = {**os.environ, "CONVTRAIN_REDIS_URL": url, "CONVTRAIN_HOME": str(config.home)}
        if config.data_dir:
            env["CONVTRAIN_DATA_DIR"] = str(config.data_dir)

        def worker_args(i: int) -> list[str]:
            return [sys.executable, "-m", "worker", "worker", "--name", f"serve{i}-{os.getpid()}"]

        store = JobStore.from_url(url)
        reaper = Reaper(store, make_celery(config, url), config, name=f"reaper@serve-{os.getpid()}")
        reaper.start()
        worker_procs = [_spawn(worker_args(i), env, WORKER_DEATH_SIGNAL) for i in range(workers)]
        procs.extend(worker_procs)
        api = _spawn(gunicorn_args(host, port), env, API_DEATH_SIGNAL)
        procs.append(api)
        if config.tokens_file:
            print(f"tokens required (from {config.tokens_file})", flush=True)
        else:
            print("no tokens file: one local user, no token needed"
                  + ("; WARNING: --insecure on a non-loopback address" if host not in LOOPBACK else ""), flush=True)
        print(f"convtrain serving on http://{host}:{port}  (Redis: "
              f"{'embedded, ' + str(config.home / 'redis') if embedded else url}; "
              f"data: {config.data_path}; {workers} worker(s)). Ctrl-C stops.", flush=True)
        code = 0
        while not stop.wait(0.5):
            if api.poll() is not None:
                log.error("the API process exited with %s; stopping", api.returncode)
                code = 1
                break
            for i, proc in enumerate(worker_procs):
                if proc.poll() is not None:
                    log.warning("worker %d exited with %s; restarting it", i, proc.returncode)
                    worker_procs[i] = _spawn(worker_args(i), env, WORKER_DEATH_SIGNAL)
                    procs[i] = worker_procs[i]
        return code
    finally:
        if reaper:
            reaper.stopped.set()
        _stop_all(procs, timeout=30)
        if embedded:
            embedded.stop()
        if lock is not None:
            lock.release()


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
