"""Request bodies as the API and the command line read them: strict JSON, a FILE, and the three shapes
that `POST /v1/networks/validate` and `convtrain validate` check.

Both accept the same three shapes: a bare network ``{"layers": [...]}``, a whole
job request, or ``{"convnetjs": "<demo source>"}`` (a `.js` file on the command
line). Both answer with the same bodies: the desugared network
(`netspec.Network.as_dict`) or ``{"errors": [{"path", "message"}, ...]}``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from service.config import Config
from service.spec import netspec, schemas, strict_json
from service.spec.netspec import InvalidSpec, SpecError

# Validating a network says nothing about how long to train it, so a request
# without a budget is checked as if it had the smallest one.
_ANY_BUDGET = {"examples": 1}
_SHAPES = ('a network {"layers": [...]}, a job request {"network": ..., "budget": ...}, '
           'or demo source {"convnetjs": "..."}')


def parse_json(text: str | bytes, config: Config) -> Any:
    """Parse strict JSON (service/spec/strict_json.py); raise InvalidSpec with path ""."""
    try:
        return strict_json.loads(text, config.max_json_depth)
    except strict_json.NotJSON as exc:
        raise InvalidSpec([SpecError("", str(exc))]) from None


def check(body: Any, config: Config, uploads=None) -> netspec.Network:
    """Validate any of the three accepted shapes (`uploads`: the caller's datasets, as
    schemas.load_job_request takes them); return the network or raise InvalidSpec."""
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
    _, network = schemas.load_job_request(body, config, uploads)
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
