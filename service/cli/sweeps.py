"""`convtrain sweep FILE [--wait]`: submit a sweep, follow it with one progress bar per variant, save its report.

Torch-free, through the Python client like the other client commands (service/cli/jobs.py). Exit status: 0 when
the sweep was submitted (and, with --wait, succeeded), 1 when the service refuses it or it fails or is
cancelled, 2 when the service cannot be reached.
"""

from __future__ import annotations

import sys
import time

from service.cli.jobs import call
from service.cli.live import show, wait_and_report
from service.client import Client, Sweep
from service.text import bar, duration, examples_count, number

POLL_SECONDS = 0.5
PLAIN_EVERY = 10.0  # without a terminal: the bars every this many seconds


def variant_line(variant: dict, width: int) -> str:
    """`3x3 kernels  [########............] 36,000/90,000  1/3 done  loss 0.212  acc 0.95  running`."""
    p = variant["progress"]
    count = examples_count(p.get("examples_seen") or 0, p.get("examples_total"), unit="")
    jobs = variant["jobs"]
    done = sum(1 for j in jobs if j["status"] == "succeeded")
    parts = [f"{variant['name']:<{width}}", bar(p.get("fraction")), count,
             f"{done}/{len(jobs)} done"]
    live = next((j for j in jobs if j["status"] == "running" and j.get("metrics")), None)
    if live:
        m = live["metrics"]
        parts.append(f"loss {number(m.get('class_loss'))}  acc {number(m.get('train_acc'), 2)}")
    else:
        tests = [j["result"]["test_acc"] for j in jobs if j.get("result") and j["result"].get("test_acc") is not None]
        if tests:
            parts.append(f"test {sum(tests) / len(tests):.4f}")
    failed = [j for j in jobs if j["status"] == "failed"]
    parts.append(variant["status"] + (f" ({len(failed)} failed)" if failed and variant["status"] == "running" else ""))
    return "  ".join(parts)


def block(sweep: dict) -> list[str]:
    """The sweep's header line and one bar per variant."""
    p = sweep["progress"]
    header = (f"sweep {sweep['id']}  {sweep['name'] or ''}  {sweep['status']}  {p['ended']}/{p['jobs']} jobs ended  "
              f"{duration(sweep.get('wall_seconds'))}").replace("    ", "  ")
    width = max((len(v["name"]) for v in sweep["variants"]), default=0)
    return [header] + [variant_line(v, width) for v in sweep["variants"]]


def follow(sweep: Sweep, out=None) -> dict:
    """Show the bars until every job of the sweep has ended; return the sweep."""
    return show(sweep, block, POLL_SECONDS, PLAIN_EVERY, out)


def sweep(client: Client, args) -> int:
    started = time.monotonic()
    created = client.sweep(args.file)
    print(created.id, flush=True)
    print(f"sweep {created.id}: {len(created.record['variants'])} variants x {created.record['repeats']} repeats = "
          f"{created.record['jobs']} jobs", file=sys.stderr, flush=True)
    return wait_and_report(created, args, follow, started) if args.wait else 0


def run(args) -> int:
    return call(sweep, args, "interrupted; the sweep goes on in the service (POST /v1/sweeps/ID/cancel stops it)")
