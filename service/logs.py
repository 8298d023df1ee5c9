"""Logs as JSON lines, with the job id on every line about a job.

    {"ts": "2025-01-02T03:04:05.678Z", "level": "INFO", "logger": "convtrain.worker",
     "message": "job 19a...: attempt 1 on w1", "job_id": "19a...", "worker": "w1"}

- ``configure()`` makes the root logger write such lines (to stderr by default) and routes
  ``warnings.warn`` (torch's included) through logging.
- A record gets ``job_id`` from ``extra={"job_id": ...}``, or else from the innermost
  ``job_context(job_id)`` active in the thread (or asyncio task) that logged it: wrap a job's
  run in it and every line logged meanwhile in that thread carries the id, the lines of
  Celery, torch and any other library included. Threads do not inherit the context: a
  thread started for a job enters ``job_context`` itself. ``tag_celery_tasks()`` does it for
  Celery tasks whose first argument is the job id.
- ``worker`` likewise comes from ``extra``, else ``job_context(..., worker=)``, else the
  process-wide ``configure(worker=...)``.
- Other ``extra`` keys are kept; ``exc`` holds the formatted traceback of ``log.exception``.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import sys
from collections.abc import Iterator
from datetime import UTC, datetime

_JOB_ID: contextvars.ContextVar[str | None] = contextvars.ContextVar("convtrain_job_id", default=None)
_WORKER: contextvars.ContextVar[str | None] = contextvars.ContextVar("convtrain_worker", default=None)
# What every LogRecord has by itself; anything else on a record came from `extra` (or a filter).
_STANDARD = set(vars(logging.LogRecord("x", logging.INFO, "x", 0, "x", None, None))) | {"message", "asctime"}
# Set on records by the record factory: the context of the thread that created the record,
# so that a handler formatting it elsewhere (a QueueListener) still knows the job.
_CTX_JOB, _CTX_WORKER = "_convtrain_job_id", "_convtrain_worker"
_default_worker: str | None = None
_factory_installed = False


@contextlib.contextmanager
def job_context(job_id: str, *, worker: str | None = None) -> Iterator[None]:
    """Every line logged in this thread (or task) inside the block carries `job_id` (and `worker`)."""
    job_token = _JOB_ID.set(job_id)
    worker_token = _WORKER.set(worker) if worker is not None else None
    try:
        yield
    finally:
        if worker_token is not None:
            _WORKER.reset(worker_token)
        _JOB_ID.reset(job_token)


def tag_celery_tasks(task_names: tuple[str, ...] | None = None) -> None:
    """Run every Celery task (of `task_names`, default all) in the job context of its first argument, the job id.

    Celery sends task_prerun and task_postrun in the thread that runs the task, around the task and
    its own "Task ... succeeded in ..." line, so those lines and all in between carry the job id.
    Connecting twice changes nothing.
    """
    from celery.signals import task_postrun, task_prerun

    tokens: dict[str, contextvars.Token] = {}

    def enter(task_id=None, task=None, args=None, **_):
        if args and (task_names is None or getattr(task, "name", None) in task_names):
            tokens[task_id] = _JOB_ID.set(str(args[0]))

    def leave(task_id=None, **_):
        token = tokens.pop(task_id, None)
        if token is not None:
            try:
                _JOB_ID.reset(token)
            except ValueError:  # set in another context: clear it all the same
                _JOB_ID.set(None)

    task_prerun.connect(enter, weak=False, dispatch_uid="convtrain.logs.task_prerun")
    task_postrun.connect(leave, weak=False, dispatch_uid="convtrain.logs.task_postrun")


def current_job_id() -> str | None:
    """The job id of the innermost job_context active here, or None."""
    return _JOB_ID.get()


class JsonFormatter(logging.Formatter):
    """One JSON object per record: ts, level, logger, message, then job_id, worker, extras, exc."""

    def format(self, record: logging.LogRecord) -> str:
        attrs = vars(record)
        out = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")
                  .replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        job_id = attrs.get("job_id") or attrs.get(_CTX_JOB) or _JOB_ID.get()
        if job_id:
            out["job_id"] = str(job_id)
        worker = attrs.get("worker") or attrs.get(_CTX_WORKER) or _WORKER.get() or _default_worker
        if worker:
            out["worker"] = str(worker)
        for key, value in attrs.items():
            if key not in _STANDARD and key not in out and not key.startswith("_") and key not in ("job_id", "worker"):
                out[key] = value
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        elif record.exc_text:
            out["exc"] = record.exc_text
        if record.stack_info:
            out["stack"] = self.formatStack(record.stack_info)
        try:
            return json.dumps(out, default=_jsonable, ensure_ascii=False)
        except (TypeError, ValueError):  # e.g. a circular extra: keep the line, drop the extras
            return json.dumps({k: out[k] for k in ("ts", "level", "logger", "message", "job_id", "worker", "exc")
                               if k in out}, default=str, ensure_ascii=False)


def _jsonable(value):
    return str(value)


def _install_record_factory() -> None:
    """Stamp each record with the job context of the thread that creates it."""
    global _factory_installed
    if _factory_installed:
        return
    previous = logging.getLogRecordFactory()

    def factory(*args, **kwargs):
        record = previous(*args, **kwargs)
        job_id, worker = _JOB_ID.get(), _WORKER.get()
        if job_id is not None:
            setattr(record, _CTX_JOB, job_id)
        if worker is not None:
            setattr(record, _CTX_WORKER, worker)
        return record

    logging.setLogRecordFactory(factory)
    _factory_installed = True


def handler(stream=None) -> logging.Handler:
    """A stream handler (stderr by default) that writes JSON lines."""
    h = logging.StreamHandler(stream if stream is not None else sys.stderr)
    h.setFormatter(JsonFormatter())
    h._convtrain = True  # type: ignore[attr-defined]
    return h


def configure(level: str | int = "INFO", stream=None, *, worker: str | None = None) -> logging.Handler:
    """Make the root logger write JSON lines to `stream` (stderr by default) at `level`.

    Replaces the root logger's handlers (like logging.basicConfig(force=True)), so calling it
    again, or after basicConfig, never doubles lines. `worker` names this process on every line.
    Returns the handler it installed.
    """
    global _default_worker
    if worker is not None:
        _default_worker = worker
    _install_record_factory()
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
        if getattr(old, "_convtrain", False):
            old.close()
    h = handler(stream)
    root.addHandler(h)
    root.setLevel(level.upper() if isinstance(level, str) else level)
    logging.captureWarnings(True)
    return h


def _gunicorn_logger_class():
    from gunicorn.glogging import Logger

    class GunicornLogger(Logger):
        """gunicorn's own error and access logs as JSON lines, and the app's root logger configured.

        Use with ``gunicorn --logger-class service.logs.GunicornLogger``; setup runs in the
        master before it forks, so every API process inherits the configuration.
        """

        def setup(self, cfg):
            super().setup(cfg)
            configure("INFO")
            for log in (self.error_log, self.access_log):
                for h in log.handlers:
                    if getattr(h, "_gunicorn", False):
                        h.setFormatter(JsonFormatter())

    GunicornLogger.__module__, GunicornLogger.__qualname__ = __name__, "GunicornLogger"
    return GunicornLogger


def __getattr__(name: str):
    # Built on first use so that importing service.logs never imports gunicorn (the worker has no use for it).
    if name == "GunicornLogger":
        cls = _gunicorn_logger_class()
        globals()[name] = cls
        return cls
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
