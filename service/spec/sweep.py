"""Sweeps: one base job request, variants of it, and repeats, compared side by side.

A sweep request is ``{"name", "base": {job request}, "variants": [{"name", "patch"}], "grid": {path: [values]},
"repeats": n}``. Each variant's request is the base with its ``patch`` applied as a JSON merge patch
(RFC 7396: objects merge, ``null`` removes a key, anything else, lists included, replaces), then one
combination of the ``grid`` set at dotted paths (``trainer.batch_size``, ``network.layers.1.filters``).
With both, every variant is crossed with every combination; with neither, the base is the one variant.
Every repeat of a variant is its own job; repeat r trains with seed ``seed + r``, and the seeds are the
same for every variant, so that variants differ only in what their patch changes.
"""

from __future__ import annotations

import copy
import random
from dataclasses import dataclass
from typing import Any

from service.config import Config
from service.errors import Invalid
from service.spec import netspec
from service.spec.netspec import InvalidSpec, SpecError
from service.spec.patch import merge_patch
from service.spec.paths import PathError, expand_grid, grid_label, parse_path, set_path
from service.spec.schemas import load_job_request

MAX_VARIANTS = 100  # listed variants, and values per grid path
MAX_JOBS = 500  # variants x grid combinations x repeats
MAX_REPEATS = 100
MAX_NAME = 100  # a variant's name; the sweep's name may be as long as a job's (200)
SEED_LIMIT = 2**63  # a job's seed is below this
FIELDS = ("name", "base", "variants", "grid", "repeats")


@dataclass
class Variant:
    """One row of the comparison: its name, where it came from, and its job request before validation."""

    name: str
    request: dict
    patch: dict | None = None
    grid: dict | None = None


@dataclass
class SweepSpec:
    name: str
    base: dict
    variants: list[Variant]
    repeats: int
    seed: int


@dataclass
class Planned:
    """A validated variant: its accepted request (seed of repeat 0) and network summary."""

    variant: Variant
    request: dict
    summary: dict
    params: int

    def job_request(self, repeat: int, sweep_name: str, repeats: int) -> dict:
        request = copy.deepcopy(self.request)
        request["seed"] = (request["seed"] + repeat) % SEED_LIMIT
        request["name"] = job_name(sweep_name, self.variant.name, repeat, repeats)
        return request


def job_name(sweep_name: str, variant: str, repeat: int, repeats: int) -> str:
    """`study/3x3 kernels/2`: the sweep, the variant and (with repeats) the repeat, at most 200 characters."""
    parts = [p for p in (sweep_name, variant) if p]
    if repeats > 1:
        parts.append(str(repeat + 1))
    return "/".join(parts)[:200]


def _text(value: Any, path: str, limit: int, errors: list[SpecError], required: bool = False) -> str | None:
    """`value` if it is a string that fits, else None with the reason added to `errors`."""
    if not isinstance(value, str):
        errors.append(SpecError(path, f"{path.rsplit('.', 1)[-1]} must be a string (text in quotes), "
                                      f"not {netspec.describe(value)}"))
        return None
    if required and not value.strip():
        errors.append(SpecError(path, "a variant needs a name that is not empty: it labels its row of the table"))
        return None
    if len(value) > limit:
        errors.append(SpecError(path, f"{path.rsplit('.', 1)[-1]} is longer than {limit} characters"))
        return None
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        errors.append(SpecError(path, f"{path.rsplit('.', 1)[-1]} is not valid Unicode text (a lone surrogate)"))
        return None
    return value


JOB_FIELDS = ("network", "convnetjs", "trainer", "data", "budget", "seed", "device")


def parse(body: Any) -> SweepSpec:
    """Check a sweep request's own structure and expand its variants; raise InvalidSpec (paths into the body)."""
    if not isinstance(body, dict):
        raise InvalidSpec([SpecError("", f"a sweep request must be a JSON object, not {netspec.type_name(body)}")])
    errors: list[SpecError] = []
    for key in body:
        if key not in FIELDS:
            hint = " It is a field of a job request: put it in base." if key in JOB_FIELDS else ""
            errors.append(SpecError(key, f"'{key}' is not a field of a sweep request; its fields are "
                                         f"{', '.join(FIELDS)}.{hint}"))
    base = body.get("base")
    if "base" not in body:
        errors.append(SpecError("base", "a sweep needs a base: the job request that its variants change"))
    elif not isinstance(base, dict):
        errors.append(SpecError("base", f"base must be a job request (an object), not {netspec.describe(base)}"))
    name = _text(body["name"], "name", 200, errors) if "name" in body else None
    if name is None and isinstance(base, dict):
        name = _text(base.get("name"), "base.name", 200, [])  # a bad base name is each variant's error
    name = name or ""

    repeats = body.get("repeats", 1)
    if isinstance(repeats, bool) or not isinstance(repeats, int):
        errors.append(SpecError("repeats", f"repeats must be a whole number, not {netspec.describe(repeats)}"))
        repeats = 1
    elif not 1 <= repeats <= MAX_REPEATS:
        errors.append(SpecError("repeats", f"repeats must be between 1 and {MAX_REPEATS}, got {repeats}"))
        repeats = 1

    listed = _variants(body, errors) if "variants" in body else []
    paths = _grid(body, errors) if "grid" in body else {}
    grid = body.get("grid") if paths else {}
    total = max(1, len(listed)) * repeats
    for values in grid.values():
        total *= len(values)
    if total > MAX_JOBS:
        errors.append(SpecError("", f"this sweep would be {total:,} jobs (variants x grid combinations x repeats); "
                                    f"the limit is {MAX_JOBS}"))
    if errors:
        raise InvalidSpec(errors)

    seed = base.get("seed")
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < SEED_LIMIT:
        seed = random.SystemRandom().randrange(2**31)  # a bad seed in base is reported by each variant's check
    expanded: list[Variant] = []
    for variant_name, patch in listed or [("", None)]:
        merged = merge_patch(base, patch) if patch is not None else copy.deepcopy(base)
        for combination in expand_grid(grid):
            label = ", ".join(p for p in (variant_name, grid_label(combination)) if p) or name or "base"
            request = merged
            for path, value in combination.items():
                try:
                    request = set_path(request, paths[path], value)
                except PathError as exc:
                    raise InvalidSpec([SpecError(f"grid.{path}", f"variant {label!r}: {exc}")]) from None
            if request.get("seed") is None:  # the same seeds for every variant: they differ only by their change
                request = {**request, "seed": seed}
            expanded.append(Variant(label, request, patch, combination or None))
    names = [v.name for v in expanded]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:  # a grid that lists a value twice
        raise InvalidSpec([SpecError("grid", f"two variants would both be called {n!r}; every row of the table "
                                             "needs its own name, so list each value once") for n in twice])
    return SweepSpec(name, base, expanded, repeats, seed)


def _variants(body: dict, errors: list[SpecError]) -> list[tuple[str, dict]]:
    variants = body["variants"]
    if not isinstance(variants, list) or not variants:
        errors.append(SpecError("variants", "variants must be a list of {\"name\", \"patch\"} objects, not "
                                            + ("an empty list" if variants == [] else netspec.describe(variants))))
        return []
    if len(variants) > MAX_VARIANTS:
        errors.append(SpecError("variants", f"{len(variants)} variants is more than the limit of {MAX_VARIANTS}"))
        return []
    listed: list[tuple[str, dict]] = []
    seen: dict[str, int] = {}
    for i, item in enumerate(variants):
        where = f"variants[{i}]"
        if not isinstance(item, dict):
            errors.append(SpecError(where, f"a variant must be an object with name and patch, not {netspec.describe(item)}"))
            continue
        for key in item:
            if key not in ("name", "patch"):
                errors.append(SpecError(f"{where}.{key}", f"'{key}' is not a field of a variant; its fields are "
                                                          "name and patch"))
        if "name" not in item:
            errors.append(SpecError(f"{where}.name", "a variant needs a name: it labels its row of the table"))
            variant_name = None
        else:
            variant_name = _text(item["name"], f"{where}.name", MAX_NAME, errors, required=True)
        if variant_name is not None:
            if variant_name in seen:
                errors.append(SpecError(f"{where}.name", f"variants[{seen[variant_name]}] is called {variant_name!r} "
                                                         "already; each variant needs its own name"))
            seen.setdefault(variant_name, i)
        patch = item.get("patch")
        if "patch" not in item:
            errors.append(SpecError(f"{where}.patch", "a variant needs a patch: a JSON merge patch (RFC 7396) of the "
                                                      "base, such as {\"trainer\": {\"batch_size\": 40}}, or {} for "
                                                      "the base itself"))
        elif not isinstance(patch, dict):
            errors.append(SpecError(f"{where}.patch", f"patch must be an object (a JSON merge patch of the base), "
                                                      f"not {netspec.describe(patch)}"))
        listed.append((variant_name or "", patch if isinstance(patch, dict) else {}))
    return listed


def _grid(body: dict, errors: list[SpecError]) -> dict[str, list[str | int]]:
    """The grid's paths, parsed; {} when the grid has errors (added to `errors`)."""
    grid = body["grid"]
    if not isinstance(grid, dict) or not grid:
        errors.append(SpecError("grid", "grid must be an object from paths to lists of values, such as "
                                        "{\"trainer.batch_size\": [10, 20]}, not "
                                        + ("an empty object" if grid == {} else netspec.describe(grid))))
        return {}
    paths: dict[str, list[str | int]] = {}
    count = len(errors)
    for path, values in grid.items():
        where = f"grid.{path}"
        try:
            if _text(path, where, 200, errors) is not None:
                paths[path] = parse_path(path)
        except PathError as exc:
            errors.append(SpecError(where, str(exc)))
        if not isinstance(values, list) or not values:
            errors.append(SpecError(where, "each path of a grid takes a list of one or more values, not "
                                           + ("an empty list" if values == [] else netspec.describe(values))))
        elif len(values) > MAX_VARIANTS:
            errors.append(SpecError(where, f"{len(values)} values is more than the limit of {MAX_VARIANTS}"))
    return paths if len(errors) == count else {}


class InvalidSweep(Invalid):
    """Variants whose merged requests are not valid job requests (field errors name their variant)."""

    title = "Invalid sweep"

    def __init__(self, errors: list[dict], names: list[str]):
        shown = ", ".join(repr(name) for name in names)
        which = f"variant {shown} is" if len(names) == 1 else f"variants {shown} are"
        super().__init__(f"{which} not a valid job request; nothing was queued", errors=errors, variants=names)
        self.names = names


def plan(spec: SweepSpec, config: Config) -> list[Planned]:
    """Validate every variant's request as POST /v1/jobs would; raise InvalidSweep naming every bad variant."""
    planned, errors, bad = [], [], []
    for variant in spec.variants:
        request = {**variant.request, "name": job_name(spec.name, variant.name, 0, spec.repeats)}
        try:
            if "init" in request:
                # Starting weights need the owner checks of POST /v1/jobs (service/spec/initial_weights.py).
                raise InvalidSpec([SpecError("init", "a sweep cannot start from given weights; submit such jobs "
                                                     "one by one with POST /v1/jobs")])
            accepted, network = load_job_request(request, config)
        except InvalidSpec as exc:
            bad.append(variant.name)
            errors += [{**e.as_dict(), "message": f"variant {variant.name!r}: {e.message}", "variant": variant.name}
                       for e in exc.errors]
            continue
        planned.append(Planned(variant, accepted, network.as_dict(), network.params))
    if bad:
        raise InvalidSweep(errors, bad)
    return planned
