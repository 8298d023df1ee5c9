"""The client commands: submit, status, watch, list, cancel and download, through the Python client.

Torch-free: every request goes through `service.client`. Exit status: 0 on success, 1 when the
service answers with an error (or a watched job fails or is cancelled), 2 when the service cannot
be reached.
"""

from __future__ import annotations

import itertools
import sys
import time
from datetime import datetime
from pathlib import Path

from service.client import ApiError, Client, Job, Unreachable
from service.text import bar, duration, examples_count, metric_words, number

POLL_SECONDS = 0.25  # watch on a terminal: about 4 polls a second
PLAIN_EVERY = 5.0  # watch without a terminal: one line every this many seconds


class CommandError(Exception):
    """A failure on this side (a file that cannot be written), reported as `error: ...` with exit status 1."""


# --- formatting ---------------------------------------------------------------------

def _when(timestamp: float | None) -> str:
    if not timestamp:
        return "-"
    return datetime.fromtimestamp(timestamp).strftime("%Y-%m-%d %H:%M:%S")


def _progress(job: dict) -> str:
    p = job.get("progress") or {}
    seen, total = p.get("examples_seen") or 0, p.get("examples_total")
    if total:
        return f"{seen:,}/{total:,} ({100 * (p.get('fraction') or 0):.0f}%)"
    return f"{seen:,} examples"


def progress_line(job: dict) -> str:
    """`[#####.....] 12,300/30,000 examples  loss 0.231  acc 0.93  val 0.95  ETA 3s  running`."""
    p = job.get("progress") or {}
    m = job.get("metrics") or {}
    seen, total = p.get("examples_seen") or 0, p.get("examples_total")
    parts = [f"{bar(p.get('fraction'))} {examples_count(seen, total)}"]
    if m:
        parts += metric_words(m)
    if job.get("status") == "running":
        parts.append(f"ETA {duration(p.get('eta_seconds'))}")
    parts.append(job.get("status_detail") or job.get("status") or "?")
    return "  ".join(parts)


RESULT_ROWS = (  # key, label, digits
    ("examples_seen", "examples seen", 0), ("train_acc", "train acc", 4), ("val_acc", "val acc", 4),
    ("test_acc", "test acc", 4), ("test_acc_crops", "test acc (crops)", 4), ("class_loss", "class loss", 4),
    ("l2_loss", "L2 loss", 4), ("examples_per_second", "examples/s", 1), ("seconds", "seconds", 1),
)


def _result_lines(result: dict) -> list[str]:
    rows = []
    for key, label, digits in RESULT_ROWS:
        if key not in result:
            continue
        value = result[key]
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            shown = f"{value:,.{digits}f}" if digits == 0 or key == "examples_per_second" else f"{value:.{digits}f}"
        else:
            shown = number(value)
        rows.append((label, shown))
    width = max((len(k) for k, _ in rows), default=0)
    return [f"  {k:<{width}}  {v}" for k, v in rows]


def _error_line(error: dict | None) -> str:
    if not error:
        return "no error recorded"
    kind = error.get("type")
    return f"{kind}: {error.get('message')}" if kind else str(error.get("message"))


def summary(job: dict) -> str:
    """`convtrain status`: a readable summary of one job."""
    lines = [
        f"job       {job['id']}",
        f"name      {job.get('name') or '-'}",
        f"status    {job.get('status')}" + (f" ({job['status_detail']})" if job.get("status_detail") else ""),
        f"progress  {_progress(job)}" + (f", ETA {duration(job['progress']['eta_seconds'])}"
                                         if (job.get("progress") or {}).get("eta_seconds") is not None else ""),
        f"created   {_when(job.get('created_at'))}",
    ]
    if job.get("started_at"):
        lines.append(f"started   {_when(job['started_at'])}")
    if job.get("finished_at"):
        lines.append(f"finished  {_when(job['finished_at'])}")
    if job.get("worker") or job.get("device"):
        lines.append(f"device    {job.get('device') or '-'}" + (f" on {job['worker']}" if job.get("worker") else ""))
    m = job.get("metrics")
    if m:
        lines.append(f"metrics   loss {number(m.get('class_loss'))}  L2 {number(m.get('l2_loss'))}  "
                     f"train acc {number(m.get('train_acc'))}  val acc {number(m.get('val_acc'))}  "
                     f"{number(m.get('examples_per_second'), 1)} examples/s")
    if job.get("result"):
        lines.append("result")
        lines += _result_lines(job["result"])
    if job.get("error"):
        lines.append(f"error     {_error_line(job['error'])}")
    return "\n".join(lines)


# --- the commands -------------------------------------------------------------------

def submit(client: Client, args) -> int:
    job = client.submit(args.file)
    print(job.id, flush=True)
    if getattr(args, "wait", False):
        return watch(client, job.id)
    return 0


def status(client: Client, args) -> int:
    print(summary(client.job(args.id).record))
    return 0


def watch(client: Client, job_id: str, *, out=None) -> int:
    """Follow the job until it ends: 0 when it succeeded, 1 when it failed or was cancelled."""
    out = out or sys.stderr
    tty = out.isatty()
    width = 0
    last_plain = 0.0
    last_line = None
    job = Job(client.session, {"id": job_id})
    for record in job.follow(POLL_SECONDS):
        line = progress_line(record)
        if tty:
            out.write("\r" + line + " " * max(0, width - len(line)))
            out.flush()
            width = len(line)
        elif job.ended() or (line != last_line and time.monotonic() - last_plain >= PLAIN_EVERY):
            print(line, file=out, flush=True)
            last_plain, last_line = time.monotonic(), line
    if tty:
        out.write("\n")
        out.flush()
    if job.status == "succeeded":
        print(f"job {job_id} succeeded")
        print("\n".join(_result_lines(job.result or {})))
        return 0
    if job.status == "failed":
        print(f"job {job_id} failed: {_error_line(job.error)}")
    else:
        print(f"job {job_id} was {job.status} at {(job.progress or {}).get('examples_seen', 0):,} examples")
    return 1


def listing(client: Client, args) -> int:
    # One more than shown: whether there are more jobs than --limit.
    jobs = list(itertools.islice(client.jobs(status=args.status, page_size=args.limit), args.limit + 1))
    rows = [("ID", "NAME", "STATUS", "PROGRESS", "TEST_ACC", "CREATED")]
    for job in jobs[:args.limit]:
        record = job.record
        result = record.get("result") or {}
        rows.append((job.id, record.get("name") or "-", record.get("status") or "?", _progress(record),
                     number(result.get("test_acc"), 4), _when(record.get("created_at"))))
    if len(rows) == 1:
        print("no jobs" + (f" with status {args.status}" if args.status else ""))
        return 0
    widths = [max(len(r[c]) for r in rows) for c in range(len(rows[0]))]
    for r in rows:
        print("  ".join(f"{cell:<{w}}" for cell, w in zip(r, widths)).rstrip())
    if len(jobs) > args.limit:
        print(f"(more jobs: raise --limit above {args.limit})")
    return 0


def cancel(client: Client, args) -> int:
    record = client.job(args.id).cancel()
    print(f"job {record['id']}: {record.get('status_detail') or record.get('status')}")
    return 0


def download(client: Client, args) -> int:
    fmt = getattr(args, "format", None) or "pt"
    try:
        path = client.job(args.id).download(fmt, args.output or Path("."))
    except OSError as exc:
        raise CommandError(f"cannot write {exc.filename or args.output}: {exc.strerror or exc}") from None
    print(f"wrote {path} ({path.stat().st_size:,} bytes)")
    return 0


COMMANDS = {"submit": submit, "status": status, "list": listing, "cancel": cancel, "download": download,
            "watch": lambda client, args: watch(client, args.id)}


def call(command, args, interrupted: str = "interrupted") -> int:
    """Run `command(client, args)`; print errors as `error: ...` (and each field error) on stderr and return
    the exit code: 2 when the service cannot be reached, else 1."""
    client = Client(args.url)
    try:
        return command(client, args)
    except ApiError as exc:
        print(f"error: {exc}", file=sys.stderr)
        for e in exc.errors:
            print(f"  {e.get('path')}: {e.get('message')}" if e.get("path") else f"  {e.get('message')}",
                  file=sys.stderr)
        return 2 if isinstance(exc, Unreachable) else 1
    except CommandError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(interrupted, file=sys.stderr)
        return 130


def run(args) -> int:
    """Run one client command."""
    return call(COMMANDS[args.command], args)
