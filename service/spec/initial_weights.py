"""A job request's `init`: the weights a job starts from instead of ConvNetJS's random initialisation.

`{"job": ID}` takes the weights of a succeeded job with the same architecture;
`{"convnetjs": <snapshot>}` takes a ConvNetJS net snapshot. Without a `network`,
the architecture comes from the snapshot or the job. A snapshot is kept as an
artifact of the new job (the stored request says which), so job records stay small.
"""

from __future__ import annotations

import json
import re
from typing import Any, Callable

from service.config import Config
from service.ids import ID
from service.spec import convnetjs_snapshot, netspec
from service.spec.netspec import InvalidSpec, SpecError
from service.storage import Artifacts, sha256

SNAPSHOT_FILE = "init.convnetjs.json"
_SHA = re.compile(r"^[0-9a-f]{64}$")


def parse(init: Any, config: Config) -> tuple[list[SpecError], dict | None, netspec.Network | None]:
    """Check an `init` value: (errors, the snapshot's network spec and analysis, or None for a job reference)."""
    if not isinstance(init, dict) or len(init.keys() & {"job", "convnetjs"}) != 1:
        return [SpecError("init", "init must be {\"job\": ID} (a succeeded job's weights) or "
                          "{\"convnetjs\": {\"layers\": [...]}} (a ConvNetJS net snapshot)")], None, None
    if "job" in init:
        errors = [SpecError(f"init.{key}", f"'{key}' is not a field of init {{\"job\": ID}}")
                  for key in init if key not in ("job", "sha256")]
        if not isinstance(init["job"], str) or not ID.fullmatch(init["job"]):
            errors.append(SpecError("init.job", f"init.job must be a job id, not {netspec.describe(init['job'])}"))
        if "sha256" in init and not (isinstance(init["sha256"], str) and _SHA.match(init["sha256"])):
            errors.append(SpecError("init.sha256", "init.sha256 must be the model's SHA-256 in hex"))
        return errors, None, None
    if len(init) != 1:
        return [SpecError(f"init.{key}", f"'{key}' is not a field of init {{\"convnetjs\": snapshot}}")
                for key in init if key != "convnetjs"], None, None
    try:
        spec, network = convnetjs_snapshot.to_network(init["convnetjs"], config.limits)
    except InvalidSpec as exc:
        return exc.errors, None, None
    return [], spec, network


def snapshot_difference(network: netspec.Network, init_network: netspec.Network) -> list[SpecError]:
    """The first layer where the request's network and the snapshot's differ, as a one-item list (or none)."""
    difference = convnetjs_snapshot.first_difference(network.layers, init_network.layers,
                                                     "the ConvNetJS snapshot in init.convnetjs")
    return [difference] if difference else []


def load_request(body: Any, config: Config, lookup: Callable[[str], dict | None],
                 load: Callable[[Any, Config], tuple[dict, netspec.Network]]) -> tuple[dict, netspec.Network]:
    """`load` (schemas.load_job_request) with `init {"job": ID}` resolved by `lookup` (a job, or None); raise InvalidSpec."""
    init = body.get("init") if isinstance(body, dict) else None
    if not (isinstance(init, dict) and isinstance(init.get("job"), str) and ID.fullmatch(init["job"])):
        return load(body, config)
    errors, ref = _referenced(init, lookup(init["job"]))
    if ref is not None and "network" not in body and "convnetjs" not in body:
        body = {**body, "network": ref["request"]["network"]}
    try:
        request, network = load(body, config)
    except InvalidSpec as exc:
        raise InvalidSpec(errors + exc.errors) from None
    if ref is not None:
        difference = convnetjs_snapshot.first_difference(network.layers, ref["network"]["layers"], f"job {ref['id']}")
        errors += [difference] if difference else []
    if errors:
        raise InvalidSpec(errors)
    # The file and its checksum are pinned: the source job's model cannot change under this job.
    request["init"] = {"job": ref["id"], "sha256": ref["model"]["sha256"], "file": ref["model"]["file"]}
    return request, network


def _referenced(init: dict, job: dict | None) -> tuple[list[SpecError], dict | None]:
    if job is None:
        return [SpecError("init.job", f"no job {init['job']!r}")], None
    if job["status"] != "succeeded" or not job.get("model"):
        return [SpecError("init.job", f"job {job['id']} is {job['status']}; only a succeeded job's weights "
                          "can start another job")], None
    if init.get("sha256") not in (None, job["model"]["sha256"]):
        return [SpecError("init.sha256", f"job {job['id']}'s model has SHA-256 {job['model']['sha256']}, "
                          "not the one given")], None
    return [], job


def store_snapshot(request: dict, artifacts: Artifacts, job_id: str) -> None:
    """Move an inline snapshot out of the request into the job's artifacts; the request keeps its name and checksum."""
    init = request.get("init") or {}
    if not isinstance(init.get("convnetjs"), dict) or "layers" not in init["convnetjs"]:
        return
    blob = json.dumps(init["convnetjs"], separators=(",", ":")).encode()
    artifacts.put(job_id, SNAPSHOT_FILE, blob)
    request["init"] = {"convnetjs": {"file": SNAPSHOT_FILE, "bytes": len(blob), "sha256": sha256(blob)}}
