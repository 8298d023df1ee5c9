"""Training throughput: the engine (worker.trainer.Training) against a plain PyTorch loop of the same network.

For each seed network (examples/net1..net6, net 1 being net A, the assignment's default) and each
thread count, both train on MNIST with batch 20, random 24x24 crops made on the device, the same
initial weights and the same torch thread count. The plain loop is what one writes by hand: NCHW,
the summed loss over the batch size, torch.optim.Adadelta(foreach=True). The engine runs a whole
Training.run, with a metric point every 100 examples and periodic validation windows in the same
proportion as a 30,000-example job (six windows, 500 images per 5,000 examples), and is timed up
to its last batch: it is stopped there (as a cancel), so the final evaluation on 16,000 images,
which the plain loop does not do, stays out of both the timing and the bench's wall time.

Variants alternate within one run (engine first in odd rounds, plain first in even ones) so that
load from other processes hits both alike; read the median of the paired ratios engine/plain.
Goal: >= 1.4 on net A with 1 and 2 threads, and >= 1.0 on every network.

    python bench/train_throughput.py [--examples 3000] [--rounds 5] [--threads 1,2] [--nets net1,...] [--device cpu]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch
import torch.nn.functional as F

from service.config import Config
from service.spec.schemas import load_job_request
from worker import data
from worker.model import Net
from worker.trainer import Hooks, Interrupted, Training, resolve_device

BATCH = 20
CROP = 24
NETS = {path.name.split("-")[0]: path for path in sorted((ROOT / "examples").glob("net[1-6]-*.json"))}
GOAL_NET_A, GOAL_ALL = 1.4, 1.0


def default_data_dir() -> Path:
    return Path(os.environ.get("CONVTRAIN_DATA_DIR") or ROOT.parent / "shared" / "data")


def job_request(net: str, examples: int, seed: int) -> tuple[dict, object]:
    body = json.loads(NETS[net].read_text())
    body.update(budget={"examples": examples}, seed=seed,
                trainer={"method": "adadelta", "batch_size": BATCH, "l2_decay": 0.001},
                data={"val_interval": max(1, examples // 6), "val_examples": max(1, examples // 60)})
    return load_job_request(body, Config())


def run_engine(net: str, examples: int, seed: int, data_dir: Path, device: torch.device) -> float:
    """Examples/second of Training.run up to its last batch."""
    request, network = job_request(net, examples, seed)
    training = Training(request, network, data_dir=data_dir, device=device)

    def stop_after_the_last_batch() -> str | None:
        if training.examples < examples:
            return None
        _sync(device)
        return "cancel"

    start = time.perf_counter()
    try:
        training.run(Hooks(poll=stop_after_the_last_batch, poll_seconds=0))
    except Interrupted:
        pass
    assert training.examples == examples
    return examples / (time.perf_counter() - start)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def run_plain(net: str, examples: int, seed: int, data_dir: Path, device: torch.device) -> float:
    """Examples/second of a hand-written loop: random indices, device crops, Adadelta, summed loss / batch size."""
    _, network = job_request(net, examples, seed)
    ds = data.load("mnist", data_dir, device=device, validation_fraction=0.1)
    images, labels = ds.train.images, ds.train.labels
    torch.manual_seed(seed)  # the engine's initial weights
    gen = torch.Generator(device=device).manual_seed(seed)
    model = Net(network).to(device)
    opt = torch.optim.Adadelta(model.parameters(), lr=1.0, rho=0.95, eps=1e-6, weight_decay=0.001, foreach=True)
    model.train()
    _sync(device)
    start = time.perf_counter()
    seen = 0
    while seen < examples:
        b = min(BATCH, examples - seen)
        idx = torch.randint(0, len(labels), (b,), generator=gen, device=device)
        x = data.to_input(data.random_crop(images[idx], CROP, CROP, gen))
        loss = F.cross_entropy(model(x), labels[idx], reduction="sum") / b
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        seen += b
    _sync(device)
    return examples / (time.perf_counter() - start)


VARIANTS = {"engine": run_engine, "plain": run_plain}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--examples", type=int, default=3_000, help="examples per training run (default 3000)")
    p.add_argument("--rounds", type=int, default=5, help="engine/plain pairs per network and thread count (default 5)")
    p.add_argument("--threads", default="1,2", help="torch thread counts, comma-separated (default 1,2)")
    p.add_argument("--nets", default=",".join(NETS), help=f"networks, comma-separated (default {','.join(NETS)})")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto (default cpu)")
    p.add_argument("--data-dir", type=Path, default=default_data_dir(),
                   help="folder holding mnist/ (default CONVTRAIN_DATA_DIR or ../shared/data)")
    p.add_argument("--warmup", type=int, default=1_000, help="untimed examples per variant and setting first")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--json", type=Path, help="also write the numbers as JSON to this file")
    args = p.parse_args(argv)
    threads = [int(t) for t in args.threads.split(",")]
    nets = args.nets.split(",")
    device = resolve_device(args.device)
    print(f"batch {BATCH}, {args.examples} examples per run, {args.rounds} rounds, device {device}, "
          f"torch {torch.__version__}, {os.cpu_count()} CPUs" +
          (f", GPU {torch.cuda.get_device_name(device)}" if device.type == "cuda" else ""), flush=True)
    data.load("mnist", args.data_dir, device=device, validation_fraction=0.1)

    started = time.perf_counter()
    rates: dict[tuple[str, int], dict[str, list[float]]] = {}
    for n_threads in threads:
        torch.set_num_threads(n_threads)
        for net in nets:
            for fn in VARIANTS.values():  # kernel selection, allocator pools
                fn(net, args.warmup, args.seed, args.data_dir, device)
            cell = rates[net, n_threads] = {name: [] for name in VARIANTS}
            for r in range(args.rounds):
                for name in (["engine", "plain"] if r % 2 == 0 else ["plain", "engine"]):
                    cell[name].append(VARIANTS[name](net, args.examples, args.seed + r, args.data_dir, device))
            ratios = [e / b for e, b in zip(cell["engine"], cell["plain"])]
            print(f"  {net} {n_threads} thread(s): engine {statistics.median(cell['engine']):8.0f} ex/s, "
                  f"plain {statistics.median(cell['plain']):8.0f} ex/s, paired ratios "
                  + " ".join(f"{q:.2f}" for q in ratios), flush=True)

    print()
    print("engine / plain PyTorch loop: median of the paired ratios [lowest, highest]; examples/second: medians")
    print(f"{'net':<22}" + "".join(f" | {f'{t} thread' + ('s' if t > 1 else ''):^36}" for t in threads))
    print(f"{'':<22}" + f" | {'ratio':>5} {'[range]':<13} {'engine':>7} {'plain':>7}" * len(threads))
    median_ratio = {}
    for net in nets:
        line = f"{NETS[net].stem + (' (A)' if net == 'net1' else ''):<22}"
        for t in threads:
            cell = rates[net, t]
            ratios = [e / b for e, b in zip(cell["engine"], cell["plain"])]
            median_ratio[net, t] = statistics.median(ratios)
            spread = f"[{min(ratios):.2f}, {max(ratios):.2f}]"
            line += (f" | {median_ratio[net, t]:5.2f} {spread:<13} {statistics.median(cell['engine']):7.0f} "
                     f"{statistics.median(cell['plain']):7.0f}")
        print(line)
    net_a = [median_ratio[n, t] for n, t in median_ratio if n == "net1"]
    print()
    if net_a:
        print(f"goal net A >= {GOAL_NET_A}x at every thread count: {'met' if min(net_a) >= GOAL_NET_A else 'NOT met'}")
    print(f"goal every net >= {GOAL_ALL}x: {'met' if min(median_ratio.values()) >= GOAL_ALL else 'NOT met'}")
    print(f"bench wall time {time.perf_counter() - started:.0f} s")
    if args.json:
        args.json.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()},
                                         "rates": {f"{n}/{t}": v for (n, t), v in rates.items()}}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
