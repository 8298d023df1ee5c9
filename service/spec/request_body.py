"""Request bodies as the API and the command line read them: strict JSON, a FILE, and the three shapes
that `POST /v1/networks/validate` and `convtrain validate` check.

Both accept the same three shapes: a bare network ``{"layers": [...]}``, a whole
job request, or ``{"convnetjs": "<demo source>"}`` (a `.js` file on the command
line). Both answer with the same bodies: the desugared network
(`netspec.Network.as_dict`) or ``{"errors": [{"path", "message"}, ...]}``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from service.spec import netspec
from service.spec import schemas
from service.config import Config
from service.spec.netspec import InvalidSpec, SpecError

# Validating a network says nothing about how long to train it, so a request
# without a budget is checked as if it had the smallest one.
_ANY_BUDGET = {"examples": 1}
_SHAPES = ('a network {"layers": [...]}, a job request {"network": ..., "budget": ...}, '
           'or demo source {"convnetjs": "..."}')


def parse_json(text: str | bytes, config: Config) -> Any:
    """Parse strict JSON (no NaN or Infinity, bounded nesting); raise InvalidSpec with path ""."""
    def refuse(constant):
        raise ValueError(f"{constant} is not a JSON number")

    if isinstance(text, (bytes, bytearray)):
        try:
            text = bytes(text).decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidSpec([SpecError("", "the input is not UTF-8 text, so it cannot be JSON")]) from None
    try:
        value = json.loads(text, parse_constant=refuse)
    except json.JSONDecodeError as exc:
        raise InvalidSpec([SpecError("", f"the input is not valid JSON: {exc.msg} "
                                         f"(line {exc.lineno}, column {exc.colno})")]) from None
    except (ValueError, RecursionError) as exc:
        raise InvalidSpec([SpecError("", f"the input is not valid JSON: {exc}")]) from None
    if _depth(value) > config.max_json_depth:
        raise InvalidSpec([SpecError("", f"the JSON is nested more than {config.max_json_depth} levels deep")])
    return value


def _depth(value: Any) -> int:
    """How deeply lists and objects nest in `value`, without recursion."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, (list, dict)):
            deepest = max(deepest, level)
            stack.extend((child, level + 1) for child in (item.values() if isinstance(item, dict) else item))
    return deepest


def check(body: Any, config: Config) -> netspec.Network:
    """Validate any of the three accepted shapes; return the network or raise InvalidSpec."""
    if isinstance(body, list):
        raise InvalidSpec([SpecError("", "expected a JSON object, not a list; to check a list of layers, "
                                         'wrap it as {"layers": [...]}')])
    if not isinstance(body, dict):
        shown = "nothing" if body is None else netspec.type_name(body)
        raise InvalidSpec([SpecError("", f"expected a JSON object: {_SHAPES}; got {shown}")])
    if "layers" in body:
        return netspec.analyze(body, config.limits, prefix="network")
    if "budget" not in body:
        body = {**body, "budget": _ANY_BUDGET}
    _, network = schemas.load_job_request(body, config)
    return network


def validate_body(body: Any, config: Config) -> tuple[int, dict]:
    """The HTTP answer for a parsed JSON body: (200, network) or (422, {"errors": [...]}).

    Raw bytes are parsed here, so that a body that is not JSON gets the same error list.
    """
    try:
        if isinstance(body, (bytes, bytearray)):
            body = parse_json(body, config)
        return 200, check(body, config).as_dict()
    except InvalidSpec as exc:
        return 422, {"errors": [e.as_dict() for e in exc.errors]}


DEMO_EXAMPLES = 30_000  # the demo's budget for a pasted `.js` network


def read_body(path: str, config: Config, *, demo_budget: bool = False) -> Any:
    """The body FILE stands for: demo source for `.js` (named after the file, with the demo's budget when
    `demo_budget`), else its JSON. Raise InvalidSpec with path "" for an unreadable file."""
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise InvalidSpec([SpecError("", f"cannot read {path}: {exc.strerror or exc}")]) from None
    if Path(path).suffix.lower() == ".js":
        try:
            body = {"name": Path(path).stem[:200], "convnetjs": raw.decode("utf-8")}
        except UnicodeDecodeError:
            raise InvalidSpec([SpecError("", f"{path} is not UTF-8 text")]) from None
        if demo_budget:
            body["budget"] = {"examples": DEMO_EXAMPLES}
        return body
    return parse_json(raw, config)
