"""What ties `convtrain serve`'s processes to it: children that die with it however it dies, and one serve
(so one redis-server) per home folder.

Children: Linux's PR_SET_PDEATHSIG, set in each child between fork and exec, makes the kernel signal the
child when the thread that started it ends, so even after SIGKILL (which no handler sees) nothing is left
behind. Elsewhere it is unavailable: serve says so and children outlive a serve killed with SIGKILL.

Home: `<home>/serve.lock` holds, as JSON, the serve's PID and its Redis's PID (each with its process start
time, so a reused PID is not taken for them). A serve holds an exclusive flock on the file for its life, and
the kernel drops it when the process dies however it dies; the PIDs in it are checked as well (alive, and a
convtrain serve or a redis-server that started when the file says), so a redis-server that outlived its
serve still keeps a second one out, and a file left by a killed serve is taken over.
"""

from __future__ import annotations

import ctypes
import json
import os
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

try:
    import fcntl
except ImportError:  # not POSIX: the PID check alone
    fcntl = None

PR_SET_PDEATHSIG = 1
LOCK_NAME = "serve.lock"


def _load_prctl():
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    prctl.restype = ctypes.c_int
    return prctl


# Looked up once, here, so that a forked child only calls it (no library loading between fork and exec).
_PRCTL = _load_prctl()


def parent_death_supported() -> bool:
    return _PRCTL is not None


def set_parent_death_signal(sig: int, parent_pid: int) -> bool:
    """In this process: receive `sig` when the thread that started it ends. If `parent_pid` is gone already
    (it died before this ran), act on it now. False where the platform cannot do it."""
    if _PRCTL is None or _PRCTL(PR_SET_PDEATHSIG, int(sig), 0, 0, 0) != 0:
        return False
    if os.getppid() != parent_pid:
        os.kill(os.getpid(), int(sig))
    return True


def die_with_parent(sig: int) -> Callable[[], None] | None:
    """A `preexec_fn` for subprocess.Popen: the child gets `sig` when this process's calling thread ends
    (start children from the main thread, which lives as long as the process). None where unsupported."""
    if _PRCTL is None:
        return None
    parent, sig = os.getpid(), int(sig)

    def preexec() -> None:
        set_parent_death_signal(sig, parent)

    return preexec


# --- processes, by PID ---------------------------------------------------------------------------------------

def pid_running(pid: int | None) -> bool:
    """Alive and not a zombie."""
    if not pid or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # alive, another user's
    except OSError:
        return False
    state = _stat(pid)
    return state is None or state[0] not in ("Z", "X")


def _stat(pid: int) -> list[str] | None:
    """/proc/<pid>/stat after the command name (field 3 on), or None without /proc."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def start_time(pid: int) -> int | None:
    """When `pid` started, in clock ticks since boot (/proc/<pid>/stat field 22); None without /proc."""
    fields = _stat(pid)
    try:
        return int(fields[19]) if fields else None
    except (IndexError, ValueError):
        return None


def _cmdline(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    return raw.decode(errors="replace").split("\0")


def is_process(pid: int | None, started: int | None, kind: str) -> bool:
    """`pid` runs, started at `started` (when both are known), and is a convtrain serve (`kind` "serve") or a
    redis-server ("redis"). Without /proc only liveness can be checked: a live PID counts."""
    if not pid_running(pid):
        return False
    if not Path("/proc/self/stat").exists():
        return True
    now = start_time(pid)
    if started is not None and now is not None and now != started:
        return False  # the PID was reused
    argv = _cmdline(pid)
    if argv is None:
        return True  # alive but unreadable (another user's): assume the worst
    if kind == "redis":
        # redis-server rewrites its title to "redis-server host:port", so only the name can be checked.
        try:
            comm = Path(f"/proc/{pid}/comm").read_text().strip()
        except OSError:
            comm = ""
        return comm == "redis-server" or "redis-server" in (argv[0] if argv else "")
    return "serve" in argv and any("convtrain" in a or "service.cli" in a for a in argv)


# --- one serve per home ----------------------------------------------------------------------------------------

class HomeBusy(Exception):
    """The home is served already (or its Redis still runs): the message says by what and what to do."""


class HomeLock:
    """`<home>/serve.lock`: {"pid", "start_time", "url", "home", "started_at", "redis_pid",
    "redis_start_time", "redis_port"} of the serve that holds it. Never unlinked (a serve waiting on the old
    file and one creating a new one could both hold "the" lock); emptied when a serve stops cleanly."""

    def __init__(self, home: Path):
        self.home = Path(home)
        self.path = self.home / LOCK_NAME
        self.fd: int | None = None
        self.record: dict = {}
        self.previous: dict = {}

    def acquire(self, *, url: str, orphan_wait: float = 15.0) -> None:
        """Take the home or raise HomeBusy, without touching whoever holds it. A redis-server left by a dead
        serve gets `orphan_wait` seconds to finish exiting (it was sent SIGTERM when its serve died)."""
        self.home.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            if fcntl is not None:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except OSError:  # EWOULDBLOCK: a live process holds it
                    raise HomeBusy(self._live_message(self._read(fd))) from None
            old = self._read(fd)
            if old.get("pid") != os.getpid() and is_process(old.get("pid"), old.get("start_time"), "serve"):
                raise HomeBusy(self._live_message(old))
            if is_process(old.get("redis_pid"), old.get("redis_start_time"), "redis"):
                deadline = time.monotonic() + orphan_wait
                print(f"convtrain serve: waiting for redis-server PID {old['redis_pid']}, left by a serve that "
                      "is no longer running, to exit", file=sys.stderr, flush=True)
                while is_process(old.get("redis_pid"), old.get("redis_start_time"), "redis"):
                    if time.monotonic() > deadline:
                        raise HomeBusy(self._orphan_message(old))
                    time.sleep(0.1)
            me = os.getpid()
            record = {"pid": me, "start_time": start_time(me), "url": url, "home": str(self.home),
                      "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
                      "redis_pid": None, "redis_start_time": None, "redis_port": None}
            self._write(fd, record)
        except BaseException:
            os.close(fd)
            raise
        self.fd, self.record, self.previous = fd, record, old

    def update(self, **fields) -> None:
        self.record.update(fields)
        self._write(self.fd, self.record)

    def set_redis(self, pid: int, port: int) -> None:
        self.update(redis_pid=pid, redis_start_time=start_time(pid), redis_port=port)

    def release(self) -> None:
        if self.fd is None:
            return
        try:
            os.ftruncate(self.fd, 0)
        finally:
            os.close(self.fd)  # drops the flock
            self.fd = None

    @staticmethod
    def _write(fd: int, record: dict) -> None:
        data = (json.dumps(record) + "\n").encode()
        os.ftruncate(fd, 0)
        os.pwrite(fd, data, 0)

    @staticmethod
    def _read(fd: int) -> dict:
        try:
            os.lseek(fd, 0, os.SEEK_SET)
            chunks = []
            while chunk := os.read(fd, 65536):
                chunks.append(chunk)
            value = json.loads(b"".join(chunks) or b"{}")
            return value if isinstance(value, dict) else {}
        except (OSError, ValueError):
            return {}

    def _live_message(self, held: dict) -> str:
        if not held.get("pid"):
            return (f"convtrain serve: {self.home} is in use by another convtrain serve that is starting "
                    f"({self.path} is locked). Stop it first, or set CONVTRAIN_HOME to another folder.")
        redis = f", its Redis PID {held['redis_pid']}" if held.get("redis_pid") else ""
        return (f"convtrain serve: {self.home} is in use by convtrain serve PID {held['pid']} "
                f"({held.get('url', '?')}{redis}, since {held.get('started_at', '?')}). Stop that one first "
                f"(Ctrl-C in its terminal, or kill {held['pid']}), or set CONVTRAIN_HOME to another folder.")

    def _orphan_message(self, held: dict) -> str:
        return (f"convtrain serve: redis-server PID {held['redis_pid']} (port {held.get('redis_port', '?')}), "
                f"started by convtrain serve PID {held.get('pid', '?')} which is no longer running, still runs "
                f"on {self.home / 'redis'}; a second one would write the same append-only file. Stop it "
                f"(kill {held['redis_pid']}) and start again.")


def pdeathsig_warning() -> str | None:
    if parent_death_supported():
        return None
    return ("this platform has no PR_SET_PDEATHSIG: if serve is killed with SIGKILL, its redis-server, "
            "workers and API keep running; stop it with Ctrl-C or SIGTERM")


__all__ = ["HomeBusy", "HomeLock", "die_with_parent", "is_process", "parent_death_supported", "pdeathsig_warning",
           "pid_running", "set_parent_death_signal", "start_time"]
