"""A sweep as the API shows it: its status, progress, each variant's jobs and the comparison table."""

from __future__ import annotations

from service import report
from service.lifecycle import STATUSES, TERMINAL, sweep_status
from service.store.record import now
from service.store.sweeps import SweepRecord


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
    counts = dict.fromkeys((*STATUSES, "deleted"), 0)
    for s in statuses:
        counts[s or "deleted"] = counts.get(s or "deleted", 0) + 1
    return {"id": record.id, "name": record.name, "status": sweep_status(statuses, record.cancel_requested),
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
            "status": sweep_status([j["status"] if j else None for j in its], record.cancel_requested),
            "progress": _progress(its),
            "jobs": [_job_entry(job_id, job) for job_id, job in zip(v["jobs"], its)],
        })
    out["variants"] = variants
    out["table"] = report.rows(record.variants, jobs)
    return out
