"""Sweeps: one base job request, variants of it, and repeats, compared side by side.

A sweep request is ``{"name", "base": {job request}, "variants": [{"name", "patch"}], "grid": {path: [values]},
"repeats": n}``. Each variant's request is the base with its ``patch`` applied as a JSON merge patch
(RFC 7396: objects merge, ``null`` removes a key, anything else, lists included, replaces), then one
combination of the ``grid`` set at dotted paths (``trainer.batch_size``, ``network.layers.1.filters``).
With both, every variant is crossed with every combination; with neither, the base is the one variant.
Every repeat of a variant is its own job; repeat r trains with seed ``seed + r``, and the seeds are the
same for every variant, so that variants differ only in what their patch changes.

A sweep is bounded before it is built (Config's sweep_max_*: CONVTRAIN_SWEEP_MAX_GRID_PATHS, _GRID_VALUES,
_VARIANTS, _REPEATS, _JOBS and _CHECK_BYTES): the counts are compared first, the jobs they multiply to
and the bytes of JSON the distinct job requests add up to are worked out from the counts and sizes
alone, and only then are the requests made, each sharing the base's untouched parts, and validated,
each distinct request once. Planning is linear in the size of the sweep request.
"""

from __future__ import annotations

import itertools
import json
import random
from dataclasses import dataclass, field
from typing import Any, Callable

from service.config import Config
from service.errors import Invalid
from service.spec import netspec
from service.spec.netspec import InvalidSpec, SpecError
from service.spec.patch import merge_patch
from service.spec.paths import PathError, label_keys, parse_path, set_paths, value_text
from service.spec.schemas import load_job_request

# The limits are Config fields (CONVTRAIN_SWEEP_MAX_*); these are their defaults, for those who import them.
MAX_VARIANTS = Config.sweep_max_variants  # listed variants
MAX_GRID_VALUES = Config.sweep_max_grid_values  # values at one grid path
MAX_GRID_PATHS = Config.sweep_max_grid_paths
MAX_JOBS = Config.sweep_max_jobs  # variants x grid combinations x repeats
MAX_REPEATS = Config.sweep_max_repeats
MAX_CHECK_BYTES = Config.sweep_max_check_bytes
MAX_LABEL_VALUE = 60  # characters of a grid value in a row's name; a longer one is shown by its position
MAX_ERRORS = 100  # problems reported for a sweep's variants; checking stops there
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
    # What the request is made of (the patch's JSON, the grid values' positions): the same key, the same
    # request, validated once. None: plan compares the requests themselves.
    key: Any = field(default=None, repr=False, compare=False)


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
        """The request of one repeat: a new top-level object; its sections are the planned request's own,
        shared by every repeat (and by identical variants), so it is to be stored, not changed."""
        return {**self.request, "seed": (self.request["seed"] + repeat) % SEED_LIMIT,
                "name": job_name(sweep_name, self.variant.name, repeat, repeats)}


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


def parse(body: Any, config: Config | None = None) -> SweepSpec:
    """Check a sweep request's own structure and expand its variants; raise InvalidSpec (paths into the body).

    The limits of `config` (default: Config()'s) are checked first, on counts alone: how many variants,
    grid paths and values at each path, the jobs they multiply to, and the bytes of JSON the distinct job
    requests would add up to. Only a sweep within all of them is expanded, in time linear in its size."""
    config = config or Config()
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
    elif not 1 <= repeats <= config.sweep_max_repeats:
        errors.append(SpecError("repeats", f"repeats must be between 1 and {config.sweep_max_repeats} (the limit "
                                           f"of repeats), got {repeats}"))
        repeats = 1

    listed = _variants(body, errors, config) if "variants" in body else []
    paths = _grid(body, errors, config) if "grid" in body else {}
    grid: dict[str, list] = body["grid"] if paths else {}
    combinations = 1
    for values in grid.values():
        combinations *= len(values)
    total = max(1, len(listed)) * combinations * repeats
    if total > config.sweep_max_jobs:
        shown = f"{total:,}" if total < 10**6 else netspec.sci(total)
        errors.append(SpecError("", f"this sweep would be {shown} jobs (variants x grid combinations x repeats); "
                                    f"the limit is {config.sweep_max_jobs} jobs"))
    if errors:
        raise InvalidSpec(errors)
    patch_texts = [_json(patch) for _, patch in listed]  # each patch once: which are the same, and how big
    _check_bytes(base, patch_texts, grid, combinations, config)

    seed = base.get("seed")
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < SEED_LIMIT:
        seed = random.SystemRandom().randrange(2**31)  # a bad seed in base is reported by each variant's check
    expanded = _expand(name, base, listed, patch_texts, grid, paths, seed)
    seen: dict[str, int] = {}
    for variant in expanded:
        seen[variant.name] = seen.get(variant.name, 0) + 1
    twice = sorted(n for n, count in seen.items() if count > 1)
    if twice:  # a grid that lists a value twice
        raise InvalidSpec([SpecError("grid", f"two variants would both be called {n!r}; every row of the table "
                                             "needs its own name, so list each value once") for n in twice])
    return SweepSpec(name, base, expanded, repeats, seed)


def _expand(name: str, base: dict, listed: list[tuple[str, dict]], patch_texts: list[str], grid: dict[str, list],
            paths: dict[str, list[str | int]], seed: int) -> list[Variant]:
    """Every variant crossed with every combination of the grid. The base is never copied whole: a patch
    copies the objects it changes, a combination the objects on its paths (once each), and the rest of
    every request is the base's own, shared, never changed."""
    order = list(grid)
    keys = label_keys(order)
    # Each value's part of a label, worked out once: a combination only joins them. A value too long to
    # read in a row's name is shown by its position in its list (#2), the first one where it is listed, so
    # that a value listed twice still makes two rows of one name (refused below).
    parts = []
    for path in order:
        texts = [value_text(value) for value in grid[path]]
        first: dict[str, int] = {}
        for i, text in enumerate(texts):
            first.setdefault(text, i)
        parts.append([f"{keys[path]}={text if len(text) <= MAX_LABEL_VALUE else f'#{first[text] + 1}'}"
                      for text in texts])
    expanded: list[Variant] = []
    for (variant_name, patch), patch_text in zip(listed, patch_texts) if listed else [(("", None), None)]:
        merged = merge_patch(base, patch) if patch is not None else base
        for picks in itertools.product(*(range(len(grid[path])) for path in order)):
            label = ", ".join(p for p in (variant_name, ", ".join(parts[n][i] for n, i in enumerate(picks))) if p) \
                or name or "base"
            chosen = {path: grid[path][i] for path, i in zip(order, picks)}
            request = merged
            if chosen:
                try:
                    request = set_paths(merged, [(paths[path], value) for path, value in chosen.items()])
                except PathError as exc:  # exc.index: which of the paths, in the grid's order
                    raise InvalidSpec([SpecError(f"grid.{order[exc.index]}", f"variant {label!r}: {exc}")]) from None
            if request.get("seed") is None:  # the same seeds for every variant: they differ only by their change
                request = {**request, "seed": seed}
            expanded.append(Variant(label, request, patch, chosen or None, key=(patch_text, picks)))
    return expanded


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _size(text: str) -> int:
    return len(text.encode("utf-8", "surrogatepass"))


def _human(size: int) -> str:
    if size >= 2**20:
        return f"{size / 2**20:.1f} MiB"
    return f"{size / 2**10:.0f} KiB" if size >= 2**10 else f"{size} bytes"


def _check_bytes(base: dict, patch_texts: list[str], grid: dict[str, list], combinations: int, config: Config) -> None:
    """Refuse a sweep whose distinct job requests would add up to more than `sweep_max_check_bytes` of JSON,
    worked out from the sizes of the base, the patches and the grid's values, before any request is made.
    Each distinct request is validated once, so this bounds the time that planning takes."""
    patches = {text: _size(text) for text in patch_texts}  # identical patches make identical requests
    distinct = max(1, len(patches))
    base_size = _size(_json(base))
    base_part = combinations * distinct * base_size
    patch_part = combinations * sum(patches.values())
    # Each value at a path is in (combinations / the path's count) combinations, with each distinct patch.
    grid_part = distinct * sum(combinations // len(values) * sum(_size(_json(v)) for v in values)
                               for values in grid.values())
    total = base_part + patch_part + grid_part
    if total <= config.sweep_max_check_bytes:
        return
    if base_part >= max(patch_part, grid_part):
        path, why = "base", f"the base ({_human(base_size)}) is part of each of them"
    elif patch_part >= grid_part:
        path, why = "variants", f"each variant's patch is part of {combinations:,} of them"
    else:
        path, why = "grid", "each of the grid's values is part of many of them"
    raise InvalidSpec([SpecError(path, f"this sweep's {combinations * distinct:,} distinct job requests would add "
                                       f"up to about {_human(total)} of JSON to check, as {why}; the limit is "
                                       f"{_human(config.sweep_max_check_bytes)}: make it smaller or the sweep "
                                       "shorter")])


def _variants(body: dict, errors: list[SpecError], config: Config) -> list[tuple[str, dict]]:
    variants = body["variants"]
    if not isinstance(variants, list) or not variants:
        errors.append(SpecError("variants", "variants must be a list of {\"name\", \"patch\"} objects, not "
                                            + ("an empty list" if variants == [] else netspec.describe(variants))))
        return []
    if len(variants) > config.sweep_max_variants:  # counted before any is read
        errors.append(SpecError("variants", f"{len(variants):,} variants is more than the limit of "
                                            f"{config.sweep_max_variants} variants"))
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


def _grid(body: dict, errors: list[SpecError], config: Config) -> dict[str, list[str | int]]:
    """The grid's paths, parsed; {} when the grid has errors (added to `errors`)."""
    grid = body["grid"]
    if not isinstance(grid, dict) or not grid:
        errors.append(SpecError("grid", "grid must be an object from paths to lists of values, such as "
                                        "{\"trainer.batch_size\": [10, 20]}, not "
                                        + ("an empty object" if grid == {} else netspec.describe(grid))))
        return {}
    if len(grid) > config.sweep_max_grid_paths:  # counted before any path is read
        errors.append(SpecError("grid", f"{len(grid):,} paths is more than the limit of "
                                        f"{config.sweep_max_grid_paths} grid paths"))
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
        elif len(values) > config.sweep_max_grid_values:
            errors.append(SpecError(where, f"{len(values):,} values is more than the limit of "
                                           f"{config.sweep_max_grid_values} values at one grid path"))
    return paths if len(errors) == count else {}


class InvalidSweep(Invalid):
    """Variants whose merged requests are not valid job requests (field errors name their variant)."""

    title = "Invalid sweep"

    def __init__(self, errors: list[dict], names: list[str], unchecked: int = 0):
        shown = ", ".join(repr(name) for name in names)
        which = f"variant {shown} is" if len(names) == 1 else f"variants {shown} are"
        detail = f"{which} not a valid job request; nothing was queued"
        if unchecked:
            detail += (f" (checking stopped at {MAX_ERRORS} problems: {unchecked} more variant"
                       f"{'s were' if unchecked > 1 else ' was'} not checked)")
        super().__init__(detail, errors=errors, variants=names)
        self.names = names
        self.unchecked = unchecked


def plan(spec: SweepSpec, config: Config, uploads: Callable[[str], dict | None] | None = None) -> list[Planned]:
    """Validate every variant's request as POST /v1/jobs would (`uploads`: the caller's datasets, as
    load_job_request takes them); raise InvalidSweep naming every bad variant.

    Variants made of the same patch and grid values (the same patch under two names), whose requests are
    the same but for their names, share one validation. Once MAX_ERRORS problems are found the sweep is
    refused without checking the variants left: its answer stays small however many are bad."""
    planned: list[Planned] = []
    errors: list[dict] = []
    bad: list[str] = []
    checked: dict[Any, Any] = {}  # a variant's key -> (accepted, summary, params) or InvalidSpec
    unchecked = 0
    for variant in spec.variants:
        if len(errors) >= MAX_ERRORS:
            unchecked += 1
            continue
        name = job_name(spec.name, variant.name, 0, spec.repeats)
        if "init" in variant.request:
            # Starting weights need the owner checks of POST /v1/jobs (service/spec/initial_weights.py).
            outcome: Any = InvalidSpec([SpecError("init", "a sweep cannot start from given weights; submit such "
                                                          "jobs one by one with POST /v1/jobs")])
        else:
            # The name is the sweep's own (at most 200 characters of text: always valid), so it is left out.
            key = variant.key if variant.key is not None else \
                _json({k: v for k, v in variant.request.items() if k != "name"})
            outcome = checked.get(key)
            if outcome is None:
                try:
                    accepted, network = load_job_request({**variant.request, "name": name}, config, uploads)
                    outcome = (accepted, network.as_dict(), network.params)
                except InvalidSpec as exc:
                    outcome = exc
                checked[key] = outcome
        if isinstance(outcome, InvalidSpec):
            bad.append(variant.name)
            errors += [{**e.as_dict(), "message": f"variant {variant.name!r}: {e.message}", "variant": variant.name}
                       for e in outcome.errors[:MAX_ERRORS - len(errors)]]
            continue
        accepted, summary, params = outcome
        planned.append(Planned(variant, {**accepted, "name": name}, summary, params))
    if bad:
        raise InvalidSweep(errors, bad, unchecked)
    return planned
