"""`convtrain train FILE`: train a job request in this process, with no Redis and no service.

FILE is a job request (JSON) or a ConvNetJS demo paste (`.js`, trained for
30,000 examples unless --examples says otherwise). The run reports a progress
bar on a terminal, then a result table on stdout, and optionally the result as
JSON (--json-out).
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import TextIO

from service.config import Config
from service.spec.datasets import DatasetError
from service.spec.netspec import InvalidSpec
from service.spec.request_body import read_body
from service.spec.schemas import load_job_request
from service.text import bar, duration, examples_count, metric_words, number

RESULT_KEYS = ("examples_seen", "train_acc", "val_acc", "test_acc", "class_loss", "l2_loss",
               "examples_per_second", "seconds")


class CommandError(Exception):
    """A problem to report as one line on stderr, exit status 1."""


def _set_threads(threads: int | None) -> None:
    import torch

    if threads is None:
        raw = os.environ.get("CONVTRAIN_TORCH_THREADS")
        if not raw:
            return  # torch's own default
        try:
            threads = int(raw)
        except ValueError:
            raise CommandError(f"CONVTRAIN_TORCH_THREADS={raw!r} is not a whole number") from None
    if threads < 1:
        raise CommandError(f"--threads must be at least 1, got {threads}")
    torch.set_num_threads(threads)


def _device(arg: str | None, request: dict) -> str:
    """--device wins; with auto, the request's own device (gpu means cuda)."""
    if arg and arg != "auto":
        return arg
    wanted = request.get("device", "auto")
    return "cuda" if wanted == "gpu" else wanted


# --- output ---------------------------------------------------------------------

def progress_line(point: dict, total: int | None, seconds_budget: float | None = None,
                  rate: float | None = None) -> str:
    """`[#####.....] 12,300/30,000 examples  loss 0.231  acc 0.93  val 0.95  ETA 3s`.

    `rate` (examples/s) estimates the ETA; by default the point's own rate.
    """
    seen = int(point.get("examples") or 0)
    rate = rate or point.get("examples_per_second") or 0
    if total:
        fraction = min(1.0, seen / total)
        eta = (total - seen) / rate if rate else None
    else:
        elapsed = float(point.get("seconds") or 0)
        fraction = min(1.0, elapsed / seconds_budget) if seconds_budget else 0.0
        eta = max(0.0, seconds_budget - elapsed) if seconds_budget else None
    parts = [f"{bar(fraction)} {examples_count(seen, total)}", *metric_words(point)]
    parts.append(f"ETA {duration(eta)}")
    return "  ".join(parts)


def result_table(result: dict) -> str:
    rows = [
        ("examples seen", f"{result['examples_seen']:,}"),
        ("train acc", number(result.get("train_acc"), 4)),
        ("val acc", number(result.get("val_acc"), 4)),
        ("test acc", number(result.get("test_acc"), 4)),
    ]
    if result.get("test_acc_crops") is not None:
        rows.append(("test acc (crops)", number(result["test_acc_crops"], 4)))
    rows += [
        ("class loss", number(result.get("class_loss"), 4)),
        ("L2 loss", number(result.get("l2_loss"), 4)),
        ("examples/s", f"{result.get('examples_per_second') or 0:,.1f}"),
        ("seconds", f"{result.get('seconds') or 0:,.1f}"),
    ]
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)


class ProgressBar:
    """One line on a terminal, redrawn with \\r at most ~10 times a second."""

    def __init__(self, stream: TextIO, total: int | None, seconds_budget: float | None):
        self.stream, self.total, self.seconds_budget = stream, total, seconds_budget
        self.width = 0
        self.last = 0.0
        self.drawn = False
        self.rate: float | None = None  # smoothed examples/s, so the ETA does not jump

    def __call__(self, point: dict) -> None:
        now = time.monotonic()
        rate = point.get("examples_per_second")
        if rate:
            self.rate = rate if self.rate is None else 0.7 * self.rate + 0.3 * rate
        final = self.total is not None and point.get("examples", 0) >= self.total
        if not final and now - self.last < 0.1:
            return
        self.last = now
        line = progress_line(point, self.total, self.seconds_budget, self.rate)
        pad = max(0, self.width - len(line))
        self.stream.write("\r" + line + " " * pad)
        self.stream.flush()
        self.width = len(line)
        self.drawn = True

    def close(self) -> None:
        if self.drawn:
            self.stream.write("\n")
            self.stream.flush()
            self.drawn = False


# --- the command ------------------------------------------------------------------

def run(args, config: Config) -> int:
    """Validate, train and report; 0 on success, 1 on any error (printed as one line, or one per field)."""
    try:
        body = read_body(args.file, config, demo_budget=True)
        if isinstance(body, dict):
            body = dict(body)
            if args.examples is not None:
                body["budget"] = {"examples": args.examples}
            if args.seed is not None:
                body["seed"] = args.seed
        request, network = load_job_request(body, config)
    except InvalidSpec as exc:
        for e in exc.errors:
            print(f"{e.path}: {e.message}" if e.path else e.message, file=sys.stderr)
        return 1

    bar = None
    try:
        _set_threads(args.threads)
        from worker.trainer import Diverged, Hooks, Training

        data_dir = args.data_dir or config.data_path
        try:
            training = Training(request, network, data_dir=data_dir, device=_device(args.device, request))
            budget = request["budget"]
            seconds_budget = float(budget["seconds"]) if "seconds" in budget else None
            if sys.stderr.isatty():
                bar = ProgressBar(sys.stderr, training.examples_total, seconds_budget)
            result = training.run(Hooks(on_metrics=bar))
        except DatasetError as exc:
            raise CommandError(_one_line(exc)) from None
        except Diverged as exc:
            raise CommandError(f"training diverged: {exc}") from None
        except ValueError as exc:  # an unknown or absent device
            raise CommandError(str(exc)) from None
    except CommandError as exc:
        if bar:
            bar.close()
        print(f"convtrain train: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        if bar:
            bar.close()
        print("convtrain train: interrupted", file=sys.stderr)
        return 130
    if bar:
        bar.close()

    name = request.get("name") or Path(args.file).stem
    print(f"{name}: trained on {training.device} ({network.params:,} parameters)")
    print(result_table(result))
    if args.json_out:
        summary = {k: result.get(k) for k in RESULT_KEYS}
        if "test_acc_crops" in result:
            summary["test_acc_crops"] = result["test_acc_crops"]
        try:
            Path(args.json_out).write_text(json.dumps(summary, indent=2) + "\n")
        except OSError as exc:
            print(f"convtrain train: cannot write {args.json_out}: {exc.strerror or exc}", file=sys.stderr)
            return 1
    return 0


def _one_line(exc: Exception) -> str:
    """The first line of an error message (download failures append torchvision's multi-line report)."""
    text = str(exc).strip()
    first = text.splitlines()[0] if text else type(exc).__name__
    return first.rstrip(":; ")
