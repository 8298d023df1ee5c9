"""Users' datasets in Redis: per tenant, name -> record (hash, shape, classes, counts, bytes, owner, created).

The files live in the artifact store under the content hash (service/datasets/stored.py); a record only
names them, so deleting or replacing a record never changes a job that pinned the hash.
"""

from __future__ import annotations

import json

from service.errors import NotFound, OverQuota
from service.store import keys, scripts


class DatasetNotFound(NotFound, KeyError):
    """No dataset of this name (or none this caller may see)."""

    def __init__(self, name: str):
        super().__init__(f"no dataset {name!r}")


class DatasetStore:
    """Each tenant's datasets, one Redis hash per tenant (keys.datasets)."""

    def __init__(self, client):
        self.r = client
        self._save = scripts.register(client)["save_dataset"]

    def save(self, record: dict, quota: dict[str, int] | None, *, check_only: bool = False) -> str:
        """Store `record` under its owner and name within the owner's quotas (OverQuota otherwise), atomically;
        return 'created' or 'replaced'. `check_only`: raise OverQuota if it would not fit, store nothing ('fits')."""
        limits = ("", "") if quota is None else (quota["datasets"], quota["dataset_bytes"])
        outcome, *detail = self._save(keys=[keys.datasets(record["owner"])],
                                      args=[record["name"], json.dumps(record), *limits, "1" if check_only else ""])
        if outcome == "datasets":
            raise OverQuota("datasets", f"you have {detail[0]} datasets, your quota; delete one first", 3600)
        if outcome == "dataset_bytes":
            raise OverQuota("dataset_bytes", f"your datasets take {int(detail[0]):,} bytes; with this one "
                            f"({record['bytes']:,} bytes) they would pass your quota of {quota['dataset_bytes']:,}",
                            3600)
        return outcome

    def get(self, owner: str, name: str) -> dict:
        raw = self.r.hget(keys.datasets(owner), name)
        if raw is None:
            raise DatasetNotFound(name)
        return json.loads(raw)

    def find(self, owner: str, name: str) -> dict | None:
        """The record, or None where the owner has no dataset of this name."""
        raw = self.r.hget(keys.datasets(owner), name)
        return None if raw is None else json.loads(raw)

    def list(self, owner: str) -> list[dict]:
        """The owner's datasets by name."""
        records = [json.loads(v) for v in self.r.hvals(keys.datasets(owner))]
        return sorted(records, key=lambda r: r["name"])

    def delete(self, owner: str, name: str) -> None:
        if not self.r.hdel(keys.datasets(owner), name):
            raise DatasetNotFound(name)
