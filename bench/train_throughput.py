"""Training throughput: the engine (worker.trainer.Training) against a bare PyTorch loop of the same network.

Both train the seed's first network (examples/net1-default.json: conv 5x5x8 relu, pool 2,
conv 5x5x16 relu, pool 3, softmax 10) on MNIST with batch 20, random 24x24 crops made on the
device, and the same torch thread count. The variants alternate within one run (engine first
in odd rounds, bare first in even ones) so that load from other processes hits both alike;
the medians and their ratio are what to read. Goal: engine/bare >= 0.9.
The engine's rate counts its periodic validation windows (part of a job's training
time) but not the final validation/test evaluation; the bare loop has neither.

    python bench/train_throughput.py [--examples 30000] [--rounds 3] [--threads 1] [--device cpu]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch
import torch.nn.functional as F
from torch import nn

from service.config import Config
from service.spec.schemas import load_job_request
from worker import data
from worker.trainer import Hooks, Training, resolve_device

BATCH = 20
CROP = 24


def default_data_dir() -> Path:
    return Path(os.environ.get("CONVTRAIN_DATA_DIR") or ROOT.parent / "shared" / "data")


# --- memory -------------------------------------------------------------------

class Peak:
    """Peak memory of one phase: resident set (Linux VmHWM, reset per phase) and CUDA allocations."""

    def __init__(self, device: torch.device):
        self.device = device
        self.base = None
        self.can_reset = os.access("/proc/self/clear_refs", os.W_OK)

    def start(self) -> None:
        global _PROCESS_PEAK
        _PROCESS_PEAK = max(_PROCESS_PEAK, max_rss_mib())  # the reset below also resets ru_maxrss
        self.base = _status_mib("VmRSS:")
        self.can_reset = _reset_hwm()
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)

    def stop(self) -> dict:
        out = {"rss_mib": _status_mib("VmHWM:") if self.can_reset else None, "rss_before_mib": self.base}
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            out["cuda_mib"] = torch.cuda.max_memory_allocated(self.device) / 2**20
        return out


def _reset_hwm() -> bool:
    """Reset this process's peak RSS (Linux >= 4.0: writing 5 to clear_refs); False where not allowed."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _status_mib(field: str) -> float | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


_PROCESS_PEAK = 0.0


def max_rss_mib() -> float:
    """Peak RSS of the whole process so far (ru_maxrss: KiB on Linux, bytes on macOS)."""
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return max(_PROCESS_PEAK, rss / 2**20 if platform.system() == "Darwin" else rss / 1024)


# --- the two variants ---------------------------------------------------------------

def engine_request(examples: int, seed: int) -> tuple[dict, object]:
    body = json.loads((ROOT / "examples" / "net1-default.json").read_text())
    body["budget"] = {"examples": examples}
    body["seed"] = seed
    return load_job_request(body, Config())


def run_engine(examples: int, seed: int, data_dir: Path, device: torch.device) -> dict:
    """Train through Training.run; timed from outside up to the last metric point (before the final evaluation)."""
    request, network = engine_request(examples, seed)
    training = Training(request, network, data_dir=data_dir, device=device)
    last = {}

    def on_metrics(point: dict) -> None:
        # The loop emits its last point right after the last batch, before _finish evaluates.
        last.update(examples=point["examples"], wall=time.perf_counter(), cpu=time.process_time())

    c0, t0 = time.process_time(), time.perf_counter()
    result = training.run(Hooks(on_metrics=on_metrics))
    wall = time.perf_counter() - t0
    assert last.get("examples") == examples, last
    return {"rate": examples / (last["wall"] - t0), "cpu_rate": examples / (last["cpu"] - c0),
            "self_rate": result["examples_per_second"], "run_rate": examples / wall,
            "test_acc": result["test_acc"]}


def bare_model() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 8, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2, 2),
        nn.Conv2d(8, 16, 5, padding=2), nn.ReLU(), nn.MaxPool2d(3, 3),
        nn.Flatten(), nn.Linear(16 * 4 * 4, 10),
    )


def run_bare(examples: int, seed: int, data_dir: Path, device: torch.device) -> dict:
    """A minimal loop: random indices, device crops, Adadelta, summed loss / batch size."""
    ds = data.load("mnist", data_dir, device=device, validation_fraction=0.1)
    images, labels = ds.train.images, ds.train.labels
    torch.manual_seed(seed)
    gen = torch.Generator(device=device).manual_seed(seed)
    model = bare_model().to(device)
    opt = torch.optim.Adadelta(model.parameters(), lr=1.0, rho=0.95, eps=1e-6, weight_decay=0.001)
    model.train()
    n = len(labels)
    cuda = device.type == "cuda"
    if cuda:
        torch.cuda.synchronize(device)
    c0, t0 = time.process_time(), time.perf_counter()
    seen = 0
    while seen < examples:
        b = min(BATCH, examples - seen)
        idx = torch.randint(0, n, (b,), generator=gen, device=device)
        x = data.to_input(data.random_crop(images[idx], CROP, CROP, gen))
        loss = F.cross_entropy(model(x), labels[idx], reduction="sum") / b
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        seen += b
    if cuda:
        torch.cuda.synchronize(device)
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    return {"rate": examples / seconds, "cpu_rate": examples / cpu, "test_acc": bare_accuracy(model, ds.test)}


@torch.no_grad()
def bare_accuracy(model: nn.Module, split: data.Split) -> float:
    model.eval()
    hits = 0
    for start in range(0, len(split), 1000):
        x = data.to_input(data.center_crop(split.images[start:start + 1000], CROP, CROP))
        hits += int((model(x).argmax(1) == split.labels[start:start + 1000]).sum())
    model.train()
    return hits / len(split)


VARIANTS = {"engine": run_engine, "bare": run_bare}


# --- main -----------------------------------------------------------------------------

def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--examples", type=int, default=30_000, help="examples per training run (default 30000)")
    p.add_argument("--rounds", type=int, default=3, help="engine/bare pairs (default 3)")
    p.add_argument("--threads", type=int, default=1, help="torch.set_num_threads (default 1)")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto (default cpu)")
    p.add_argument("--data-dir", type=Path, default=default_data_dir(),
                   help="folder holding mnist/ (default CONVTRAIN_DATA_DIR or ../shared/data)")
    p.add_argument("--warmup", type=int, default=2_000, help="untimed examples per variant first (default 2000)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--json", type=Path, help="also write the numbers as JSON to this file")
    args = p.parse_args(argv)

    torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    print(f"net1-default, batch {BATCH}, {args.examples} examples per run, {args.rounds} rounds, "
          f"device {device}, torch {torch.__version__}, threads {torch.get_num_threads()}, "
          f"{os.cpu_count()} CPUs", flush=True)
    if device.type == "cuda":
        print(f"GPU: {torch.cuda.get_device_name(device)}", flush=True)

    rss_start = max_rss_mib()
    peak = Peak(device)
    # Warm-up: dataset load (cached per process), oneDNN/cuDNN kernel selection, allocator pools.
    data.load("mnist", args.data_dir, device=device, validation_fraction=0.1)
    for fn in VARIANTS.values():
        if args.warmup:
            fn(args.warmup, args.seed, args.data_dir, device)
    rss_after_warmup = max_rss_mib()

    rows: dict[str, list[dict]] = {name: [] for name in VARIANTS}
    peaks: dict[str, list[dict]] = {name: [] for name in VARIANTS}
    for r in range(args.rounds):
        order = ["engine", "bare"] if r % 2 == 0 else ["bare", "engine"]
        for name in order:
            peak.start()
            out = VARIANTS[name](args.examples, args.seed + r, args.data_dir, device)
            peaks[name].append(peak.stop())
            rows[name].append(out)
            print(f"  round {r + 1} {name:6s} {out['rate']:9.1f} ex/s  test_acc {out['test_acc']:.4f}", flush=True)

    print()
    print("examples/second, wall clock (and per CPU-second of this process: less sensitive to other load)")
    print(f"{'round':>5} | {'engine':>8} | {'bare':>8} | {'ratio':>5} || {'engine/cpu':>10} | {'bare/cpu':>8} | "
          f"{'ratio':>5} || {'engine self':>11} | {'engine run()':>12}")
    for r in range(args.rounds):
        e, b = rows["engine"][r], rows["bare"][r]
        print(f"{r + 1:>5} | {e['rate']:8.1f} | {b['rate']:8.1f} | {e['rate'] / b['rate']:5.3f} || "
              f"{e['cpu_rate']:10.1f} | {b['cpu_rate']:8.1f} | {e['cpu_rate'] / b['cpu_rate']:5.3f} || "
              f"{e['self_rate']:11.1f} | {e['run_rate']:12.1f}")
    med = {(name, key): statistics.median(o[key] for o in rows[name])
           for name in VARIANTS for key in ("rate", "cpu_rate")}
    med_self = statistics.median(o["self_rate"] for o in rows["engine"])
    med_run = statistics.median(o["run_rate"] for o in rows["engine"])
    ratio = med["engine", "rate"] / med["bare", "rate"]
    cpu_ratio = med["engine", "cpu_rate"] / med["bare", "cpu_rate"]
    print(f"{'med':>5} | {med['engine', 'rate']:8.1f} | {med['bare', 'rate']:8.1f} | {ratio:5.3f} || "
          f"{med['engine', 'cpu_rate']:10.1f} | {med['bare', 'cpu_rate']:8.1f} | {cpu_ratio:5.3f} || "
          f"{med_self:11.1f} | {med_run:12.1f}")
    print("  engine self: the examples_per_second that Training.run reports; engine run(): the whole call timed"
          " from outside, including the final validation (6,000 images) and test (10,000) evaluation")
    print(f"ratio engine/bare (medians): wall {ratio:.3f}, CPU time {cpu_ratio:.3f}; "
          f"goal >= 0.9: {'met' if min(ratio, cpu_ratio) >= 0.9 else 'NOT met'}")
    print()
    for name in VARIANTS:
        accs = [o["test_acc"] for o in rows[name]]
        runs = ", ".join(f"{a:.4f}" for a in accs)
        print(f"test accuracy {name:6s}: median {statistics.median(accs):.4f}  (runs: {runs})")
    print()
    print(f"peak RSS of the process (getrusage ru_maxrss): {max_rss_mib():.1f} MiB "
          f"(after imports {rss_start:.1f} MiB, after data load + warm-up {rss_after_warmup:.1f} MiB)")
    for name in VARIANTS:
        rss = [p["rss_mib"] for p in peaks[name] if p.get("rss_mib") is not None]
        line = f"peak during {name:6s} runs:"
        if rss:
            grow = max(p["rss_mib"] - p["rss_before_mib"] for p in peaks[name] if p.get("rss_mib") is not None)
            line += f" RSS {max(rss):.1f} MiB, at most +{grow:.1f} MiB over the RSS at its start (VmHWM reset per run)"
        if device.type == "cuda":
            line += f" CUDA max_memory_allocated {max(p['cuda_mib'] for p in peaks[name]):.2f} MiB"
        if line.endswith(":"):
            line += " not measurable here (no /proc/self/clear_refs)"
        print(line)
    print("  (tracemalloc is not reported: torch allocates tensors outside Python's allocator, so it sees ~none of it)")

    if args.json:
        args.json.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "rows": rows,
                                         "peaks": peaks, "ratio": ratio, "cpu_ratio": cpu_ratio,
                                         "max_rss_mib": max_rss_mib()}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
