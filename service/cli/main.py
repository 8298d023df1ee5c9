"""The `convtrain` command: validate, train, run the service, and talk to it."""

from __future__ import annotations

import argparse
import os
import sys

from service.config import Config

DEFAULT_URL = "http://127.0.0.1:8000"
WORKER_COMMANDS = {"train": "train a job request in this process (no Redis needed)",
                   "worker": "run a training worker, against CONVTRAIN_REDIS_URL"}


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="convtrain", description="Train ConvNetJS-style networks with PyTorch, as a service.")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    c = sub.add_parser("validate", help="check a network spec or job request and show its shapes")
    c.add_argument("file")
    c.add_argument("--json", action="store_true", help="print the machine-readable form")

    # Listed for --help only: main() hands them to `python -m worker`, which defines their options.
    for name, help_text in WORKER_COMMANDS.items():
        sub.add_parser(name, help=help_text, add_help=False)

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
    c = sub.add_parser("search", help="submit an architecture search; with --wait, follow it and save its report")
    c.add_argument("file", help="a search request (JSON): base, architectures, space, trials, pruner")
    c.add_argument("--wait", action="store_true", help="follow it, print the leaderboard, save FILE's stem .md/.csv/.png")
    c.add_argument("--out", help="folder for the report files (default: FILE's folder)")
    c.add_argument("--url", default=os.environ.get("CONVTRAIN_URL", DEFAULT_URL), help="the service's base URL")
    c = sub.add_parser("dataset", help="upload, list and delete datasets to train on")
    actions = c.add_subparsers(dest="dataset_command", required=True, metavar="ACTION")
    d = actions.add_parser("upload", help="upload a .zip of class folders, an .npz, or up to 4 IDX files as NAME")
    d.add_argument("files", nargs="+", metavar="FILE")
    d.add_argument("--name", required=True, help="a-z, 0-9, '.', '_', '-'; replaces your dataset of that name")
    d.add_argument("--title")
    d.add_argument("--width", type=int, metavar="W", help="resize the images to W x H (give --height too)")
    d.add_argument("--height", type=int, metavar="H")
    d.add_argument("--depth", type=int, metavar="D", help="1 makes the images grey, 3 colour")
    d.add_argument("--class-names", metavar="JSON", help='an .npz\'s or IDX upload\'s classes: \'["cat", "dog"]\'')
    d = actions.add_parser("list", help="list the built-in datasets and yours")
    d.add_argument("--json", action="store_true", help="print the records as the API returns them")
    d = actions.add_parser("delete", help="delete one of your datasets (jobs trained on it keep their copy)")
    d.add_argument("name")
    for d in actions.choices.values():
        d.add_argument("--url", default=os.environ.get("CONVTRAIN_URL", DEFAULT_URL), help="the service's base URL")
    return p


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in WORKER_COMMANDS:
        # exec, not a child: signals sent to this process (SIGTERM from serve, a supervisor) reach the worker.
        os.execv(sys.executable, [sys.executable, "-m", "worker", *argv])
    args = _parser().parse_args(argv)
    config = Config.from_env()
    if args.command == "validate":
        from service.cli.validate import run

        return run(args.file, args.json, config)
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
    if args.command == "sweep":
        from service.cli.sweeps import run as sweep_run

        return sweep_run(args)
    if args.command == "search":
        from service.cli.searches import run as search_run

        return search_run(args)
    if args.command == "dataset":
        from service.cli.datasets import run as dataset_run

        return dataset_run(args)
    from service.cli import jobs as client_cmd

    return client_cmd.run(args)


