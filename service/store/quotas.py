"""Quotas per principal: active jobs, examples per job, parameters per network, submits per minute."""

from __future__ import annotations

import time
from service.errors import OverQuota
from service.lifecycle import TERMINAL
from service.spec import datasets
from service.store import keys

NAMES = ("active_jobs", "examples_per_job", "params_per_network", "submits_per_minute")


def limits(config, overrides: dict) -> dict[str, int]:
    """The principal's quotas: the configured defaults, with the tokens file's overrides."""
    out = {name: int(getattr(config, f"quota_{name}")) for name in NAMES}
    out.update({k: int(v) for k, v in (overrides or {}).items() if k in NAMES})
    return out


def examples_of(request: dict) -> int | None:
    budget = request["budget"]
    if "examples" in budget:
        return budget["examples"]
    if "epochs" in budget:
        return budget["epochs"] * datasets.get(request["data"]["dataset"]).train_size
    return None  # a budget in seconds is bounded by max_seconds


def check(r, owner: str, quota: dict[str, int], jobs: list[tuple[dict, int]]) -> None:
    """Raise OverQuota if submitting `jobs` (each a request and its parameter count) exceeds a quota."""
    for request, params in jobs:
        examples = examples_of(request)
        if examples is not None and examples > quota["examples_per_job"]:
            raise OverQuota("examples_per_job", f"{examples} examples is more than your quota of "
                            f"{quota['examples_per_job']} per job", 3600)
        if params > quota["params_per_network"]:
            raise OverQuota("params_per_network", f"{params} parameters is more than your quota of "
                            f"{quota['params_per_network']} per network", 3600)
    active = active_jobs(r, owner)
    if active + len(jobs) > quota["active_jobs"]:
        raise OverQuota("active_jobs", f"you have {active} jobs queued, running or paused; your quota is "
                        f"{quota['active_jobs']}: wait for some to finish or cancel them", 30)
    minute = int(time.time() // 60)
    key = keys.submits(owner, minute)
    pipe = r.pipeline()
    pipe.incrby(key, len(jobs))
    pipe.expire(key, 120)
    if pipe.execute()[0] > quota["submits_per_minute"]:
        raise OverQuota("submits_per_minute", f"more than {quota['submits_per_minute']} submits in a minute",
                        60 - int(time.time() % 60))


def active_jobs(r, owner: str) -> int:
    """Jobs of `owner` that are not finished; finished ones leave the set as they are seen."""
    key = keys.active(owner)
    ids = list(r.smembers(key))
    if not ids:
        return 0
    pipe = r.pipeline()
    for job_id in ids:
        pipe.hget(keys.job(job_id), "status")
    done = [job_id for job_id, status in zip(ids, pipe.execute()) if status is None or status in TERMINAL]
    if done:
        r.srem(key, *done)
    return len(ids) - len(done)


def track(r, owner: str, job_id: str) -> None:
    r.sadd(keys.active(owner), job_id)
