"""gunicorn worker classes for the API (`convtrain serve`, `convtrain api`, the API image).

- gunicorn answers some requests itself, before Flask sees them: a request line over
  `limit_request_line` (414), header fields over `limit_request_field_size` or `limit_request_fields`
  (431), a malformed request (400), an exception that escapes the application (500). Its stock answer is a
  text/html page; these workers answer application/problem+json like every other error of the service
  (type, title, status, detail), with gunicorn's own status and message and its limits unchanged.
- Each worker dies with its gunicorn master (PR_SET_PDEATHSIG, SIGKILL) on Linux, rather than noticing
  the master gone at its next once-a-second check and then draining for the graceful timeout.

This module is imported by the gunicorn master to find the class: it must not import the app (the gevent
worker monkey-patches the standard library after the fork, before the app is imported).
"""

from __future__ import annotations

import inspect
import json
import signal

from gunicorn import util
from gunicorn.workers.ggevent import GeventWorker
from gunicorn.workers.gthread import ThreadWorker

from service.cli import lifeline

PROBLEM = "application/problem+json"
DETAIL_500 = "the server could not handle the request; it has been logged"

# gunicorn's Worker.handle_error ends with util.write_error(client, status_int, reason, mesg) for every
# error it answers itself; these workers put write_problem in its place. Checked here so that a gunicorn
# whose helper changed fails loudly at start rather than answering HTML again.
if list(inspect.signature(util.write_error).parameters) != ["sock", "status_int", "reason", "mesg"]:
    raise ImportError(f"gunicorn {getattr(util, '__version__', '')} changed util.write_error; "
                      "service.cli.gunicorn_worker needs updating")


def problem_response(status: int, reason: str, detail: str) -> bytes:
    """A whole HTTP/1.1 response: the problem as JSON, and the connection closed after it."""
    body = json.dumps({"type": "about:blank", "title": reason, "status": status,
                       "detail": detail or (DETAIL_500 if status >= 500 else reason)}).encode()
    head = (f"HTTP/1.1 {status} {reason}\r\nConnection: close\r\nContent-Type: {PROBLEM}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n")
    return head.encode("latin-1") + body


def write_problem(sock, status_int: int, reason: str, mesg: str) -> None:
    """gunicorn's util.write_error, answering problem+json instead of HTML."""
    util.write_nonblock(sock, problem_response(int(status_int), str(reason), str(mesg or "")))


class ProblemErrors:
    """Mixed in before a gunicorn worker class."""

    def init_process(self) -> None:
        # Runs in the worker after the fork; the parent's init_process starts the loop and never returns.
        lifeline.set_parent_death_signal(signal.SIGKILL, self.ppid)
        util.write_error = write_problem
        super().init_process()


class ProblemGeventWorker(ProblemErrors, GeventWorker):
    """`-k gevent` with problem+json errors: what serve, `convtrain api` and the API image run."""


class ProblemThreadWorker(ProblemErrors, ThreadWorker):
    """`-k gthread` with problem+json errors (bench/api_latency.py compares the two)."""
