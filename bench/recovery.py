"""How long a SIGKILLed worker's job waits before it trains again on another worker, with the default
lease, heartbeat and reaper settings (service/config.py), over several runs: median and worst.

    .venv/bin/python bench/recovery.py [--runs 5] [--examples 400000]

Starts an embedded redis-server and two workers; each run submits a long job, waits until it trains and
has a checkpoint, SIGKILLs its worker, and times from the kill to the job's `resumed` event (written by
the other worker once it runs the job again), then starts a fresh worker in the killed one's place.
Nothing here is a test: it prints what it measured.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from api_latency import default_data_dir, job_body, start_service, start_worker, stop_process  # noqa: E402
from service.config import Config  # noqa: E402
from service.store.jobs import JobStore  # noqa: E402


def wait(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.01)
    raise RuntimeError(f"{what}: not within {timeout} s")


def one_run(store: JobStore, workers: dict, env: dict, folder: Path, examples: int, run: int) -> float:
    from service.api import create_app

    client = create_app(Config.from_env(env), env["CONVTRAIN_REDIS_URL"]).test_client()
    job_id = client.post("/v1/jobs", json=job_body(examples, f"recovery-{run}")).get_json()["id"]
    wait(lambda: store.status(job_id) == "running" and store.checkpoint_name(job_id), 120, "a checkpoint")
    victim = store.raw(job_id)["worker"]
    killed = time.monotonic()
    os.kill(workers[victim].pid, signal.SIGKILL)
    workers[victim].wait()
    wait(lambda: any(p.get("event") == "resumed" for p in store.points(job_id, 0, None)), 120, "the resume")
    seconds = time.monotonic() - killed
    client.post(f"/v1/jobs/{job_id}/cancel")
    name = f"{victim.split('-r')[0]}-r{run}"
    workers[name] = start_worker(env, folder, store, name)
    del workers[victim]
    return seconds


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--examples", type=int, default=400_000, help="a budget long enough never to finish")
    args = p.parse_args(argv)
    config = Config()
    print(f"defaults: lease {config.lease_seconds:g} s, heartbeat {config.heartbeat_seconds:g} s, "
          f"reaper every {config.reaper_seconds:g} s, checkpoints every {config.checkpoint_seconds:g} s")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        redis_server, store, env, first = start_service(folder, default_data_dir())
        workers = {"bench-worker": first}
        try:
            workers["second"] = start_worker(env, folder, store, "second")
            times = []
            for run in range(args.runs):
                times.append(one_run(store, workers, env, folder, args.examples, run))
                print(f"run {run + 1}: kill to running again {times[-1]:.1f} s", flush=True)
            print(f"\nSIGKILLed worker's job running again on another worker, {len(times)} runs: "
                  f"median {statistics.median(times):.1f} s, worst {max(times):.1f} s, best {min(times):.1f} s")
        finally:
            for proc in workers.values():
                stop_process(proc)
            redis_server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
