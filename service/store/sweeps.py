"""Sweep records in Redis, beside the jobs they group.

Keys (all under ``convtrain:``, spelled in service/store/keys.py):
- ``sweep:{id}``  hash: id, name, owner, created_at, repeats, seed, body (the request as sent),
                  variants (JSON: [{name, patch, grid, jobs: [job ids, one per repeat]}]), cancel_requested
- ``sweeps``      sorted set of every sweep by creation time (listing, pagination)

The sweep's status is not stored: it is read from its jobs' records, the source of truth.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from service.store.jobs import PREFIX, present


class SweepNotFound(KeyError):
    pass


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
