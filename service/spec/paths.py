"""Paths into a request (``trainer.batch_size``, ``network.layers[1].filters``) and grids of values at them."""

from __future__ import annotations

import copy
import itertools
import json
import re
from typing import Any

from service.spec import netspec


class PathError(ValueError):
    pass


_CHUNK = re.compile(r"([^\[\]]*)((?:\[\d+\])*)")


def parse_path(text: str) -> list[str | int]:
    """`trainer.batch_size` -> ['trainer', 'batch_size']; `network.layers[1].sx` or `network.layers.1.sx`
    -> ['network', 'layers', 1, 'sx'] (a whole number indexes a list, or names a key of an object)."""
    bad = PathError(f"{text!r} is not a path such as trainer.batch_size or network.layers[1].sx")
    if not isinstance(text, str) or not text:
        raise bad
    parts: list[str | int] = []
    for chunk in text.split("."):
        match = _CHUNK.fullmatch(chunk)
        if not match:
            raise bad
        name, indexes = match.groups()
        if name:
            parts.append(int(name) if parts and name.isascii() and name.isdigit() else name)
        elif not indexes or not parts:
            raise bad
        parts += [int(i) for i in re.findall(r"\d+", indexes)]
    return parts


def set_path(document: Any, path: list[str | int], value: Any) -> Any:
    """A copy of `document` with `value` at `path`; missing objects on the way are created, lists are not."""
    if not path:
        return copy.deepcopy(value)
    head, rest = path[0], path[1:]
    where = lambda: ".".join(str(p) for p in path)  # noqa: E731
    if isinstance(document, list):
        if not isinstance(head, int):
            raise PathError(f"{head!r} cannot index a list; use a position such as 0")
        if head >= len(document):
            raise PathError(f"position {head} is past the end of a list of {len(document)}")
        out = list(document)
        out[head] = set_path(out[head], rest, value)
        return out
    if document is None:
        document = {}
    if not isinstance(document, dict):
        raise PathError(f"cannot set {where()} inside {netspec.type_name(document)}")
    out = dict(document)
    out[str(head)] = set_path(out.get(str(head)), rest, value)
    return out


def expand_grid(grid: dict[str, list]) -> list[dict[str, Any]]:
    """Every combination of the grid's values, as {path: value}; the first path varies slowest."""
    if not grid:
        return [{}]
    paths = list(grid)
    return [dict(zip(paths, values)) for values in itertools.product(*(grid[p] for p in paths))]


def grid_label(combination: dict[str, Any]) -> str:
    """`batch_size=20, learning_rate=0.01`: each path by its last field name, unless two paths share it."""
    names = [_short(path) for path in combination]
    shown = []
    for (path, value), short in zip(combination.items(), names):
        key = short if names.count(short) == 1 else path
        shown.append(f"{key}={json.dumps(value, ensure_ascii=False, separators=(',', ':'))}")
    return ", ".join(shown)


def _short(path: str) -> str:
    try:
        names = [p for p in parse_path(path) if isinstance(p, str)]
    except PathError:
        return path
    return names[-1] if names else path
