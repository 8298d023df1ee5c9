"""Paths into a request (``trainer.batch_size``, ``network.layers[1].filters``) and grids of values at them.

Everything here is linear in what it is given: a path is parsed once, a combination of a grid is set in
one pass that copies each object or list on the way at most once (never the whole request per path),
and a grid's labels are worked out once per grid, not once per combination.
"""

from __future__ import annotations

import copy
import itertools
import json
import re
from collections import Counter
from collections.abc import Iterable
from typing import Any

from service.spec import netspec


class PathError(ValueError):
    index = 0  # set_paths: the position of the (path, value) that could not be set


_CHUNK = re.compile(r"([^\[\]]*)((?:\[\d+\])*)")
_INDEX = re.compile(r"\d+")


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
        parts += [int(i) for i in _INDEX.findall(indexes)]
    return parts


def set_path(document: Any, path: list[str | int], value: Any) -> Any:
    """A copy of `document` with `value` at `path`; missing objects on the way are created, lists are not."""
    return set_paths(document, [(path, value)])


def set_paths(document: Any, assignments: Iterable[tuple[list[str | int], Any]]) -> Any:
    """A copy of `document` with each (path, value) set in turn, exactly as set_path one after another would
    (a later path may go inside an earlier value), but each object or list on the way is copied once, not
    once per path; `document` and the values are not changed, and the result shares no value with them."""
    made: set[int] = set()  # ids of the containers this call made: changed in place from then on
    alive: list[Any] = []  # ...kept alive, so that no other object can take one of their ids
    for index, (path, value) in enumerate(assignments):
        try:
            document = _set(document, path, 0, value, made, alive)
        except PathError as exc:
            exc.index = index  # which assignment could not be made
            raise
    return document


def _own(container: Any, made: set[int], alive: list[Any]) -> Any:
    made.add(id(container))
    alive.append(container)
    return container


def _set(document: Any, path: list[str | int], at: int, value: Any, made: set[int], alive: list[Any]) -> Any:
    if at == len(path):
        return _own(copy.deepcopy(value), made, alive) if isinstance(value, (dict, list)) else value
    head = path[at]
    if isinstance(document, list):
        if not isinstance(head, int):
            raise PathError(f"{head!r} cannot index a list; use a position such as 0")
        if head >= len(document):
            raise PathError(f"position {head} is past the end of a list of {len(document)}")
        out = document if id(document) in made else _own(list(document), made, alive)
        out[head] = _set(out[head], path, at + 1, value, made, alive)
        return out
    if document is None:
        document = _own({}, made, alive)
    if not isinstance(document, dict):
        where = ".".join(str(p) for p in path[at:])
        raise PathError(f"cannot set {where} inside {netspec.type_name(document)}")
    out = document if id(document) in made else _own(dict(document), made, alive)
    key = str(head)
    out[key] = _set(out.get(key), path, at + 1, value, made, alive)
    return out


def expand_grid(grid: dict[str, list]) -> list[dict[str, Any]]:
    """Every combination of the grid's values, as {path: value}; the first path varies slowest."""
    if not grid:
        return [{}]
    paths = list(grid)
    return [dict(zip(paths, values)) for values in itertools.product(*(grid[p] for p in paths))]


def value_text(value: Any) -> str:
    """A grid value as a label shows it: compact JSON."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def label_keys(paths: Iterable[str]) -> dict[str, str]:
    """How a label names each path: by its last field name, unless two paths share it (then in full)."""
    shorts = {path: _short(path) for path in paths}
    counts = Counter(shorts.values())
    return {path: short if counts[short] == 1 else path for path, short in shorts.items()}


def grid_label(combination: dict[str, Any]) -> str:
    """`batch_size=20, learning_rate=0.01`: each path by its last field name, unless two paths share it."""
    keys = label_keys(combination)
    return ", ".join(f"{keys[path]}={value_text(value)}" for path, value in combination.items())


def _short(path: str) -> str:
    try:
        names = [p for p in parse_path(path) if isinstance(p, str)]
    except PathError:
        return path
    return names[-1] if names else path
