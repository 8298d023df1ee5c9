"""Quotas per principal: active jobs, examples per job, parameters per network, submits per minute, and the
count and bytes of uploaded datasets."""

from __future__ import annotations

from service.errors import OverQuota
from service.spec import datasets

NAMES = ("active_jobs", "examples_per_job", "params_per_network", "submits_per_minute", "datasets", "dataset_bytes",
         "searches")


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
        data = request["data"]
        size = data["upload"]["train_size"] if "upload" in data else datasets.get(data["dataset"]).train_size
        return budget["epochs"] * size
    return None  # a budget in seconds is bounded by max_seconds


def check_sizes(quota: dict[str, int], jobs: list[tuple[dict, int]]) -> None:
    """Raise OverQuota if one of `jobs` (each a request and its parameter count) is too big for a quota.

    The quotas that count jobs (active jobs, submits per minute) are checked by the job store in the same
    step that creates the jobs (JobStore.create_many), so that parallel submits cannot overshoot them.
    """
    for request, params in jobs:
        examples = examples_of(request)
        if examples is not None and examples > quota["examples_per_job"]:
            raise OverQuota("examples_per_job", f"{examples} examples is more than your quota of "
                            f"{quota['examples_per_job']} per job", 3600)
        if params > quota["params_per_network"]:
            raise OverQuota("params_per_network", f"{params} parameters is more than your quota of "
                            f"{quota['params_per_network']} per network", 3600)
