"""What the pruner saves: one search space, searched with a pruner and without one, side by side.

    .venv/bin/python bench/search_efficiency.py [--trials 20] [--examples 20000] [--min-examples 2000]
                                                [--pruner successive_halving] [--sampler tpe] [--seed 1]
                                                [--workers 2] [--out DIR]

Starts a redis-server and --workers worker processes, submits the same search twice at once (the same
space, trials, sampler and seed; one with --pruner, one with none), each with `parallel` 1 so that both
get the workers alike, and waits for both. Prints, for each, the examples its trials trained, the best
val_acc (the whole validation split, at a trial's end), the trials pruned and its wall time, then the
ratios. Goal: the pruned search's best val_acc within 0.2 points of the unpruned
one's, with at most a third of its examples. Asserts nothing: timing and ratios stay out of the tests.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from api_latency import default_data_dir, start_service, start_worker, stop_process

from service.api import create_app
from service.config import Config

LAYERS = [{"type": "input", "out_sx": 24, "out_sy": 24, "out_depth": 1},
          {"type": "conv", "sx": 5, "filters": 8, "stride": 1, "pad": 2, "activation": "relu"},
          {"type": "pool", "sx": 2, "stride": 2},
          {"type": "conv", "sx": 5, "filters": 16, "stride": 1, "pad": 2, "activation": "relu"},
          {"type": "pool", "sx": 3, "stride": 3},
          {"type": "softmax", "num_classes": 10}]


def search_body(args, pruner: str) -> dict:
    return {
        "name": f"efficiency-{pruner}",
        "base": {"network": {"layers": LAYERS}, "trainer": {"method": "adadelta", "batch_size": 20},
                 "budget": {"examples": args.examples}, "device": "cpu"},
        "architectures": [{"name": "one conv block", "patch": {"network": {"layers": LAYERS[:3] + LAYERS[5:]}}},
                          {"name": "two conv blocks", "patch": {}}],
        "space": {"network.layers[1].filters": {"choice": [4, 8, 16]},
                  "network.layers[1].sx": {"choice": [3, 5]},
                  "network.layers[3].filters": {"choice": [8, 16]},
                  "trainer.l2_decay": {"float": [1e-4, 1e-1], "log": True}},
        "trials": args.trials, "parallel": 1, "sampler": args.sampler, "seed": args.seed,
        "pruner": {"type": pruner, "min_examples": args.min_examples, "reduction_factor": 3},
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--trials", type=int, default=20)
    p.add_argument("--examples", type=int, default=20_000, help="each trial's budget")
    p.add_argument("--min-examples", type=int, default=2_000, help="the first rung")
    p.add_argument("--pruner", default="successive_halving", choices=("successive_halving", "hyperband"))
    p.add_argument("--sampler", default="tpe", choices=("tpe", "random"))
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--out", help="write each search's leaderboard (md) and figure (png) here")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="convtrain-bench-search-") as tmp:
        folder = Path(tmp)
        redis_server, store, env, first = start_service(folder, default_data_dir())
        workers = [first]
        try:
            workers += [start_worker(env, folder, store, f"bench-worker-{i}") for i in range(1, args.workers)]
            client = create_app(Config.from_env(env), env["CONVTRAIN_REDIS_URL"]).test_client()
            started = time.monotonic()
            ids = {}
            for pruner in (args.pruner, "none"):
                r = client.post("/v1/searches", json=search_body(args, pruner))
                if r.status_code != 202:
                    print(json.dumps(r.get_json(), indent=2), file=sys.stderr)
                    return 1
                ids[pruner] = r.get_json()["id"]
            done: dict[str, dict] = {}
            while len(done) < len(ids):
                for pruner, search_id in ids.items():
                    search = client.get(f"/v1/searches/{search_id}").get_json()
                    if pruner not in done and search["status"] != "running":
                        done[pruner] = {**search, "wall": time.monotonic() - started}
                time.sleep(1.0)  # the bench's poll
            print(f"{args.trials} trials of up to {args.examples:,} examples, sampler {args.sampler}, seed {args.seed}, "
                  f"{args.workers} workers; both searches at once, one trial each at a time")
            print(f"{'pruner':<18} {'status':<10} {'examples':>11} {'best val_acc':>13} {'pruned':>7} {'wall s':>8}")
            for pruner, s in done.items():
                best = s["best"]["val_acc"] if s["best"] else float("nan")
                print(f"{pruner:<18} {s['status']:<10} {s['progress']['examples_spent']:>11,} {best:>13.4f} "
                      f"{s['progress']['pruned']:>7} {s['wall']:>8.1f}")
                if args.out:
                    out = Path(args.out)
                    out.mkdir(parents=True, exist_ok=True)
                    for fmt in ("md", "png"):
                        body = client.get(f"/v1/searches/{s['id']}/report?format={fmt}").data
                        (out / f"search-efficiency-{pruner}.{fmt}").write_bytes(body)
            pruned, full = done[args.pruner], done["none"]
            if pruned["best"] and full["best"]:
                ratio = pruned["progress"]["examples_spent"] / max(1, full["progress"]["examples_spent"])
                gap = 100 * (full["best"]["val_acc"] - pruned["best"]["val_acc"])
                print(f"examples {args.pruner}/none: {ratio:.3f} (goal <= 0.333); best val_acc none - {args.pruner}: "
                      f"{gap:+.2f} points (goal <= 0.2)")
        finally:
            for proc in workers:
                stop_process(proc)
            redis_server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
