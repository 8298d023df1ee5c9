"""`convtrain search FILE [--wait]`: submit an architecture search, follow it in a live table, save its report.

Torch-free, through the Python client like the other client commands (service/cli/jobs.py). Exit status: 0 when
the search was submitted (and, with --wait, succeeded), 1 when the service refuses it or it fails or is cancelled,
2 when the service cannot be reached.
"""

from __future__ import annotations

import sys
import time

from service.cli.jobs import call
from service.cli.live import show, wait_and_report
from service.client import Client, Search
from service.spec.paths import label_keys
from service.text import duration, number

POLL_SECONDS = 1.0
PLAIN_EVERY = 15.0  # without a terminal: the table every this many seconds
SHOWN = 12  # trials the live table lists: the best ones, then the running ones


def _params(params: dict) -> str:
    """`layers[1].filters=16, l2_decay=0.001`: each path by its last field name, unless two share it."""
    names = label_keys(params)
    return ", ".join(f"{names[path].removeprefix('network.')}={number(v) if isinstance(v, float) else v}"
                     for path, v in params.items())


def table(search: dict) -> list[str]:
    """The header line, then the best trials so far and every running one, one line each."""
    p = search["progress"]
    best = search.get("best")
    lines = [f"search {search['id']}  {search['name']}  {search['status']}  trials {p['trials_done']}/"
             f"{search['trials_total']} done, {p['trials_running']} running, {p['pruned']} pruned, {p['invalid']} "
             f"invalid  {p['examples_spent']:,} examples  {duration(p['elapsed_seconds'])}"
             + (f"  best val {best['val_acc']:.4f} test {number(best['test_acc'], 4)}" if best else "")
             + (f" (crops {best['test_acc_crops']:.4f})" if best and best["test_acc_crops"] else "")]
    ranked = sorted(search["trials"], key=lambda t: (t["val_acc"] is None, -(t["val_acc"] or 0)))
    running = [t for t in ranked if t["status"] in ("queued", "running", "paused")]
    shown = running + [t for t in ranked if t not in running][:max(0, SHOWN - len(running))]
    for t in shown:
        val = "" if t["val_acc"] is None else f"{t['val_acc']:.4f}"
        lines.append(f"  #{t['number']:<3} {t['status']:<9} val {val:<6}  {t['examples']:>9,}  "
                     f"{t['architecture']}: {_params(t['params'])}")
    return lines


def follow(search: Search, out=None) -> dict:
    """Show the table until the search has ended; return its final record."""
    return show(search, table, POLL_SECONDS, PLAIN_EVERY, out)


def search(client: Client, args) -> int:
    started = time.monotonic()
    created = client.search(args.file)
    print(created.id, flush=True)
    print(f"search {created.id}: {created.record['trials_total']} trials, {created.record['parallel']} at once",
          file=sys.stderr, flush=True)
    return wait_and_report(created, args, follow, started) if args.wait else 0


def run(args) -> int:
    return call(search, args, "interrupted; the search goes on in the service (POST /v1/searches/ID/cancel stops it)")
