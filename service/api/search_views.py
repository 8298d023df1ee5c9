"""A search as the API shows it: status, progress, the trials, and the best so far, from convtrain's records.

The search's record says what each trial is (architecture, values, job); the trial's job record says how it
is doing (status, examples, the val_acc of each rung it reached). Optuna's journal is never read here.
"""

from __future__ import annotations

import json

from service.lifecycle import TERMINAL
from service.store.record import now
from service.store.searches import SearchRecord

UNTOLD = {"creating": "queued", "invalid": "invalid"}  # a trial without a job: what its status says


def demo_javascript(request: dict) -> str:
    """The trial's network and trainer as the ConvNetJS MNIST demo's code, to paste back into the demo."""
    lines = ["layer_defs = [];"]
    lines += [f"layer_defs.push({json.dumps(layer)});" for layer in request["network"]["layers"]]
    trainer = {k: v for k, v in request["trainer"].items() if k in (
        "method", "learning_rate", "momentum", "batch_size", "l1_decay", "l2_decay", "ro", "eps", "beta1", "beta2")}
    lines += ["", "net = new convnetjs.Net();", "net.makeLayers(layer_defs);", "",
              f"trainer = new convnetjs.SGDTrainer(net, {json.dumps(trainer)});"]
    return "\n".join(lines) + "\n"


def _trial(entry: dict, job: dict | None, rungs: str | None) -> dict:
    reports = json.loads(rungs) if rungs else []
    result = (job or {}).get("result") or {}
    if job is not None:
        status = job["status"]
    elif entry.get("job"):
        status = "deleted" if entry["state"] != "creating" else "queued"
    else:
        status = UNTOLD.get(entry["state"], entry["state"])
    values = [v for _, v in reports if v is not None] + ([result["val_acc"]] if result.get("val_acc") is not None
                                                         else [])
    return {
        "number": entry["number"], "job": entry.get("job"), "architecture": entry["architecture"],
        "params": entry["params"], "skipped": entry.get("skipped") or [], "status": status,
        "val_acc": max(values) if values else None, "final_val_acc": result.get("val_acc"),
        "test_acc": result.get("test_acc"), "test_acc_crops": result.get("test_acc_crops"),
        "examples": (job or {}).get("progress", {}).get("examples_seen") or 0,
        "rungs": [{"examples": e, "val_acc": v} for e, v in reports],
        "errors": entry.get("errors") or [],
    }


def summary(record: SearchRecord) -> dict:
    """What a listing shows of a search: no trials."""
    return {"id": record.id, "name": record.name, "status": record.status, "created_at": record.created_at,
            "finished_at": record.finished_at, "owner": record.owner or None,
            "trials_asked": record.asked, "trials_total": record.body["trials"],
            "cancel_requested": record.cancel_requested}


def view(record: SearchRecord, jobs: dict[str, dict | None], rungs: dict[str, str | None]) -> dict:
    """The search as GET /v1/searches/{id} shows it."""
    out = summary(record)
    body = record.body
    out.update(objective=body.get("objective", "val_acc"), sampler=body.get("sampler", "tpe"),
               pruner=body.get("pruner", {"type": "none"}), parallel=body["parallel"],
               seed=body.get("seed"))
    trials = [_trial(t, jobs.get(t["job"]) if t.get("job") else None, rungs.get(t["job"]) if t.get("job") else None)
              for t in record.trials]
    ended = [t for t in trials if t["status"] in TERMINAL or t["status"] in ("invalid", "deleted")]
    out["progress"] = {
        "trials_done": len(ended), "trials_running": sum(1 for t in trials if t["status"] not in TERMINAL
                                                          and t["status"] not in ("invalid", "deleted")),
        "pruned": sum(1 for t in trials if t["status"] == "pruned"),
        "invalid": sum(1 for t in trials if t["status"] == "invalid"),
        "examples_spent": sum(t["examples"] for t in trials),
        "elapsed_seconds": round((record.finished_at or now()) - record.created_at, 3),
    }
    out["trials"] = trials
    out["best"] = best(trials, jobs)
    return out


def best(trials: list[dict], jobs: dict[str, dict | None]) -> dict | None:
    """The trial with the highest final val_acc: among those that trained to their budget, else the pruned."""
    for statuses in (("succeeded",), ("pruned",)):
        ranked = [t for t in trials if t["status"] in statuses and t["final_val_acc"] is not None]
        if ranked:
            top = max(ranked, key=lambda t: (t["final_val_acc"], -t["number"]))
            job = jobs[top["job"]]
            return {"job": top["job"], "number": top["number"], "architecture": top["architecture"],
                    "params": top["params"], "val_acc": top["final_val_acc"], "test_acc": top["test_acc"],
                    "test_acc_crops": top["test_acc_crops"],
                    "network": job["network"], "javascript": demo_javascript(job["request"])}
    return None
