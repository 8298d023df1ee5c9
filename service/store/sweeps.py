"""Sweep records in Redis, beside the jobs they group.

Keys (under the prefix, spelled in service/store/keys.py):
- ``sweep:{id}``  hash: id, name, owner, created_at, repeats, seed, body (the request as sent),
                  variants (JSON: [{name, patch, grid, jobs: [job ids, one per repeat]}]), cancel_requested
- ``sweeps``      sorted set of every sweep by creation time (listing, pagination)

The sweep's status is not stored: it is read from its jobs' records, the source of truth.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from service.errors import NotFound
from service.store import keys
from service.store.listing import newest_first


class SweepNotFound(NotFound, KeyError):
    """No sweep with this id (or none this caller may see)."""

    def __init__(self, sweep_id: str):
        super().__init__(f"no sweep {sweep_id!r}")

    def __str__(self) -> str:
        return self.detail


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
    """Sweep records in Redis; their jobs are in the job store."""

    def __init__(self, client):
        self.r = client

    def create(self, record: SweepRecord) -> None:
        pipe = self.r.pipeline()
        pipe.hset(keys.sweep(record.id), mapping={
            "id": record.id, "name": record.name, "owner": record.owner, "created_at": record.created_at,
            "repeats": record.repeats, "seed": record.seed, "variants": json.dumps(record.variants),
            "body": json.dumps(record.body), "cancel_requested": "0"})
        pipe.zadd(keys.SWEEPS, {record.id: record.created_at})
        pipe.execute()

    def get(self, sweep_id: str) -> SweepRecord:
        raw = self.r.hgetall(keys.sweep(sweep_id))
        if not raw:
            raise SweepNotFound(sweep_id)
        return _record(raw)

    def list(self, *, owner: str | None = None, cursor: float | None = None,
             limit: int = 50) -> tuple[list[SweepRecord], str | None]:
        """Newest first, only `owner`'s when given; `cursor` is the created_at score to continue below."""
        records, next_cursor = newest_first(self.r, keys.SWEEPS, keys.sweep,
                                            lambda raw: owner is None or raw.get("owner") == owner,
                                            cursor=cursor, limit=limit)
        return [_record(raw) for raw in records], next_cursor

    def mark_cancelled(self, sweep_id: str) -> None:
        self.r.hset(keys.sweep(sweep_id), "cancel_requested", "1")

    def delete(self, sweep_id: str) -> None:
        pipe = self.r.pipeline()
        pipe.delete(keys.sweep(sweep_id))
        pipe.zrem(keys.SWEEPS, sweep_id)
        pipe.execute()


def _record(raw: dict) -> SweepRecord:
    return SweepRecord(id=raw["id"], name=raw.get("name", ""), owner=raw.get("owner", ""),
                       created_at=float(raw["created_at"]), repeats=int(raw.get("repeats") or 1),
                       seed=int(raw.get("seed") or 0), variants=json.loads(raw.get("variants") or "[]"),
                       cancel_requested=raw.get("cancel_requested") == "1",
                       body=json.loads(raw.get("body") or "{}"))
