"""Several jobs at once on one device: examples/second of each job and of all of them together.

A convtrain worker trains one job per process (DESIGN.md: one worker process per GPU, one per core on
a CPU), so K jobs at once are K processes sharing the device. For each K this starts K processes
that each train a whole `worker.trainer.Training.run` of the same network (net A by default, batch
20, as in bench/train_throughput.py), released together after their warm-up, and prints each job's
examples/second, their sum, and the sum against one job alone. On a GPU this says how many workers
one card can feed; on a CPU, how the cores share.

    python bench/concurrent_jobs.py [--device cuda] [--jobs 1,2,4] [--examples 20000] [--threads 1] [--net net1]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch

from train_throughput import NETS, default_data_dir, run_engine

from worker import data
from worker.trainer import resolve_device


def _job(net: str, examples: int, warmup: int, seed: int, data_dir: Path, device: str, threads: int,
         start, results) -> None:
    torch.set_num_threads(threads)
    dev = resolve_device(device)
    data.load("mnist", data_dir, device=dev, validation_fraction=0.1)
    run_engine(net, warmup, seed, data_dir, dev)  # kernel selection, allocator pools, CUDA context
    start.wait()
    results.put(run_engine(net, examples, seed, data_dir, dev))


def run(k: int, args) -> list[float]:
    """Examples/second of each of k jobs trained at once."""
    ctx = mp.get_context("spawn")  # no fork after torch (and CUDA) are loaded
    start, results = ctx.Barrier(k), ctx.Queue()
    procs = [ctx.Process(target=_job, args=(args.net, args.examples, args.warmup, args.seed + i, args.data_dir,
                                            args.device, args.threads, start, results)) for i in range(k)]
    for p in procs:
        p.start()
    rates = [results.get() for _ in procs]
    for p in procs:
        p.join()
        if p.exitcode:
            raise SystemExit(f"a job process exited with {p.exitcode}")
    return rates


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (default auto)")
    p.add_argument("--jobs", default="1,2", help="numbers of jobs at once, comma-separated (default 1,2)")
    p.add_argument("--examples", type=int, default=20_000, help="examples per job (default 20000)")
    p.add_argument("--warmup", type=int, default=1_000, help="untimed examples per job first")
    p.add_argument("--threads", type=int, default=1, help="torch threads per job (default 1)")
    p.add_argument("--net", default="net1", choices=sorted(NETS))
    p.add_argument("--data-dir", type=Path, default=default_data_dir())
    p.add_argument("--seed", type=int, default=1)
    args = p.parse_args(argv)
    device = resolve_device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"{os.cpu_count()} CPUs"
    print(f"{NETS[args.net].stem}, batch 20, {args.examples} examples per job, device {device} ({name}), "
          f"{args.threads} thread(s) per job, torch {torch.__version__}", flush=True)
    started = time.perf_counter()
    alone = None
    for k in (int(j) for j in args.jobs.split(",")):
        rates = run(k, args)
        total = sum(rates)
        alone = alone or (total if k == 1 else None)
        versus = f", {total / alone:.2f}x one job alone" if alone else ""
        print(f"  {k} job(s) at once: each {statistics.median(rates):8.0f} ex/s (median; "
              f"{min(rates):.0f}-{max(rates):.0f}), together {total:8.0f} ex/s{versus}", flush=True)
    print(f"bench wall time {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
