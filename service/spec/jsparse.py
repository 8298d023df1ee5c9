"""Read the JavaScript a ConvNetJS demo user typed, as data, never as code.

The demo's text box holds statements such as
``layer_defs.push({type:'conv', sx:5, filters:8});`` and
``trainer = new convnetjs.SGDTrainer(net, {method:'adadelta', batch_size:20});``.
We split the text into statements, accept only those known shapes, and parse
each object literal with JSON5. Anything else is an error with its line number.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import json5

from service.spec.netspec import SpecError

_NAME = r"[A-Za-z_$][\w$]*"
_DECL = r"(?:(?:var|let|const)\s+)?"
# Statements that carry no data but belong to a demo paste.
_HARMLESS = [
    re.compile(rf"^{_DECL}{_NAME}(\s*,\s*{_NAME})*$"),  # var layer_defs, net, trainer
    re.compile(rf"^{_DECL}{_NAME}\s*=\s*\[\s*\]$"),  # layer_defs = []
    re.compile(rf"^{_DECL}{_NAME}\s*=\s*new\s+convnetjs\.Net\s*\(\s*\)$"),
    re.compile(rf"^{_NAME}\.makeLayers\s*\(\s*{_NAME}\s*\)$"),
]
_PUSH = re.compile(rf"^{_NAME}\.push\s*\((?P<obj>.*)\)$", re.S)
_ARRAY = re.compile(rf"^{_DECL}{_NAME}\s*=\s*(?P<arr>\[.*\])$", re.S)
_TRAINER = re.compile(rf"^{_DECL}{_NAME}\s*=\s*new\s+convnetjs\.(?:SGDTrainer|Trainer)\s*\(\s*{_NAME}\s*"
                      rf"(?:,\s*(?P<obj>\{{.*\}}))?\s*\)$", re.S)


@dataclass
class Paste:
    """What a demo paste said: its layer definitions and trainer options."""

    layers: list
    trainer: dict | None
    lines: list[int]  # the source line of each layer, to point errors at


def _statements(text: str) -> list[tuple[int, str]]:
    """Split source into (line number, statement) at top-level semicolons and line ends, dropping comments."""
    out: list[tuple[int, str]] = []
    buf: list[str] = []
    depth, line, start_line = 0, 1, 1
    i, n = 0, len(text)
    quote = None
    while i < n:
        ch = text[i]
        if quote:
            buf.append(ch)
            if ch == "\\" and i + 1 < n:
                buf.append(text[i + 1])
                i += 1
            elif ch == quote:
                quote = None
            elif ch == "\n":
                line += 1
            i += 1
            continue
        if text.startswith("//", i):
            while i < n and text[i] != "\n":
                i += 1
            continue
        if text.startswith("/*", i):
            end = text.find("*/", i + 2)
            end = n if end < 0 else end + 2
            line += text.count("\n", i, end)
            i = end
            continue
        if ch in "'\"`":
            quote = ch
        elif ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        if (ch == ";" or ch == "\n") and depth <= 0:
            stmt = "".join(buf).strip()
            if stmt:
                out.append((start_line, stmt))
            buf = []
            if ch == "\n":
                line += 1
            start_line = line
            depth = 0
            i += 1
            continue
        if ch == "\n":
            line += 1
        if not buf and ch.isspace():
            start_line = line
        else:
            buf.append(ch)
        i += 1
    stmt = "".join(buf).strip()
    if stmt:
        out.append((start_line, stmt))
    return out


def _literal(text: str, line: int, what: str, errors: list[SpecError]):
    try:
        return json5.loads(text)
    except RecursionError:
        detail = "it is nested too deeply"
    except ValueError as exc:
        # json5 says '<string>:1 Unexpected "c" at column 8'; the position is within the literal.
        detail = re.sub(r"^<string>:\d+\s*", "", str(exc))
    errors.append(SpecError("convnetjs", f"line {line}: cannot read the {what}: use only numbers, quoted strings, "
                            f"true/false, lists and objects, as in {{type:'conv', sx:5}} ({detail})", line))
    return None


def parse(text: str) -> Paste:
    """Extract layer definitions and trainer options from demo source; raise InvalidSpec on anything else."""
    from service.spec.netspec import InvalidSpec

    if not isinstance(text, str):
        raise InvalidSpec([SpecError("convnetjs", "the demo source must be text (a string)")])
    errors: list[SpecError] = []
    layers: list = []
    lines: list[int] = []
    trainer = None
    for line, stmt in _statements(text):
        if any(p.match(stmt) for p in _HARMLESS):
            continue
        if m := _PUSH.match(stmt):
            value = _literal(m["obj"], line, "layer definition", errors)
            if value is not None:
                layers.append(value)
                lines.append(line)
        elif m := _TRAINER.match(stmt):
            value = _literal(m["obj"], line, "trainer options", errors) if m["obj"] else {}
            if value is not None and not isinstance(value, dict):
                errors.append(SpecError("convnetjs", f"line {line}: the trainer options must be an object", line))
            elif value is not None:
                trainer = value
        elif m := _ARRAY.match(stmt):
            value = _literal(m["arr"], line, "layer list", errors)
            if isinstance(value, list):
                layers.extend(value)
                lines.extend([line] * len(value))
            elif value is not None:
                errors.append(SpecError("convnetjs", f"line {line}: the layer list must be an array", line))
        else:
            shown = stmt if len(stmt) <= 60 else stmt[:57] + "..."
            errors.append(SpecError("convnetjs",
                                    f"line {line}: '{shown}' is not a layer_defs.push(...) or SGDTrainer statement; "
                                    "only layer definitions and trainer options are read", line))
    if not layers and not errors:
        errors.append(SpecError("convnetjs", "no layer_defs.push({...}) statements found"))
    if errors:
        raise InvalidSpec(errors)
    return Paste(layers, trainer, lines)
