"""The client commands: submit, status, watch, list, cancel and download, over the HTTP API.

Torch-free: this talks to a running service with `requests`. Exit status: 0 on
success, 1 when the service answers with an error (or a watched job fails or is
cancelled), 2 when the service cannot be reached.
"""

from __future__ import annotations

import os
import re
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

import requests

from service.config import Config
from service.spec.netspec import InvalidSpec
from service.spec.request_body import read_body
from service.text import bar, duration, examples_count, metric_words, number

TIMEOUT = 30  # seconds for one HTTP request
POLL_SECONDS = 0.25  # watch on a terminal: about 4 polls a second
PLAIN_EVERY = 5.0  # watch without a terminal: one line every this many seconds
TERMINAL = ("succeeded", "failed", "cancelled")


class ClientError(Exception):
    """Reported as `error: ...` on stderr; `code` is the exit status."""

    def __init__(self, message: str, code: int = 1, lines: list[str] | None = None):
        super().__init__(message)
        self.code = code
        self.lines = lines or []


class Client:
    """A thin wrapper over the service's HTTP API that turns failures into ClientError."""

    def __init__(self, url: str, token: str | None = None):
        self.base = url.rstrip("/")
        self.session = requests.Session()
        token = token or os.environ.get("CONVTRAIN_TOKEN")
        if token:
            self.session.headers["Authorization"] = f"Bearer {token}"

    def request(self, method: str, path: str, **kwargs) -> requests.Response:
        url = self.base + path
        kwargs.setdefault("timeout", TIMEOUT)
        try:
            response = self.session.request(method, url, **kwargs)
        except requests.exceptions.ConnectionError as exc:
            raise ClientError(f"cannot connect to the convtrain service at {self.base} "
                              f"(is `convtrain serve` running there? set --url or CONVTRAIN_URL): "
                              f"{_reason(exc)}", code=2) from None
        except requests.exceptions.Timeout:
            raise ClientError(f"the convtrain service at {self.base} did not answer within {TIMEOUT} s", code=2) from None
        except requests.exceptions.RequestException as exc:
            raise ClientError(f"request to {url} failed: {exc}", code=2) from None
        if response.status_code >= 400:
            raise problem_error(response)
        return response

    def json(self, method: str, path: str, **kwargs) -> Any:
        response = self.request(method, path, **kwargs)
        try:
            return response.json()
        except ValueError:
            raise ClientError(f"{method} {path}: the service answered {response.status_code} "
                              f"with a body that is not JSON") from None

    def job(self, job_id: str) -> dict:
        return self.json("GET", f"/v1/jobs/{quote(job_id, safe='')}")


def _reason(exc: Exception) -> str:
    """The innermost reason of a connection error, e.g. `Connection refused`."""
    text = str(exc)
    match = re.search(r"\[Errno -?\d+\] ([^'\")\]]+)", text)
    return match.group(1).strip() if match else text


def problem_error(response: requests.Response) -> ClientError:
    """An error response (application/problem+json, or anything else) as a ClientError."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        text = (response.text or "").strip().splitlines()
        return ClientError(f"{response.status_code} {response.reason}" + (f": {text[0][:200]}" if text else ""))
    title = body.get("title") or f"{response.status_code} {response.reason}"
    detail = body.get("detail")
    lines = []
    for e in body.get("errors") or []:
        if isinstance(e, dict):
            lines.append(f"  {e.get('path')}: {e.get('message')}" if e.get("path") else f"  {e.get('message')}")
        else:
            lines.append(f"  {e}")
    return ClientError(f"{title}: {detail}" if detail else title, lines=lines)


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

def _read_request(path: str) -> Any:
    """The body FILE stands for (service/spec/request_body.py), as a ClientError when it cannot be read."""
    try:
        return read_body(path, Config(), demo_budget=True)
    except InvalidSpec as exc:
        raise ClientError(exc.errors[0].message) from None


def submit(client: Client, args) -> int:
    body = _read_request(args.file)
    job = client.json("POST", "/v1/jobs", json=body)
    print(job["id"], flush=True)
    if getattr(args, "wait", False):
        return watch(client, job["id"])
    return 0


def status(client: Client, args) -> int:
    print(summary(client.job(args.id)))
    return 0


def watch(client: Client, job_id: str, *, out=None) -> int:
    """Follow the job until it ends: 0 when it succeeded, 1 when it failed or was cancelled."""
    out = out or sys.stderr
    tty = out.isatty()
    width = 0
    last_plain = 0.0
    last_line = None
    while True:
        job = client.job(job_id)
        line = progress_line(job)
        done = job.get("status") in TERMINAL
        if tty:
            out.write("\r" + line + " " * max(0, width - len(line)))
            out.flush()
            width = len(line)
        elif done or (line != last_line and time.monotonic() - last_plain >= PLAIN_EVERY):
            print(line, file=out, flush=True)
            last_plain, last_line = time.monotonic(), line
        if done:
            break
        time.sleep(POLL_SECONDS)
    if tty:
        out.write("\n")
        out.flush()
    if job["status"] == "succeeded":
        print(f"job {job_id} succeeded")
        print("\n".join(_result_lines(job.get("result") or {})))
        return 0
    if job["status"] == "failed":
        print(f"job {job_id} failed: {_error_line(job.get('error'))}")
    else:
        print(f"job {job_id} was cancelled at {(job.get('progress') or {}).get('examples_seen', 0):,} examples")
    return 1


def listing(client: Client, args) -> int:
    params = {"limit": args.limit}
    if args.status:
        params["status"] = args.status
    page = client.json("GET", "/v1/jobs", params=params)
    rows = [("ID", "NAME", "STATUS", "PROGRESS", "TEST_ACC", "CREATED")]
    for job in page.get("jobs", []):
        result = job.get("result") or {}
        rows.append((job["id"], job.get("name") or "-", job.get("status") or "?", _progress(job),
                     number(result.get("test_acc"), 4), _when(job.get("created_at"))))
    if len(rows) == 1:
        print("no jobs" + (f" with status {args.status}" if args.status else ""))
        return 0
    widths = [max(len(r[c]) for r in rows) for c in range(len(rows[0]))]
    for r in rows:
        print("  ".join(f"{cell:<{w}}" for cell, w in zip(r, widths)).rstrip())
    if page.get("next"):
        print(f"(more jobs: raise --limit above {args.limit})")
    return 0


def cancel(client: Client, args) -> int:
    job = client.json("POST", f"/v1/jobs/{quote(args.id, safe='')}/cancel")
    print(f"job {job['id']}: {job.get('status_detail') or job.get('status')}")
    return 0


def _filename(response: requests.Response) -> str | None:
    """The file name a Content-Disposition header suggests, reduced to a safe base name."""
    header = response.headers.get("Content-Disposition") or ""
    match = re.search(r"filename\*\s*=\s*[^']*'[^']*'([^;]+)", header)
    name = unquote(match.group(1).strip()) if match else None
    if name is None:
        match = re.search(r'filename\s*=\s*"([^"]*)"', header) or re.search(r"filename\s*=\s*([^;]+)", header)
        name = match.group(1).strip() if match else None
    if not name:
        return None
    name = Path(name.replace("\\", "/")).name
    return name if name not in ("", ".", "..") else None


def download(client: Client, args) -> int:
    job_id = args.id
    fmt = getattr(args, "format", None) or "pt"
    response = client.request("GET", f"/v1/jobs/{quote(job_id, safe='')}/model", params={"format": fmt}, stream=True)
    path = Path(args.output or _filename(response) or f"model-{job_id}.{fmt}")
    written = 0
    try:
        with open(path, "wb") as f:
            for chunk in response.iter_content(1 << 16):
                f.write(chunk)
                written += len(chunk)
    except OSError as exc:
        raise ClientError(f"cannot write {path}: {exc.strerror or exc}") from None
    print(f"wrote {path} ({written:,} bytes)")
    return 0


COMMANDS = {"submit": submit, "status": status, "list": listing, "cancel": cancel, "download": download,
            "watch": lambda client, args: watch(client, args.id)}


def call(command, args, interrupted: str = "interrupted") -> int:
    """Run `command(client, args)`; print errors as `error: ...` on stderr and return the exit code."""
    client = Client(args.url)
    try:
        return command(client, args)
    except ClientError as exc:
        print(f"error: {exc}", file=sys.stderr)
        for line in exc.lines:
            print(line, file=sys.stderr)
        return exc.code
    except KeyboardInterrupt:
        print(interrupted, file=sys.stderr)
        return 130


def run(args) -> int:
    """Run one client command."""
    return call(COMMANDS[args.command], args)
