"""Sweeps: one base job request, variants of it, and repeats, compared side by side.

A sweep request is ``{"name", "base": {job request}, "variants": [{"name", "patch"}], "grid": {path: [values]},
"repeats": n}``. Each variant's request is the base with its ``patch`` applied as a JSON merge patch
(RFC 7396: objects merge, ``null`` removes a key, anything else, lists included, replaces), then one
combination of the ``grid`` set at dotted paths (``trainer.batch_size``, ``network.layers.1.filters``).
With both, every variant is crossed with every combination; with neither, the base is the one variant.
Every repeat of a variant is its own job; repeat r trains with seed ``seed + r``, and the seeds are the
same for every variant, so that variants differ only in what their patch changes.

Keys (all under ``convtrain:``, beside the job store's, see service/jobs.py):
- ``sweep:{id}``  hash: id, name, owner, created_at, repeats, seed, body (the request as sent),
                  variants (JSON: [{name, patch, grid, jobs: [job ids, one per repeat]}]), cancel_requested
- ``sweeps``      sorted set of every sweep by creation time (listing, pagination)

The sweep's status is not stored: it is read from its jobs' records, the source of truth.
"""

from __future__ import annotations

import copy
import itertools
import json
import random
import re
from dataclasses import dataclass, field
from typing import Any

from service import netspec, report
from service.config import Config
from service.jobs import PREFIX, TERMINAL, now, present
from service.netspec import InvalidSpec, SpecError
from service.schemas import load_job_request

MAX_VARIANTS = 100  # listed variants, and values per grid path
MAX_JOBS = 500  # variants x grid combinations x repeats
MAX_REPEATS = 100
MAX_NAME = 100  # a variant's name; the sweep's name may be as long as a job's (200)
SEED_LIMIT = 2**63  # a job's seed is below this
FIELDS = ("name", "base", "variants", "grid", "repeats")


class SweepNotFound(KeyError):
    pass


# --- JSON merge patch (RFC 7396) ---------------------------------------------------------------


def merge_patch(target: Any, patch: Any) -> Any:
    """`target` with `patch` applied as RFC 7396 says; neither argument is changed."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merge_patch(out.get(key), value)
    return out


# --- paths and grids ----------------------------------------------------------------------------


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
        raise PathError(f"cannot set {where()} inside {netspec._type_name(document)}")
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


# --- the request ---------------------------------------------------------------------------------


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
                                      f"not {netspec._what(value)}"))
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
        raise InvalidSpec([SpecError("", f"a sweep request must be a JSON object, not {netspec._type_name(body)}")])
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
        errors.append(SpecError("base", f"base must be a job request (an object), not {netspec._what(base)}"))
    name = _text(body["name"], "name", 200, errors) if "name" in body else None
    if name is None and isinstance(base, dict):
        name = _text(base.get("name"), "base.name", 200, [])  # a bad base name is each variant's error
    name = name or ""

    repeats = body.get("repeats", 1)
    if isinstance(repeats, bool) or not isinstance(repeats, int):
        errors.append(SpecError("repeats", f"repeats must be a whole number, not {netspec._what(repeats)}"))
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
                                            + ("an empty list" if variants == [] else netspec._what(variants))))
        return []
    if len(variants) > MAX_VARIANTS:
        errors.append(SpecError("variants", f"{len(variants)} variants is more than the limit of {MAX_VARIANTS}"))
        return []
    listed: list[tuple[str, dict]] = []
    seen: dict[str, int] = {}
    for i, item in enumerate(variants):
        where = f"variants[{i}]"
        if not isinstance(item, dict):
            errors.append(SpecError(where, f"a variant must be an object with name and patch, not {netspec._what(item)}"))
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
                                                      f"not {netspec._what(patch)}"))
        listed.append((variant_name or "", patch if isinstance(patch, dict) else {}))
    return listed


def _grid(body: dict, errors: list[SpecError]) -> dict[str, list[str | int]]:
    """The grid's paths, parsed; {} when the grid has errors (added to `errors`)."""
    grid = body["grid"]
    if not isinstance(grid, dict) or not grid:
        errors.append(SpecError("grid", "grid must be an object from paths to lists of values, such as "
                                        "{\"trainer.batch_size\": [10, 20]}, not "
                                        + ("an empty object" if grid == {} else netspec._what(grid))))
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
                                           + ("an empty list" if values == [] else netspec._what(values))))
        elif len(values) > MAX_VARIANTS:
            errors.append(SpecError(where, f"{len(values)} values is more than the limit of {MAX_VARIANTS}"))
    return paths if len(errors) == count else {}


class InvalidSweep(Exception):
    """Variants whose merged requests are not valid job requests."""

    def __init__(self, errors: list[dict], names: list[str]):
        super().__init__(f"invalid variants: {', '.join(names)}")
        self.errors, self.names = errors, names


def plan(spec: SweepSpec, config: Config) -> list[Planned]:
    """Validate every variant's request as POST /v1/jobs would; raise InvalidSweep naming every bad variant."""
    planned, errors, bad = [], [], []
    for variant in spec.variants:
        request = {**variant.request, "name": job_name(spec.name, variant.name, 0, spec.repeats)}
        try:
            if "init" in request:
                # Starting weights need the owner checks of POST /v1/jobs (service/initial_weights.py).
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


# --- status --------------------------------------------------------------------------------------


def status_of(statuses: list[str | None], cancel_requested: bool = False) -> str:
    """`running` until every job has ended (None: a job deleted on its own counts as ended), then `succeeded`
    when all succeeded, `cancelled` when the sweep was cancelled or a job was, else `failed`."""
    if any(s is not None and s not in TERMINAL for s in statuses):
        return "running"
    if statuses and all(s == "succeeded" for s in statuses):
        return "succeeded"
    if cancel_requested:
        return "cancelled"
    if any(s == "failed" for s in statuses):
        return "failed"
    return "cancelled"


# --- the store -----------------------------------------------------------------------------------


@dataclass
class SweepRecord:
    id: str
    name: str
    owner: str
    created_at: float
    repeats: int
    seed: int
    variants: list[dict]  # {name, patch, grid, jobs}
    cancel_requested: bool = False
    body: dict = field(default_factory=dict)

    @property
    def job_ids(self) -> list[str]:
        return [job_id for v in self.variants for job_id in v["jobs"]]


class SweepStore:
    """Sweep records in Redis, beside the jobs they group."""

    def __init__(self, client):
        self.r = client

    @staticmethod
    def key(sweep_id: str) -> str:
        return f"{PREFIX}sweep:{sweep_id}"

    def create(self, record: SweepRecord) -> None:
        pipe = self.r.pipeline()
        pipe.hset(self.key(record.id), mapping={
            "id": record.id, "name": record.name, "owner": record.owner, "created_at": record.created_at,
            "repeats": record.repeats, "seed": record.seed, "variants": json.dumps(record.variants),
            "body": json.dumps(record.body), "cancel_requested": "0"})
        pipe.zadd(f"{PREFIX}sweeps", {record.id: record.created_at})
        pipe.execute()

    def get(self, sweep_id: str) -> SweepRecord:
        raw = self.r.hgetall(self.key(sweep_id))
        if not raw:
            raise SweepNotFound(sweep_id)
        return _record(raw)

    def list(self, *, owner: str | None = None, cursor: float | None = None,
             limit: int = 50) -> tuple[list[SweepRecord], str | None]:
        """Newest first, only `owner`'s when given; `cursor` is the created_at score to continue below."""
        out: list[SweepRecord] = []
        top = f"({cursor}" if cursor is not None else "+inf"
        while True:
            ids = self.r.zrevrangebyscore(f"{PREFIX}sweeps", top, "-inf", start=0, num=limit * 2, withscores=True)
            if not ids:
                return out, None
            pipe = self.r.pipeline()
            for sweep_id, _ in ids:
                pipe.hgetall(self.key(sweep_id))
            for (sweep_id, score), raw in zip(ids, pipe.execute()):
                top = f"({score}"
                if not raw or (owner is not None and raw.get("owner") != owner):
                    continue
                out.append(_record(raw))
                if len(out) == limit:
                    return out, repr(score)

    def jobs(self, record: SweepRecord) -> dict[str, dict | None]:
        """Every job of the sweep as the API shows it, None for one deleted on its own."""
        ids = record.job_ids
        pipe = self.r.pipeline()
        for job_id in ids:
            pipe.hgetall(f"{PREFIX}job:{job_id}")
        return {job_id: (present(raw) if raw else None) for job_id, raw in zip(ids, pipe.execute())}

    def statuses(self, record: SweepRecord) -> list[str | None]:
        pipe = self.r.pipeline()
        for job_id in record.job_ids:
            pipe.hget(f"{PREFIX}job:{job_id}", "status")
        return pipe.execute()

    def mark_cancelled(self, sweep_id: str) -> None:
        self.r.hset(self.key(sweep_id), "cancel_requested", "1")

    def delete(self, sweep_id: str) -> None:
        pipe = self.r.pipeline()
        pipe.delete(self.key(sweep_id))
        pipe.zrem(f"{PREFIX}sweeps", sweep_id)
        pipe.execute()


def _record(raw: dict) -> SweepRecord:
    return SweepRecord(id=raw["id"], name=raw.get("name", ""), owner=raw.get("owner", ""),
                       created_at=float(raw["created_at"]), repeats=int(raw.get("repeats") or 1),
                       seed=int(raw.get("seed") or 0), variants=json.loads(raw.get("variants") or "[]"),
                       cancel_requested=raw.get("cancel_requested") == "1",
                       body=json.loads(raw.get("body") or "{}"))


# --- the sweep as the API shows it ---------------------------------------------------------------


def _job_entry(job_id: str, job: dict | None) -> dict:
    if job is None:
        return {"id": job_id, "status": "deleted", "seed": None, "progress": None, "metrics": None,
                "result": None, "error": None}
    return {"id": job_id, "status": job["status"], "seed": (job.get("request") or {}).get("seed"),
            "progress": job["progress"], "metrics": job.get("metrics"), "result": job.get("result"),
            "error": job.get("error")}


def _progress(jobs: list[dict | None]) -> dict:
    seen = sum((j["progress"]["examples_seen"] or 0) if j else 0 for j in jobs)
    totals = [j["progress"]["examples_total"] if j else None for j in jobs]
    known = all(t is not None for t in totals) and jobs
    total = sum(totals) if known else None
    done = sum(1 for j in jobs if j is None or j["status"] in TERMINAL)
    fractions = [(j["progress"]["fraction"] or 0.0) if j and j["status"] != "succeeded" else 1.0 for j in jobs]
    return {"jobs": len(jobs), "ended": done, "examples_seen": seen, "examples_total": total,
            "fraction": round(sum(fractions) / len(fractions), 4) if fractions else None}


def summary(record: SweepRecord, statuses: list[str | None]) -> dict:
    """What a listing shows of a sweep: no jobs, no table."""
    counts = {s: 0 for s in ("queued", "running", "paused", "succeeded", "failed", "cancelled", "deleted")}
    for s in statuses:
        counts[s or "deleted"] = counts.get(s or "deleted", 0) + 1
    return {"id": record.id, "name": record.name, "status": status_of(statuses, record.cancel_requested),
            "created_at": record.created_at, "repeats": record.repeats,
            "variant_names": [v["name"] for v in record.variants], "jobs": len(statuses), "counts": counts,
            "owner": record.owner or None}


def view(record: SweepRecord, jobs: dict[str, dict | None]) -> dict:
    """The sweep as GET /v1/sweeps/{id} shows it: status, each variant's jobs, and the comparison table."""
    statuses = [j["status"] if j else None for j in jobs.values()]
    out = summary(record, statuses)
    finished = [j["finished_at"] for j in jobs.values() if j and j.get("finished_at")]
    ended = out["status"] != "running"
    out["finished_at"] = max(finished) if ended and finished else None
    out["wall_seconds"] = round((out["finished_at"] if ended and finished else now()) - record.created_at, 3)
    out["seed"] = record.seed
    out["progress"] = _progress(list(jobs.values()))
    variants = []
    for v in record.variants:
        its = [jobs.get(job_id) for job_id in v["jobs"]]
        variants.append({
            "name": v["name"], "patch": v.get("patch"), "grid": v.get("grid"),
            "status": status_of([j["status"] if j else None for j in its], record.cancel_requested),
            "progress": _progress(its),
            "jobs": [_job_entry(job_id, job) for job_id, job in zip(v["jobs"], its)],
        })
    out["variants"] = variants
    out["table"] = report.rows(record.variants, jobs)
    return out
