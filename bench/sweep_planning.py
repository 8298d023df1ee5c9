"""How long POST /v1/sweeps spends reading and planning hostile sweep requests of about 1 MiB.

    .venv/bin/python bench/sweep_planning.py [--repeat 3] [--timeout 60] [--before DIR]

Builds sweep requests near the 1 MiB body limit in the shapes an attacker would pick (40,000 grid
paths; one path with 100,000 values; 10,000 variants; deep and wide patches; a large base crossed with
the most combinations allowed), and the largest sweeps the limits allow, and times what the API does
with each before it touches Redis: the body read as JSON (``strict_json.loads``, as json_body does),
``sweep.parse`` and ``sweep.plan``. Prints the median and worst wall-clock time of --repeat runs
and what came of it: how many variants were planned, or the first error's path and message.
Goal: every row well under a second.

--before DIR times another version of service/spec/{sweep,paths,patch}.py (for example the ones
before a change: `mkdir old && git show HEAD:service/spec/sweep.py > old/sweep.py` and likewise)
on the same requests. A run past --timeout seconds is stopped and shown as such. Asserts
nothing: timing stays out of the tests.
"""

from __future__ import annotations

import argparse
import importlib.util
import inspect
import json
import signal
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from service.config import Config
from service.spec import strict_json
from service.spec.netspec import InvalidSpec

BASE = json.loads((ROOT / "examples" / "net1-default.json").read_text())
BASE["budget"] = {"examples": 600}
LAYERS = BASE["network"]["layers"]
# 17 paths of one value each: with the 3 above, 20 paths (the default limit) and 500 combinations.
ONE_VALUE = {"trainer.l2_decay": 0.001, "trainer.momentum": 0.9, "trainer.l1_decay": 0, "trainer.ro": 0.95,
             "trainer.beta1": 0.9, "trainer.beta2": 0.999, "data.validation_fraction": 0.1, "data.augment.crop": True,
             "data.augment.flip": False, "data.val_interval": 5000, "data.val_examples": 500, "data.test_crops": 0,
             "device": "auto", "network.layers[1].filters": 8, "network.layers[3].filters": 16,
             "network.layers[1].sx": 5, "network.layers[3].sx": 5}
CONV = {"type": "conv", "sx": 3, "filters": 4, "stride": 1, "pad": 1, "activation": "relu"}


def _size(body: dict) -> int:
    return len(json.dumps(body).encode())


def hostile() -> dict[str, dict]:
    """Each about 1 MiB, each refused or planned in bounded time."""
    cases: dict[str, dict] = {}
    cases["40,000 grid paths, 1 value each"] = {
        "base": BASE, "grid": {f"trainer.k{i:05d}": [1] for i in range(40_000)}}
    cases["1 grid path, 100,000 values"] = {
        "base": BASE, "grid": {"seed": list(range(10**7, 10**7 + 100_000))}}
    cases["10,000 variants"] = {
        "base": BASE, "variants": [{"name": f"variant {i:05d}", "patch": {"trainer": {
            "batch_size": i % 100 + 1, "learning_rate": 0.01}}} for i in range(10_000)]}
    deep = 1
    for level in range(28):  # with base, variants, [i], patch and trainer: 31 of the 32 levels allowed
        deep = {f"k{level}": deep, **{f"w{j}": j for j in range(12)}}
    cases["100 variants, patches 28 levels deep"] = {
        "base": BASE, "variants": [{"name": f"deep {i}", "patch": {"trainer": deep}} for i in range(100)]}
    layers = [LAYERS[0]] + [CONV] * 98 + [LAYERS[-1]]
    cases["100 variants, 100-layer networks"] = {
        "base": BASE, "variants": [{"name": f"wide {i}", "patch": {"network": {"layers": layers},
                                                                   "trainer": {"batch_size": i + 1}}}
                                   for i in range(100)]}
    junk = {f"k{i:05d}": i for i in range(50_000)}
    cases["a 50,000-key base x 500 combinations"] = {
        "base": {**BASE, "trainer": {**BASE["trainer"], **junk}},
        "grid": {"seed": list(range(100)), "trainer.batch_size": [1, 2, 3, 4, 5]}}
    cases["a 50,000-key base x 100 variants x 5 repeats"] = {
        "base": {**BASE, "trainer": {**BASE["trainer"], **junk}}, "repeats": 5,
        "variants": [{"name": str(i), "patch": {"seed": i}} for i in range(100)]}
    cases["500 bad requests (no budget): 100 seeds x 5 batch sizes"] = {
        "base": {k: v for k, v in BASE.items() if k != "budget"},
        "grid": {"seed": list(range(100)), "trainer.batch_size": [1, 2, 3, 4, 5]}}
    # One job whose request has 60,000 unknown fields: what POST /v1/jobs costs for such a body (schemas.py).
    cases["1 job, a grid value of 60,000 keys"] = {
        "base": BASE, "grid": {"data.augment": [{f"k{i:05d}": i for i in range(60_000)}]}}
    return cases


def allowed(config: Config) -> dict[str, dict]:
    """The largest sweeps the default limits let through."""
    layers = [LAYERS[0]] + [CONV] * 20 + [LAYERS[-1]]
    big = [LAYERS[0]] + [CONV] * 98 + [LAYERS[-1]]  # the most layers a network may have
    demo = (ROOT / "examples" / "net1-default.js").read_text()
    paste = demo + "// a comment line to pad the paste to the most the schema allows\n" * ((65_536 - len(demo)) // 65)
    no_net = {k: v for k, v in BASE.items() if k not in ("network", "trainer")}
    cases = {
        "allowed: 100 variants x 5 values, 22-layer nets (500 jobs)": {
            "base": BASE, "grid": {"trainer.batch_size": [10, 20, 30, 40, 50]},
            "variants": [{"name": f"v{i}", "patch": {"network": {"layers": layers}, "trainer": {"l2_decay": i / 1000}}}
                         for i in range(100)]},
        "allowed: 20 grid paths, 500 combinations": {
            "base": BASE, "grid": {"trainer.batch_size": [10, 20, 30, 40, 50],
                                   "trainer.learning_rate": [0.01, 0.02, 0.03, 0.04, 0.05],
                                   "seed": list(range(20)),
                                   **{path: [value] for path, value in ONE_VALUE.items()}}},
        "allowed: 100 identical variants x 5 repeats (500 jobs)": {
            "base": BASE, "repeats": 5, "variants": [{"name": f"same {i}", "patch": {}} for i in range(100)]},
    }
    # As many as the bytes limit lets through (found with the current service/spec/sweep.py).
    n = _most(lambda k: {"base": {**BASE, "network": {"layers": big}},
                         "grid": {"seed": list(range(k)), "trainer.batch_size": [10, 20, 30, 40, 50]}}, config)
    cases[f"allowed: 100-layer nets, {5 * n} jobs (the bytes limit)"] = {
        "base": {**BASE, "network": {"layers": big}},
        "grid": {"seed": list(range(n)), "trainer.batch_size": [10, 20, 30, 40, 50]}}
    n = _most(lambda k: {"base": {**no_net, "convnetjs": paste}, "grid": {"seed": list(range(k))}}, config)
    cases[f"allowed: a 64 KiB demo paste, {n} jobs (the bytes limit)"] = {
        "base": {**no_net, "convnetjs": paste}, "grid": {"seed": list(range(n))}}
    return cases


def _most(make, config: Config) -> int:
    """The largest k in 1..100 for which sweep.parse(make(k)) passes the limits."""
    from service.spec import sweep

    low, high = 1, 100
    while low < high:
        middle = (low + high + 1) // 2
        try:
            sweep.parse(make(middle), config)
            low = middle
        except InvalidSpec:
            high = middle - 1
    return low


def load(folder: Path):
    """service/spec/{paths,patch,sweep}.py from `folder`, under their real names (sweep imports the other two)."""
    saved = {name: sys.modules.get(f"service.spec.{name}") for name in ("paths", "patch", "sweep")}
    try:
        for name in ("paths", "patch", "sweep"):
            spec = importlib.util.spec_from_file_location(f"service.spec.{name}", folder / f"{name}.py")
            module = importlib.util.module_from_spec(spec)
            sys.modules[f"service.spec.{name}"] = module
            spec.loader.exec_module(module)
        return module
    finally:
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(f"service.spec.{name}", None)
            else:
                sys.modules[f"service.spec.{name}"] = module


class TooLong(Exception):
    pass


def _alarm(*_):
    raise TooLong()


def run(sweep, text: bytes, config: Config, read: list[float], read_cpu: list[float]) -> str:
    takes_config = len(inspect.signature(sweep.parse).parameters) > 1
    start, start_cpu = time.perf_counter(), time.process_time()
    body = strict_json.loads(text, config.max_json_depth)
    read.append(time.perf_counter() - start)
    read_cpu.append(time.process_time() - start_cpu)
    try:
        spec = sweep.parse(body, config) if takes_config else sweep.parse(body)
        planned = sweep.plan(spec, config)
    except InvalidSpec as exc:
        first = exc.errors[0]
        return f"422, {len(exc.errors)} error(s): {first.path or '(top)'}: {first.message[:70]}"
    except sweep.InvalidSweep as exc:
        first = exc.errors[0]
        return f"422, {len(exc.names)} bad variant(s), {len(exc.errors)} error(s): {first['message'][:60]}"
    return f"planned {len(planned)} variant(s), {len(planned) * spec.repeats} jobs"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds before one run is stopped")
    parser.add_argument("--before", type=Path, help="a folder with other versions of sweep.py, paths.py, patch.py")
    parser.add_argument("--only", default="", help="only the requests whose name holds this text")
    args = parser.parse_args()
    config = Config()
    sweep = load(args.before) if args.before else importlib.import_module("service.spec.sweep")
    signal.signal(signal.SIGALRM, _alarm)
    print("read: the body as JSON (strict_json.loads, the same for every version); plan: parse and plan, "
          "median and worst wall-clock time of the runs, and median CPU time of the process; in ms")
    print(f"{'request':<58} {'KiB':>5} {'read':>6} {'plan':>7} {'worst':>7} {'cpu':>7}  outcome")
    for group in (hostile(), allowed(config)):
        for name, body in group.items():
            if args.only not in name:
                continue
            text = json.dumps(body).encode()
            times, read, cpu, read_cpu, outcome = [], [], [], [], ""
            for _ in range(args.repeat):
                signal.setitimer(signal.ITIMER_REAL, args.timeout)
                start, start_cpu = time.perf_counter(), time.process_time()
                try:
                    outcome = run(sweep, text, config, read, read_cpu)
                except TooLong:
                    outcome = f"stopped after {args.timeout:g} s"
                    times.append(time.perf_counter() - start - sum(read[len(times):]))
                    cpu.append(time.process_time() - start_cpu - sum(read_cpu[len(cpu):]))
                    break
                finally:
                    signal.setitimer(signal.ITIMER_REAL, 0)
                times.append(time.perf_counter() - start - read[-1])
                cpu.append(time.process_time() - start_cpu - read_cpu[-1])
            print(f"{name:<58} {len(text) / 1024:>5.0f} {statistics.median(read) * 1000:>6.0f} "
                  f"{statistics.median(times) * 1000:>7.0f} {max(times) * 1000:>7.0f} "
                  f"{statistics.median(cpu) * 1000:>7.0f}  {outcome}", flush=True)


if __name__ == "__main__":
    main()
