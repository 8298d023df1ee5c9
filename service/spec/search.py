"""Searches: a base job request, architectures as merge patches of it, and a space of values to sample.

A search request is ``{"name", "base": {job request}, "architectures": [{"name", "patch"}], "space": {path:
{"choice": [values]} | {"int": [low, high]} | {"float": [low, high], "log": true}}, "objective": "val_acc",
"trials", "parallel", "sampler": "tpe"|"random", "pruner": {"type", "min_examples", "reduction_factor"},
"seed", "val_slice"}``. A trial's request is the base with its architecture's patch applied (RFC 7396, as
sweeps do), then each sampled value set at its path (the sweep grid's path grammar). A path that does not
exist in the chosen architecture is skipped for that trial: a path exists when every step of it is in the
architecture's accepted request (defaults filled in), or when it names a field of the layer it ends in.

Everything a body can choose is bounded first (Config's search_max_*), every architecture is validated as
a job request up front, and each path must exist in at least one of them. This module is pure Python: the
worker (worker/search.py) samples with Optuna and calls `candidate` for each trial.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any, Callable

from service.config import Config
from service.errors import Invalid
from service.spec import netspec
from service.spec.netspec import InvalidSpec, SpecError
from service.spec.patch import merge_patch
from service.spec.paths import PathError, parse_path, set_paths, value_text
from service.spec.schemas import load_job_request
from service.spec.sweep import JOB_FIELDS, MAX_NAME, _text

FIELDS = ("name", "base", "architectures", "space", "objective", "trials", "parallel", "sampler", "pruner",
          "seed", "val_slice")
SAMPLERS = ("tpe", "random")
PRUNERS = ("hyperband", "successive_halving", "none")
OBJECTIVES = ("val_acc",)
KINDS = ("choice", "int", "float")
BASE_NAME = "base"  # the one architecture of a search that lists none
VAL_SLICE = 2000  # held-out images each rung is measured on: the first of the validation split, every time
MAX_VAL_SLICE = 10_000
MAX_REDUCTION = 10
MAX_BOUND = 1e12  # the largest number a choice or range may hold: also refuses NaN, infinities and 10**400


@dataclass(frozen=True)
class Dimension:
    """One path of the space: what is sampled there and within which bounds."""

    path: str
    parts: tuple
    kind: str  # choice, int, float
    choices: tuple = ()
    low: float = 0
    high: float = 0
    log: bool = False


@dataclass(frozen=True)
class Architecture:
    """A validated architecture: its merged request (before the space's values) and which paths it has."""

    name: str
    patch: dict | None
    request: dict  # base with the patch applied, as written (validated once up front)
    dimensions: tuple[Dimension, ...]  # the space's paths present in it
    skipped: tuple[str, ...]  # the space's paths it does not have


@dataclass(frozen=True)
class SearchSpec:
    name: str
    architectures: tuple[Architecture, ...]
    space: tuple[Dimension, ...]
    trials: int
    parallel: int
    sampler: str
    pruner: dict  # {type, min_examples (None for none without rungs), reduction_factor}
    seed: int
    val_slice: int
    objective: str = "val_acc"
    # The owner's uploaded datasets by name, as load_job_request takes them (pinned when the search was made).
    uploads: Callable[[str], dict | None] | None = None

    def architecture(self, name: str) -> Architecture:
        return next(a for a in self.architectures if a.name == name)


@dataclass(frozen=True)
class Candidate:
    """One trial's job request (None when invalid), its network, and what of the space it could not use."""

    request: dict | None
    summary: dict | None
    params: int
    skipped: tuple[str, ...]
    errors: list[dict]


class InvalidSearch(Invalid):
    """A search whose architectures or space do not make valid job requests (field errors name them)."""

    title = "Invalid search"


def rungs(pruner: dict, budget_examples: int) -> list[int]:
    """The examples at which a trial reports val_acc: min_examples times the reduction factor's powers,
    below the budget (the pruners' rungs: Hyperband's brackets all use rungs of this sequence)."""
    first, factor = pruner.get("min_examples"), pruner.get("reduction_factor", 3)
    out: list[int] = []
    if not first:
        return out
    step = first
    while step < budget_examples:
        out.append(int(step))
        step *= factor
    return out


def _whole(body: dict, key: str, default: int, low: int, high: int, errors: list[SpecError], where: str = "",
           limit_name: str = "") -> int:
    value = body.get(key, default)
    path = f"{where}{key}"
    if isinstance(value, bool) or not isinstance(value, int):
        errors.append(SpecError(path, f"{key} must be a whole number, not {netspec.describe(value)}"))
        return default
    if not low <= value <= high:
        limit = f" ({limit_name})" if limit_name else ""
        errors.append(SpecError(path, f"{key} must be between {low} and {high}{limit}, got {value}"))
        return default
    return value


def _word(body: dict, key: str, default: str, allowed: tuple, errors: list[SpecError], path: str) -> str:
    value = body.get(key, default)
    if value not in allowed:
        errors.append(SpecError(path, f"{key} must be one of {', '.join(allowed)}, not {netspec.describe(value)}"))
        return default
    return value


def parse(body: Any, config: Config | None = None,
          uploads: Callable[[str], dict | None] | None = None) -> SearchSpec:
    """Check a search request, bounded before anything is expanded, and validate each architecture as a job
    request; raise InvalidSpec (the body's own structure) or InvalidSearch (architectures that are not valid
    job requests), every error naming its field. `uploads` finds the owner's datasets by name, as for a job."""
    config = config or Config()
    if not isinstance(body, dict):
        raise InvalidSpec([SpecError("", f"a search request must be a JSON object, not {netspec.type_name(body)}")])
    errors: list[SpecError] = []
    for key in body:
        if key not in FIELDS:
            hint = " It is a field of a job request: put it in base." if key in JOB_FIELDS else ""
            errors.append(SpecError(key, f"'{key}' is not a field of a search request; its fields are "
                                         f"{', '.join(FIELDS)}.{hint}"))
    base = body.get("base")
    if not isinstance(base, dict):
        errors.append(SpecError("base", "a search needs a base: the job request (an object) that its "
                                        "architectures and space change"))
        base = {}
    name = (_text(body["name"], "name", 200, errors) if "name" in body else None) or ""
    trials = _whole(body, "trials", 20, 1, config.search_max_trials, errors, limit_name="the limit of trials")
    parallel = _whole(body, "parallel", 2, 1, config.search_max_parallel, errors,
                      limit_name="the limit of trials trained at once")
    val_slice = _whole(body, "val_slice", VAL_SLICE, 100, MAX_VAL_SLICE, errors)
    sampler = _word(body, "sampler", "tpe", SAMPLERS, errors, "sampler")
    _word(body, "objective", "val_acc", OBJECTIVES, errors, "objective")
    pruner = _pruner(body.get("pruner", {"type": "none"}), errors)
    seed = body.get("seed")
    if seed is None:
        seed = random.SystemRandom().randrange(2**31)
    elif isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**31:
        errors.append(SpecError("seed", f"seed must be a whole number from 0 to {2**31 - 1}, "
                                        f"not {netspec.describe(seed)}"))
        seed = 0
    listed = _architectures(body, errors, config)
    space = _space(body, errors, config)
    if errors:
        raise InvalidSpec(errors)

    architectures: list[Architecture] = []
    problems: list[dict] = []
    for i, (arch_name, patch) in enumerate(listed):
        merged = merge_patch(base, patch) if patch is not None else base
        merged = {**merged, "name": name[:200]}
        if merged.get("seed") is None:  # every trial trains from the same seed: they differ only by their values
            merged["seed"] = seed
        where = f"architectures[{i}].patch" if patch is not None else "base"
        try:
            accepted, _ = load_job_request(merged, config, uploads)
        except InvalidSpec as exc:
            problems += [{**e.as_dict(), "path": f"{where}.{e.path}" if e.path else where,
                          "message": f"architecture {arch_name!r}: {e.message}"} for e in exc.errors]
            continue
        if "examples" not in accepted["budget"]:
            at = f"{where}.budget" if "budget" in (patch or {}) else "base.budget"
            problems.append({"path": at, "message": "a search's trials need a budget in examples "
                             "(its pruner's rungs are examples trained), such as {\"examples\": 300000}"})
            continue
        if accepted["data"]["validation_fraction"] == 0:
            at = f"{where}.data.validation_fraction" if "data" in (patch or {}) else "base.data.validation_fraction"
            problems.append({"path": at, "message": "a search ranks its trials by val_acc: keep a validation "
                             "split (validation_fraction above 0)"})
            continue
        if "convnetjs" in merged:  # the paste read once: the space's paths then apply to its network and trainer
            merged = {**{k: v for k, v in merged.items() if k != "convnetjs"},
                      "network": accepted["network"], "trainer": accepted["trainer"]}
        first = pruner.get("min_examples")
        if first and first >= accepted["budget"]["examples"]:
            problems.append({"path": "pruner.min_examples", "message": f"min_examples ({first}) must be below "
                             f"architecture {arch_name!r}'s budget of {accepted['budget']['examples']} examples"})
        present = [d for d in space if _exists(accepted, d.parts)]
        architectures.append(Architecture(arch_name, patch, merged, tuple(present),
                                          tuple(d.path for d in space if d not in present)))
    if not problems:
        for d in space:
            if all(d.path in a.skipped for a in architectures):
                problems.append({"path": f"space.{d.path}", "message": f"{d.path} is in none of the "
                                 "architectures: no trial could use it"})
    if problems:
        raise InvalidSearch(f"{len(problems)} problem(s) found; nothing was queued", errors=problems)
    return SearchSpec(name, tuple(architectures), tuple(space), trials, parallel, sampler, pruner, seed, val_slice,
                      uploads=uploads)


def _pruner(raw: Any, errors: list[SpecError]) -> dict:
    if not isinstance(raw, dict):
        errors.append(SpecError("pruner", "pruner must be an object such as {\"type\": \"hyperband\", "
                                          f"\"min_examples\": 10000}}, not {netspec.describe(raw)}"))
        return {"type": "none", "min_examples": None, "reduction_factor": 3}
    for key in raw:
        if key not in ("type", "min_examples", "reduction_factor"):
            errors.append(SpecError(f"pruner.{key}", f"'{key}' is not a field of a pruner; its fields are type, "
                                                     "min_examples and reduction_factor"))
    kind = _word(raw, "type", "none", PRUNERS, errors, "pruner.type")
    factor = _whole(raw, "reduction_factor", 3, 2, MAX_REDUCTION, errors, "pruner.")
    first = None
    if "min_examples" in raw or kind != "none":
        if "min_examples" not in raw:
            errors.append(SpecError("pruner.min_examples", f"a {kind} pruner needs min_examples: the examples "
                                                           "a trial trains before its first rung"))
        else:
            first = _whole(raw, "min_examples", 1, 1, Config.max_examples, errors, "pruner.")
    return {"type": kind, "min_examples": first, "reduction_factor": factor}


def _architectures(body: dict, errors: list[SpecError], config: Config) -> list[tuple[str, dict | None]]:
    if "architectures" not in body:
        return [(BASE_NAME, None)]
    items = body["architectures"]
    if not isinstance(items, list) or not items:
        errors.append(SpecError("architectures", "architectures must be a list of {\"name\", \"patch\"} objects, "
                                                 "not " + ("an empty list" if items == [] else netspec.describe(items))))
        return []
    if len(items) > config.search_max_architectures:
        errors.append(SpecError("architectures", f"{len(items):,} architectures is more than the limit of "
                                                 f"{config.search_max_architectures}"))
        return []
    listed: list[tuple[str, dict | None]] = []
    seen: set[str] = set()
    for i, item in enumerate(items):
        where = f"architectures[{i}]"
        if not isinstance(item, dict):
            errors.append(SpecError(where, f"an architecture must be an object with name and patch, "
                                           f"not {netspec.describe(item)}"))
            continue
        for key in item:
            if key not in ("name", "patch"):
                errors.append(SpecError(f"{where}.{key}", f"'{key}' is not a field of an architecture; its fields "
                                                          "are name and patch"))
        arch_name = _text(item.get("name"), f"{where}.name", MAX_NAME, errors, required=True)
        if arch_name is not None and arch_name in seen:
            errors.append(SpecError(f"{where}.name", f"another architecture is called {arch_name!r} already; "
                                                     "each needs its own name"))
        seen.add(arch_name or "")
        patch = item.get("patch")
        if not isinstance(patch, dict):
            errors.append(SpecError(f"{where}.patch", "patch must be an object (a JSON merge patch of the base), "
                                                      f"not {netspec.describe(patch)}"))
            continue
        listed.append((arch_name or "", patch))
    return listed


def _space(body: dict, errors: list[SpecError], config: Config) -> list[Dimension]:
    space = body.get("space", {})
    if not isinstance(space, dict):
        errors.append(SpecError("space", "space must be an object from paths to {\"choice\": [...]}, "
                                         "{\"int\": [low, high]} or {\"float\": [low, high]}, "
                                         f"not {netspec.describe(space)}"))
        return []
    if len(space) > config.search_max_space_paths:  # counted before any path is read
        errors.append(SpecError("space", f"{len(space):,} paths is more than the limit of "
                                         f"{config.search_max_space_paths} space paths"))
        return []
    out: list[Dimension] = []
    for path, raw in space.items():
        where = f"space.{path}"
        if _text(path, where, 200, errors) is None:
            continue
        try:
            parts = tuple(parse_path(path))
        except PathError as exc:
            errors.append(SpecError(where, str(exc)))
            continue
        if parts[0] in ("name", "seed", "init", "device") or (parts[0] not in JOB_FIELDS):
            errors.append(SpecError(where, f"{parts[0]!r} cannot be searched; paths start with network, trainer, "
                                           "data or budget"))
            continue
        dimension = _dimension(path, parts, raw, where, errors, config)
        if dimension is not None:
            out.append(dimension)
    return out


def _dimension(path: str, parts: tuple, raw: Any, where: str, errors: list[SpecError],
               config: Config) -> Dimension | None:
    if not isinstance(raw, dict) or len([k for k in raw if k in KINDS]) != 1:
        errors.append(SpecError(where, "each path takes one of {\"choice\": [values]}, {\"int\": [low, high]} "
                                       f"or {{\"float\": [low, high], \"log\": true}}, not {netspec.describe(raw)}"))
        return None
    kind = next(k for k in raw if k in KINDS)
    for key in raw:
        if key not in (kind, "log"):
            errors.append(SpecError(f"{where}.{key}", f"'{key}' is not a field of a {kind} dimension"))
    log = raw.get("log", False)
    if not isinstance(log, bool) or (log and kind == "choice"):
        errors.append(SpecError(f"{where}.log", "log must be true or false, on an int or float range only"))
        return None
    values = raw[kind]
    if kind == "choice":
        if not isinstance(values, list) or not values:
            errors.append(SpecError(f"{where}.choice", "choice takes a list of one or more values"))
            return None
        if len(values) > config.search_max_choices:
            errors.append(SpecError(f"{where}.choice", f"{len(values):,} choices is more than the limit of "
                                                       f"{config.search_max_choices} per path"))
            return None
        for i, value in enumerate(values):
            if value is None or isinstance(value, (dict, list)) or (
                    isinstance(value, (int, float)) and not isinstance(value, bool) and not abs(value) <= MAX_BOUND):
                errors.append(SpecError(f"{where}.choice[{i}]", "a choice is a number, a string or true/false; "
                                                                "change structure with architectures"))
                return None
        if len({value_text(v) for v in values}) != len(values):
            errors.append(SpecError(f"{where}.choice", "each choice must be listed once"))
            return None
        return Dimension(path, parts, kind, choices=tuple(values))
    number = int if kind == "int" else (int, float)
    if (not isinstance(values, list) or len(values) != 2
            or any(isinstance(v, bool) or not isinstance(v, number) or not abs(v) <= MAX_BOUND for v in values)):
        errors.append(SpecError(f"{where}.{kind}", f"{kind} takes [low, high]: two "
                                                   f"{'whole numbers' if kind == 'int' else 'numbers'} "
                                                   f"of at most {MAX_BOUND:.0e} in size"))
        return None
    low, high = values
    if not low < high:
        errors.append(SpecError(f"{where}.{kind}", f"low ({low}) must be below high ({high})"))
        return None
    if log and low <= 0:
        errors.append(SpecError(f"{where}.{kind}", f"a log range needs low above 0, got {low}"))
        return None
    if abs(low) > 1e12 or abs(high) > 1e12:
        errors.append(SpecError(f"{where}.{kind}", "the range must lie within ±1e12"))
        return None
    return Dimension(path, parts, kind, low=low, high=high, log=log)


def _exists(request: Any, parts: tuple) -> bool:
    """Whether every step of the path is in `request`, or the path names a field of the layer it ends in."""
    node = request
    for at, part in enumerate(parts):
        last = at == len(parts) - 1
        if isinstance(node, list):
            if not isinstance(part, int) or part >= len(node):
                return False
            node = node[part]
        elif isinstance(node, dict):
            key = str(part)
            if key not in node:
                return last and _layer_field(node, key)
            node = node[key]
        else:
            return False
    return True


def _layer_field(layer: dict, key: str) -> bool:
    fields = netspec.LAYERS.get(layer.get("type"))
    return fields is not None and any(key == name or key in f.aliases for name, f in fields.items())


def candidate(spec: SearchSpec, architecture: str, params: dict[str, Any], number: int,
              config: Config) -> Candidate:
    """Trial `number`'s job request: the architecture's request with `params` (path -> value) set, validated
    as POST /v1/jobs would. Paths the architecture lacks are skipped (in `skipped`); an invalid combination
    comes back with request None and its field errors."""
    arch = spec.architecture(architecture)
    chosen = [(d.parts, params[d.path]) for d in arch.dimensions if d.path in params]
    request = set_paths(arch.request, [(list(parts), value) for parts, value in chosen])
    request = {**request, "name": trial_name(spec.name, number)}
    try:
        accepted, network = load_job_request(request, config, spec.uploads)
    except InvalidSpec as exc:
        return Candidate(None, None, 0, arch.skipped, [e.as_dict() for e in exc.errors])
    return Candidate(accepted, network.as_dict(), network.params, arch.skipped, [])


def trial_name(search_name: str, number: int) -> str:
    """`best-mnist/trial 3`: the job name of a search's trial, at most 200 characters."""
    return "/".join(p for p in (search_name[:180], f"trial {number}") if p)
