"""`python -m worker train|run ...`: the commands that need torch, which `convtrain` starts by module name
so that nothing in service/ imports worker/ (`convtrain train` and `convtrain worker` land here)."""

from __future__ import annotations

import argparse
import sys

from service.config import Config


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m worker", description="convtrain's torch side.")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    c = sub.add_parser("train", prog="convtrain train", help="train a job request in this process (no Redis needed)")
    c.add_argument("file")
    c.add_argument("--examples", type=int, help="override the budget: examples seen")
    c.add_argument("--data-dir", help="folder holding <dataset>/ files (default CONVTRAIN_DATA_DIR)")
    c.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    c.add_argument("--seed", type=int)
    c.add_argument("--threads", type=int, help="torch threads (default: CONVTRAIN_TORCH_THREADS or all cores)")
    c.add_argument("--json-out", help="write the result summary as JSON to this file")

    c = sub.add_parser("worker", prog="convtrain worker", help="run a training worker, against CONVTRAIN_REDIS_URL")
    c.add_argument("--queues", help="comma-separated: cpu, gpu, auto (default by device)")
    c.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    c.add_argument("--concurrency", type=int, default=1, choices=(1,),
                   help="jobs at once: 1 (torch's RNG is per process; run more worker processes instead)")
    c.add_argument("--name", help="worker name (default worker-<host>-<pid>)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    config = Config.from_env()
    if args.command == "train":
        from worker.train_cmd import run

        return run(args, config)
    if not config.redis_url:
        print("convtrain worker: set CONVTRAIN_REDIS_URL (or use `convtrain serve`)", file=sys.stderr)
        return 2
    from worker.app import main as worker_main

    worker_main(config, config.redis_url, queues=args.queues, device=args.device,
                concurrency=args.concurrency, name=args.name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
