"""How long the ConvNetJS demo-source parser takes on 64 KB pastes (the schema's maximum).

    .venv/bin/python bench/jsparse_speed.py [--size 65536] [--repeat 5] [--parser FILE]

Builds inputs of --size characters, friendly and hostile, runs ``jsparse.parse`` on
each --repeat times and prints the median and worst wall-clock time, the median CPU
time of the process, and whether the paste was read (how many layers) or refused (how
many errors). Goal: every input under 100 ms. --parser FILE times another version of
service/spec/jsparse.py (for example the one before a change, from `git show`) on the
same inputs. Asserts nothing: timing stays out of the tests.
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from service.spec.netspec import InvalidSpec

DEMO = (ROOT / "examples" / "net1-default.js").read_text()
LAYER = "layer_defs.push({type:'conv', sx:5, filters:8, stride:1, pad:2, activation:'relu'});\n"


def _fill(size: int, unit: str, head: str = "", tail: str = "") -> str:
    """head, unit repeated, tail: size characters, made up with spaces before the tail."""
    room = size - len(head) - len(tail)
    return head + unit * (room // len(unit)) + " " * (room % len(unit)) + tail


def inputs(size: int) -> dict[str, str]:
    trainer = "trainer = new convnetjs.SGDTrainer(net, {"

    def f(*args: str) -> str:
        return _fill(size, *args)

    return {
        # what a user might send
        "demo text padded with comments": f("// a comment line to pad the paste\n", DEMO),
        "many layer pushes": f(LAYER, "layer_defs = [];\n"),
        "one literal array of layers": f("{type:'fc', num_neurons:10},\n", "layer_defs = [", "];"),
        "demo + many trainer_defs pushes": f("trainer_defs.push({method:'sgd'});\n", DEMO),
        # big literals
        "one push, a 64 KB object": f("a:1,", "layer_defs.push({", "b:2});"),
        "one push, a 64 KB string": f("x", "layer_defs.push({type:'", "'});"),
        "one push, a string of escapes": f("\\n", "layer_defs.push({type:'", "'});"),
        "one push, escapes JSON lacks": f("\\x41\\'", "layer_defs.push({type:'", "'});"),
        "one push, numbers 1e999": f("1e999,", "layer_defs.push([", "]);"),
        "one push, hex numbers": f("0x1F,", "layer_defs.push([", "]);"),
        "one push, short strings": f("'a',", "layer_defs.push([", "]);"),
        "trainer with a 64 KB object": f("k:1,", DEMO + trainer, "});"),
        "unicode line separators": f("\u2028", "layer_defs.push({type:'fc'", "});"),
        # hostile
        "trainer: many closing braces": f("}", trainer),
        "push with many closing parens": f(")", "layer_defs.push("),
        "deep nesting [[[[": f("[", "layer_defs.push(", ")"),
        "deep nesting {a:{a:": f("{a:", "layer_defs.push(", ")"),
        "unterminated string": f("x", "layer_defs.push({type:'"),
        "unterminated comment": f("x", "/*"),
        "many // comment starts": f("//"),
        "many /* comment starts": f("/*"),
        "comments between tokens": f("/**/a", "layer_defs.push({type:'fc'}) "),
        "one long name": f("a"),
        "many short statements x;": f("x;"),
        "many calls f();": f("f();"),
        "many assignments x=1;": f("x=1;"),
        "many tiny pushes a.push(1);": f("a.push(1);"),
        "many var declarations": f("var a, b, c;\n"),
        "names and commas": f(", a", "var a"),
        "many push( openers": f("layer_defs.push("),
        "many quotes and escapes": f("'\\'\"", "layer_defs.push({type:", "});"),
        "alternating code and strings": f("a''", "layer_defs.push("),
        "newlines only": f("\n"),
        "spaces only": f(" "),
        "many makeLayers calls": f("net.makeLayers(layer_defs);", DEMO),
    }


def load_parser(path: str | None):
    if path is None:
        from service.spec import jsparse
        return jsparse.parse
    spec = importlib.util.spec_from_file_location("jsparse_under_test", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module.parse


def run_once(parse, text: str) -> tuple[float, float, str]:
    wall, cpu = time.perf_counter(), time.process_time()
    try:
        paste = parse(text)
        outcome = f"read: {len(paste.layers)} layers"
    except InvalidSpec as exc:
        outcome = f"refused: {len(exc.errors)} errors"
    return time.perf_counter() - wall, time.process_time() - cpu, outcome


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=65536, help="characters per input (default 65536)")
    parser.add_argument("--repeat", type=int, default=5, help="runs per input (default 5)")
    parser.add_argument("--parser", help="a jsparse.py to time instead of service/spec/jsparse.py")
    args = parser.parse_args()
    parse = load_parser(args.parser)
    print(f"parser: {args.parser or 'service/spec/jsparse.py'}, {args.size} characters per input, "
          f"{args.repeat} runs each")
    print(f"{'input':34s} {'median ms':>9s} {'worst ms':>9s} {'cpu ms':>7s}  outcome")
    slowest = ("", 0.0)
    for name, text in inputs(args.size).items():
        assert len(text) == args.size, (name, len(text))
        walls, cpus = [], []
        for _ in range(args.repeat):
            wall, cpu, outcome = run_once(parse, text)
            walls.append(wall)
            cpus.append(cpu)
        if max(walls) > slowest[1]:
            slowest = (name, max(walls))
        print(f"{name:34s} {statistics.median(walls) * 1e3:9.1f} {max(walls) * 1e3:9.1f} "
              f"{statistics.median(cpus) * 1e3:7.1f}  {outcome}")
    print(f"slowest: {slowest[1] * 1e3:.1f} ms ({slowest[0]}); goal: under 100 ms")


if __name__ == "__main__":
    main()
