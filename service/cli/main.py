"""The `convtrain` command: validate, train, run the service, and talk to it."""

from __future__ import annotations

import argparse
import os
import sys

from service.config import Config

DEFAULT_URL = "http://127.0.0.1:8000"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="convtrain", description="Train ConvNetJS-style networks with PyTorch, as a service.")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    c = sub.add_parser("validate", help="check a network spec or job request and show its shapes")
    c.add_argument("file")
    c.add_argument("--json", action="store_true", help="print the machine-readable form")

    c = sub.add_parser("train", help="train a job request in this process (no Redis needed)")
    c.add_argument("file")
    c.add_argument("--examples", type=int, help="override the budget: examples seen")
    c.add_argument("--data-dir", help="folder holding <dataset>/ files (default CONVTRAIN_DATA_DIR)")
    c.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    c.add_argument("--seed", type=int)
    c.add_argument("--threads", type=int, help="torch threads (default: CONVTRAIN_TORCH_THREADS or all cores)")
    c.add_argument("--json-out", help="write the result summary as JSON to this file")

    c = sub.add_parser("token", help="manage API tokens (stored as SHA-256 hashes in CONVTRAIN_TOKENS_FILE)")
    tokens = c.add_subparsers(dest="token_command", required=True, metavar="ACTION")
    t = tokens.add_parser("create", help="print a new token for NAME once and store its hash")
    t.add_argument("name")
    t.add_argument("--admin", action="store_true", help="an admin sees and controls every job")
    t.add_argument("--file", help="the tokens file (default CONVTRAIN_TOKENS_FILE, else <home>/tokens.json)")

    c = sub.add_parser("serve", help="run Redis (embedded unless CONVTRAIN_REDIS_URL), workers and the API")
    c.add_argument("--insecure", action="store_true", help="allow a non-loopback address without tokens")
    c.add_argument("--host", default="127.0.0.1")
    c.add_argument("--port", type=int, default=8000)
    c.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")

    c = sub.add_parser("api", help="run the API under gunicorn, against CONVTRAIN_REDIS_URL")
    c.add_argument("--insecure", action="store_true", help="allow a non-loopback address without tokens")
    c.add_argument("--host", default="127.0.0.1")
    c.add_argument("--port", type=int, default=8000)
    c.add_argument("--processes", type=int, default=2)

    c = sub.add_parser("worker", help="run a training worker, against CONVTRAIN_REDIS_URL")
    c.add_argument("--queues", help="comma-separated: cpu, gpu, auto (default by device)")
    c.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    c.add_argument("--concurrency", type=int, default=1, choices=(1,),
                   help="jobs at once: 1 (torch's RNG is per process; run more worker processes instead)")
    c.add_argument("--name", help="worker name (default worker-<host>-<pid>)")

    for name, help_text in (("submit", "submit a job request"), ("status", "show a job"),
                            ("watch", "follow a job with a progress bar"), ("list", "list jobs"),
                            ("cancel", "cancel a job"), ("download", "download a trained model")):
        c = sub.add_parser(name, help=help_text)
        c.add_argument("--url", default=os.environ.get("CONVTRAIN_URL", DEFAULT_URL), help="the service's base URL")
        if name == "submit":
            c.add_argument("file")
            c.add_argument("--wait", action="store_true", help="follow the job until it ends")
        elif name == "list":
            c.add_argument("--status")
            c.add_argument("--limit", type=int, default=20)
        else:
            c.add_argument("id")
        if name == "download":
            c.add_argument("-o", "--output", help="file to write (default <name>-<id> and the format's suffix)")
            c.add_argument("--format", default="pt", choices=("pt", "safetensors", "torchscript", "onnx", "convnetjs"),
                           help="pt (default), safetensors, torchscript, onnx or convnetjs (ConvNetJS's net JSON)")
    c = sub.add_parser("sweep", help="submit a sweep of variants; with --wait, follow it and save its report")
    c.add_argument("file", help="a sweep request (JSON): base, variants and/or grid, repeats")
    c.add_argument("--wait", action="store_true", help="follow it, print the table, save FILE's stem .md/.csv/.png")
    c.add_argument("--out", help="folder for the report files (default: FILE's folder)")
    c.add_argument("--url", default=os.environ.get("CONVTRAIN_URL", DEFAULT_URL), help="the service's base URL")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    config = Config.from_env()
    if args.command == "validate":
        from service.cli.validate import run

        return run(args.file, args.json, config)
    if args.command == "train":
        from worker.train_cmd import run

        return run(args, config)
    if args.command == "token":
        from service.auth import create

        path = args.file or config.tokens_file or config.home / "tokens.json"
        print(create(path, args.name, admin=args.admin))
        print(f"stored its hash in {path}; this token is shown only now"
              + ("" if config.tokens_file else f" (set CONVTRAIN_TOKENS_FILE={path} to use it)"), file=sys.stderr)
        return 0
    if args.command == "serve":
        from service.cli.serve import run

        return run(config, host=args.host, port=args.port, workers=args.workers, insecure=args.insecure)
    if args.command == "api":
        from service.cli.serve import exec_api

        return exec_api(config, host=args.host, port=args.port, processes=args.processes, insecure=args.insecure)
    if args.command == "worker":
        if not config.redis_url:
            print("convtrain worker: set CONVTRAIN_REDIS_URL (or use `convtrain serve`)", file=sys.stderr)
            return 2
        from worker.app import main as worker_main

        worker_main(config, config.redis_url, queues=args.queues, device=args.device,
                    concurrency=args.concurrency, name=args.name)
        return 0
    if args.command == "sweep":
        from service.cli.sweeps import run as sweep_run

        return sweep_run(args)
    from service.cli import jobs as client_cmd

    return client_cmd.run(args)


