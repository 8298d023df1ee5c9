"""What `convtrain sweep --wait` and `convtrain search --wait` share: a live block of lines redrawn in a terminal
(printed now and then otherwise), and the report saved beside the request file when it has ended."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path

from service.cli.jobs import CommandError
from service.client import Search, Sweep
from service.text import duration

REPORTS = ("md", "csv", "png")


def show(resource: Sweep | Search, lines_of: Callable[[dict], list[str]], poll: float, plain_every: float,
         out=None) -> dict:
    """Draw `lines_of(record)` until `resource` has ended (redrawn in place in a terminal; elsewhere printed when
    it changed, at most every `plain_every` seconds, and at the end); return its final record."""
    out = out or sys.stderr
    tty = out.isatty()
    drawn, last_plain, last_lines = 0, 0.0, None
    for record in resource.follow(poll):
        lines = lines_of(record)
        if tty:
            if drawn:
                out.write(f"\x1b[{drawn}F\x1b[J")
            out.write("".join(f"\x1b[2K{line}\n" for line in lines))
            out.flush()
            drawn = len(lines)
        elif resource.ended() or (lines != last_lines and time.monotonic() - last_plain >= plain_every):
            print("\n".join(lines), file=out, flush=True)
            last_plain, last_lines = time.monotonic(), lines
    return resource.record


def save_reports(resource: Sweep | Search, folder: Path, stem: str) -> list[Path]:
    """The report as FOLDER/STEM.md, .csv and .png."""
    paths = []
    for fmt in REPORTS:
        try:
            folder.mkdir(parents=True, exist_ok=True)
            paths.append(resource.report(fmt, folder / f"{stem}.{fmt}"))
        except OSError as exc:
            raise CommandError(f"cannot write {exc.filename or folder}: {exc.strerror or exc}") from None
    return paths


def wait_and_report(created: Sweep | Search, args, follow: Callable[[Sweep | Search], dict], started: float) -> int:
    """Follow `created` to its end, print its md report, save md/csv/png (--out, else beside the request file),
    and say how it ended; the exit status: 0 when it succeeded, else 1."""
    noun = type(created).__name__.lower()
    final = follow(created)
    wall = time.monotonic() - started
    print(created.report("md").decode())
    folder = Path(args.out) if args.out else Path(args.file).resolve().parent
    for path in save_reports(created, folder, Path(args.file).stem):
        print(f"wrote {path}", file=sys.stderr)
    print(f"{noun} {created.id} {final['status']} in {duration(wall)} (this command's wall time)", file=sys.stderr)
    return 0 if final["status"] == "succeeded" else 1
