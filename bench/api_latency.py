"""API latency under load, with a worker training at the same time.

Starts a real service on loopback: an embedded redis-server, one `convtrain worker`
process (training a long net1 job during the whole measurement) and the API under
gunicorn (gevent, as `convtrain serve` runs it; --worker-class gthread to compare). Then --clients threads poll GET /v1/jobs/{id} and --submitters
threads POST small jobs at a low rate; prints requests/second and p50/p90/p99
latency of each. Goal: poll p99 < 20 ms at 50 clients.

The load generator runs on the same machine as gunicorn, the worker and Redis, so on
a small machine it competes with them for CPU; the CPU share of each is printed.

    python bench/api_latency.py [--clients 50] [--seconds 10] [--interval 0.25]
                                [--configs 2x16,1x16,4x4,2x16:10] [--repeat 2] [--server-times]

Everything it starts is stopped at the end (the jobs cancelled, children SIGTERMed,
Redis stopped, its temporary folder removed).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import requests
from redis.exceptions import RedisError

from service.cli.embedded import EmbeddedRedis, free_port
from service.lifecycle import TERMINAL
from service.store.jobs import JobNotFound, JobStore
from service.store.workers import Workers
from service.cli.serve import gunicorn_args

try:
    import psutil  # optional: only for the CPU share of each process
except ImportError:  # pragma: no cover
    psutil = None

HOST = "127.0.0.1"


def default_data_dir() -> Path:
    return Path(os.environ.get("CONVTRAIN_DATA_DIR") or ROOT.parent / "shared" / "data")


def job_body(examples: int, name: str) -> dict:
    body = json.loads((ROOT / "examples" / "net1-default.json").read_text())
    body["budget"] = {"examples": examples}
    body["name"] = name
    body["device"] = "cpu"
    return body


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile of an ascending list (q in 0..100)."""
    if not sorted_values:
        return float("nan")
    k = max(0, min(len(sorted_values) - 1, round(q / 100 * len(sorted_values) + 0.5) - 1))
    return sorted_values[k]


# --- processes ------------------------------------------------------------------------

def stop_process(proc: subprocess.Popen | None, timeout: float = 20.0) -> None:
    """SIGTERM, then SIGKILL if it has not exited within `timeout`."""
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def start_worker(env: dict, folder: Path, store: JobStore, name: str = "bench-worker") -> subprocess.Popen:
    log_path = folder / f"{name}.log"
    with open(log_path, "ab") as log:
        proc = subprocess.Popen([sys.executable, "-m", "worker", "worker", "--name", name, "--device", "cpu"],
                                env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=ROOT)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            break
        if name in Workers(store.r).names() and b" ready." in log_path.read_bytes():
            return proc
        time.sleep(0.1)
    stop_process(proc)
    raise RuntimeError(f"worker did not start: {log_path.read_text()[-3000:]}")


def start_service(folder: Path, data_dir: Path) -> tuple[EmbeddedRedis, JobStore, dict, subprocess.Popen]:
    """A redis-server and one worker on it; the caller stops both (stop_process, redis_server.stop)."""
    redis_server = EmbeddedRedis(folder / "redis")
    url = redis_server.start()
    store = JobStore.from_url(url)
    env = {**os.environ, "CONVTRAIN_REDIS_URL": url, "CONVTRAIN_HOME": str(folder / "home"),
           "CONVTRAIN_DATA_DIR": str(data_dir), "PYTHONUNBUFFERED": "1"}
    try:
        return redis_server, store, env, start_worker(env, folder, store)
    except Exception:
        redis_server.stop()
        raise


def start_api(env: dict, folder: Path, port: int, processes: int, threads: int,
              access_log: Path | None = None, worker_class: str = "gevent") -> subprocess.Popen:
    log_path = folder / f"api-{worker_class}-{processes}x{threads}.log"
    args = gunicorn_args(HOST, port, processes, threads, worker_class)
    if access_log:
        # %(D)s: microseconds from the request parsed to the response written, inside gunicorn.
        args[-1:-1] = ["--access-logfile", str(access_log), "--access-logformat", "%(m)s %(s)s %(D)s"]
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(args, env=env, stdout=log,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=ROOT)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            break
        try:
            if requests.get(f"http://{HOST}:{port}/healthz", timeout=1).status_code == 200:
                return proc
        except requests.RequestException:
            pass
        time.sleep(0.1)
    stop_process(proc)
    raise RuntimeError(f"gunicorn did not start: {log_path.read_text()[-3000:]}")


def server_times(access_log: Path, client_polls: list[float]) -> dict:
    """Percentiles (ms) of gunicorn's own time for the GETs, over as many of the last ones as the client recorded."""
    times = []
    for line in access_log.read_text().splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[0] == "GET" and parts[1] == "200":
            times.append(int(parts[2]) / 1000)
    times = times[-len(client_polls):] if client_polls else []  # the window is the end of the run, roughly
    times.sort()
    return {f"p{q}": percentile(times, q) for q in (50, 90, 99)}


class CpuMeter:
    """CPU seconds used by groups of processes over a window; a group is (pids, include their children)."""

    def __init__(self, groups: dict[str, tuple[list[int], bool]]):
        self.groups = groups
        self.start = self._sample()
        self.t0 = time.perf_counter()

    def _sample(self) -> dict[str, float]:
        out = {}
        for name, (pids, children) in self.groups.items():
            total = 0.0
            for pid in pids:
                try:
                    p = psutil.Process(pid)
                    for q in [p, *(p.children(recursive=True) if children else ())]:
                        t = q.cpu_times()
                        total += t.user + t.system
                except psutil.Error:
                    pass
            out[name] = total
        return out

    def shares(self) -> dict[str, float]:
        """Each group's CPU use since construction, in cores (1.0 = one core busy)."""
        end, wall = self._sample(), time.perf_counter() - self.t0
        return {name: (end[name] - self.start[name]) / wall for name in self.groups}


# --- load -------------------------------------------------------------------------------------

class Load:
    """Pollers and submitters against one API; latencies recorded inside the measurement window only."""

    def __init__(self, base: str, job_id: str, args):
        self.base, self.job_id, self.args = base, job_id, args
        self.lock = threading.Lock()
        self.lat = {"poll": [], "submit": []}
        self.errors = {"poll": 0, "submit": 0}
        self.submitted: list[str] = []
        now = time.perf_counter()
        self.measure_from = now + args.warmup
        self.until = self.measure_from + args.seconds

    def _record(self, kind: str, t0: float, t1: float, ok: bool) -> None:
        if t0 < self.measure_from or t1 > self.until:
            return
        with self.lock:
            if ok:
                self.lat[kind].append(t1 - t0)
            else:
                self.errors[kind] += 1

    def _paced(self, interval: float, fn) -> None:
        # Fixed-rate schedule with a random phase; a late request does not cause a burst of catch-ups.
        next_t = time.perf_counter() + random.uniform(0, interval)
        while True:
            if interval:
                delay = next_t - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
                next_t = max(next_t + interval, time.perf_counter())
            if time.perf_counter() >= self.until:
                return
            fn()

    def poller(self) -> None:
        session = requests.Session()
        url = f"{self.base}/v1/jobs/{self.job_id}"

        def once():
            t0 = time.perf_counter()
            try:
                r = session.get(url, timeout=10)
                ok = r.status_code == 200 and r.json()["id"] == self.job_id
            except (requests.RequestException, ValueError):
                ok = False
            self._record("poll", t0, time.perf_counter(), ok)

        self._paced(self.args.interval, once)

    def submitter(self, n: int) -> None:
        session = requests.Session()
        url = f"{self.base}/v1/jobs"
        body = job_body(self.args.small_examples, "bench-small")

        def once():
            t0 = time.perf_counter()
            try:
                r = session.post(url, json=body, timeout=10)
                ok = r.status_code == 202
                if ok:
                    with self.lock:
                        self.submitted.append(r.json()["id"])
            except (requests.RequestException, ValueError):
                ok = False
            self._record("submit", t0, time.perf_counter(), ok)

        self._paced(n / self.args.submit_rate if self.args.submit_rate else 1.0, once)

    def run(self, meter_groups: dict[str, tuple[list[int], bool]] | None = None, progress=None) -> dict:
        """Run the load; also the CPU use of `meter_groups` and the worker's pace (`progress`) in the window."""
        threads = [threading.Thread(target=self.poller, daemon=True) for _ in range(self.args.clients)]
        threads += [threading.Thread(target=self.submitter, args=(self.args.submitters,), daemon=True)
                    for _ in range(self.args.submitters if self.args.submit_rate else 0)]
        for t in threads:
            t.start()
        time.sleep(max(0.0, self.measure_from - time.perf_counter()))
        meter = CpuMeter(meter_groups) if meter_groups and psutil else None
        seen0, t0 = (progress(), time.perf_counter()) if progress else (None, None)
        time.sleep(max(0.0, self.until - time.perf_counter()))
        worker_rate = (progress() - seen0) / (time.perf_counter() - t0) if progress else None
        cpu = meter.shares() if meter else {}
        for t in threads:
            t.join(self.args.warmup + self.args.seconds + 30)
        out = {"cpu": cpu, "worker_rate": worker_rate}
        for kind, values in self.lat.items():
            values.sort()
            out[kind] = {
                "n": len(values), "errors": self.errors[kind], "rps": len(values) / self.args.seconds,
                **{f"p{q}": percentile(values, q) * 1000 for q in (50, 90, 99)},
                "max": (values[-1] * 1000) if values else float("nan"),
            }
        return out


# --- main ----------------------------------------------------------------------------

def parse_configs(text: str, nice: int) -> list[tuple[int, int, int]]:
    """PROCESSESxTHREADS[:NICE],... to (processes, threads, worker nice) triples."""
    out = []
    for item in text.split(","):
        head, _, n = item.strip().partition(":")
        p, _, t = head.partition("x")
        out.append((int(p), int(t), int(n) if n else nice))
    return out


def label(cfg: tuple[int, int, int]) -> str:
    return f"{cfg[0]}x{cfg[1]}" + (f":{cfg[2]}" if cfg[2] else "")


def renice(pid: int, value: int) -> None:
    """Set the nice value of every thread of `pid` and its children (Linux: nice is per thread)."""
    procs = [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)] if psutil else []
    for proc in procs:
        for tid in os.listdir(f"/proc/{proc.pid}/task"):
            try:
                os.setpriority(os.PRIO_PROCESS, int(tid), value)
            except ProcessLookupError:
                pass


def examples_seen(store: JobStore, job_id: str) -> int:
    return store.get(job_id)["progress"]["examples_seen"]


def ensure_long_job(store: JobStore, base: str, long_jobs: list[str], args) -> str:
    """The running long job, replaced by a fresh one when it would not last through the next window."""
    job_id = long_jobs[-1] if long_jobs else None
    if job_id is not None:
        job = store.get(job_id)
        rate = (job.get("metrics") or {}).get("examples_per_second") or 10_000
        left = (job["progress"]["examples_total"] or 0) - job["progress"]["examples_seen"]
        if job["status"] in TERMINAL or left < 2 * rate * (args.warmup + args.seconds + 5):
            store.cancel(job_id)
            job_id = None
    if job_id is None:
        r = requests.post(f"{base}/v1/jobs", json=job_body(args.job_examples, "bench-long"), timeout=10)
        r.raise_for_status()
        job_id = r.json()["id"]
        long_jobs.append(job_id)
    deadline = time.monotonic() + 120
    while True:
        job = store.get(job_id)
        if job["status"] == "running" and job["progress"]["examples_seen"] > 0:
            return job_id
        if time.monotonic() > deadline:
            raise RuntimeError(f"the long job did not start training: {job['status']}")
        time.sleep(0.2)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--clients", type=int, default=50, help="polling clients (threads), default 50")
    p.add_argument("--seconds", type=float, default=10.0, help="measurement window per config (default 10)")
    p.add_argument("--warmup", type=float, default=2.0, help="load before the window, not recorded (default 2)")
    p.add_argument("--interval", type=float, default=0.25,
                   help="seconds between one client's polls (default 0.25, a progress bar's pace); "
                        "0 = closed loop, as fast as possible")
    p.add_argument("--submitters", type=int, default=2, help="submitting clients (default 2)")
    p.add_argument("--submit-rate", type=float, default=2.0, help="submits per second, all submitters (default 2)")
    p.add_argument("--small-examples", type=int, default=2_000, help="budget of each submitted job")
    p.add_argument("--job-examples", type=int, default=200_000, help="budget of the long job the worker trains")
    p.add_argument("--processes", type=int, default=2, help="gunicorn processes (default 2)")
    p.add_argument("--threads", type=int, default=16, help="gunicorn threads per process, gthread only (default 16)")
    p.add_argument("--worker-class", default="gevent", choices=("gevent", "gthread"),
                   help="gunicorn worker class (default gevent, as convtrain serve runs it)")
    p.add_argument("--worker-nice", type=int, default=0, help="nice value of the training worker (default 0)")
    p.add_argument("--configs", help="several settings to compare, PROCESSESxTHREADS[:WORKER_NICE],...: "
                                     "e.g. 1x16,2x16,4x4 or 2x16:0,2x16:10")
    p.add_argument("--server-times", action="store_true",
                   help="also log gunicorn's own request time (access log %%(D)s) and print its percentiles")
    p.add_argument("--repeat", type=int, default=1, help="passes over the configs, alternating their order")
    p.add_argument("--data-dir", type=Path, default=default_data_dir())
    p.add_argument("--keep", action="store_true", help="keep the temporary folder (logs)")
    args = p.parse_args(argv)
    configs = parse_configs(args.configs or f"{args.processes}x{args.threads}", args.worker_nice)

    folder = Path(tempfile.mkdtemp(prefix="convtrain-api-bench-"))
    api = None
    long_jobs: list[str] = []
    small_jobs: list[str] = []
    results: list[tuple[tuple[int, int], dict]] = []
    redis_server, store, env, worker = start_service(folder, args.data_dir)
    try:
        port = free_port()
        base = f"http://{HOST}:{port}"
        print(f"{os.cpu_count()} CPUs; {args.clients} pollers every {args.interval or 'no'} s"
              f"{'' if args.interval else ' (closed loop)'}, {args.submitters} submitters at {args.submit_rate}/s "
              f"in total; {args.seconds:g} s measured after {args.warmup:g} s warm-up per config; "
              f"worker training net1 ({args.job_examples} examples) throughout", flush=True)

        order = []
        for rep in range(args.repeat):
            order += configs if rep % 2 == 0 else configs[::-1]
        idle_rate = None
        for n, cfg in enumerate(order):
            processes, threads, nice = cfg
            if psutil or nice:
                renice(worker.pid, nice)  # raising the priority back to 0 needs root (CAP_SYS_NICE)
            access_log = folder / f"access-{n}.log" if args.server_times else None
            api = start_api(env, folder, port, processes, threads, access_log, args.worker_class)
            try:
                job_id = ensure_long_job(store, base, long_jobs, args)
                if idle_rate is None:  # the worker's pace with no API load, for comparison
                    seen0, t0 = examples_seen(store, job_id), time.perf_counter()
                    time.sleep(3.0)
                    idle_rate = (examples_seen(store, job_id) - seen0) / (time.perf_counter() - t0)
                groups = {"load generator": ([os.getpid()], False), "gunicorn": ([api.pid], True),
                          "worker": ([worker.pid], True), "redis": ([redis_server.process.pid], False)}
                load = Load(base, job_id, args)
                out = load.run(groups, progress=lambda job=job_id: examples_seen(store, job))
                # Cancel the small jobs at once, so they never queue up ahead of the next long job.
                for small in load.submitted:
                    store.cancel(small)
                small_jobs += load.submitted
                if access_log:
                    stop_process(api)  # flushes the access log
                    out["server"] = server_times(access_log, load.lat["poll"])
                results.append((cfg, out))
                po, su = out["poll"], out["submit"]
                print(f"  {label(cfg):8s} polls {po['rps']:7.1f}/s p50 {po['p50']:6.1f} p90 {po['p90']:6.1f} "
                      f"p99 {po['p99']:6.1f} ms ({po['errors']} errors) | submits {su['rps']:5.2f}/s "
                      f"p50 {su['p50']:6.1f} p99 {su['p99']:6.1f} ms | worker {out['worker_rate']:.0f} ex/s", flush=True)
            finally:
                stop_process(api)
                api = None
        report(results, configs, args, idle_rate)
        return 0
    finally:
        stop_process(api)
        for job_id in long_jobs + small_jobs:
            try:
                store.cancel(job_id)
            except (RedisError, JobNotFound) as exc:
                print(f"could not cancel job {job_id}: {exc}", file=sys.stderr)
        # Let the worker see the cancel flag, so it does not checkpoint and requeue on SIGTERM.
        deadline = time.monotonic() + 5
        while long_jobs and time.monotonic() < deadline:
            try:
                if store.get(long_jobs[-1])["status"] in TERMINAL:
                    break
            except (RedisError, JobNotFound):
                break
            time.sleep(0.1)
        stop_process(worker, timeout=30)
        redis_server.stop()
        if args.keep:
            print(f"logs kept in {folder}")
        else:
            shutil.rmtree(folder, ignore_errors=True)


def report(results, configs, args, idle_rate) -> None:
    print()
    print(f"gunicorn worker class {args.worker_class} (threads apply to gthread only); medians over {args.repeat} "
          "pass(es); latencies in ms, measured by the client (includes its own queueing)")
    head = (f"{'config':>8} | {'polls/s':>7} | {'p50':>5} | {'p90':>5} | {'p99':>6} | {'max':>6} | {'err':>3} || "
            f"{'subm/s':>6} | {'p50':>5} | {'p90':>5} | {'p99':>6} || {'worker ex/s':>11}")
    cpu_names = list(results[0][1]["cpu"]) if results and results[0][1]["cpu"] else []
    if cpu_names:
        head += " || CPU cores: " + " / ".join(cpu_names)
    print(head)

    def med(values):
        values = [v for v in values if v is not None and not math.isnan(v)]
        return statistics.median(values) if values else float("nan")

    best = None
    server_lines = []
    for cfg in configs:
        runs = [out for c, out in results if c == cfg]
        if runs and "server" in runs[0]:
            server_lines.append(f"{label(cfg):>8} | " + " | ".join(
                f"p{q} {med([r['server'][f'p{q}'] for r in runs]):5.1f}" for q in (50, 90, 99)))
        po = {k: med([r["poll"][k] for r in runs]) for k in ("rps", "p50", "p90", "p99", "max")}
        su = {k: med([r["submit"][k] for r in runs]) for k in ("rps", "p50", "p90", "p99")}
        errors = sum(r["poll"]["errors"] + r["submit"]["errors"] for r in runs)
        line = (f"{label(cfg):>8} | {po['rps']:7.1f} | {po['p50']:5.1f} | {po['p90']:5.1f} | {po['p99']:6.1f} | "
                f"{po['max']:6.1f} | {errors:>3} || {su['rps']:6.2f} | {su['p50']:5.1f} | {su['p90']:5.1f} | "
                f"{su['p99']:6.1f} || {med([r['worker_rate'] for r in runs]):11.1f}")
        if cpu_names:
            line += " || " + " / ".join(f"{med([r['cpu'][n] for r in runs]):.2f}" for n in cpu_names)
        print(line)
        if best is None or po["p99"] < best[1]:
            best = (cfg, po["p99"])
    if server_lines:
        print("gunicorn's own time for the polls (access log %(D)s, ms; excludes accept-queue and client waits):")
        for line in server_lines:
            print(line)
    print(f"worker without API load: {idle_rate:.0f} ex/s (examples trained per second in the 3 s before the first window)")
    if best:
        verdict = "met" if best[1] < 20 else "NOT met"
        print(f"lowest poll p99: {label(best[0])} (processes x threads[:worker nice]) at {best[1]:.1f} ms; "
              f"goal p99 < 20 ms at {args.clients} clients: {verdict}")


if __name__ == "__main__":
    sys.exit(main())
