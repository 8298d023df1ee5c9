"""Which workers are alive: each renews a short-lived entry; /readyz and /metrics read them."""

from __future__ import annotations

import json

from service.store import keys
from service.store.record import now


class Workers:
    """Worker liveness in Redis."""

    def __init__(self, client):
        self.r = client

    def alive(self, name: str, ttl: float, info: dict | None = None) -> None:
        """Say that worker `name` is alive for the next `ttl` seconds, with its info (device, examples/s)."""
        pipe = self.r.pipeline()
        pipe.zadd(keys.WORKERS, {name: now() + ttl})
        pipe.set(keys.worker(name), json.dumps(info or {}), ex=max(1, int(ttl)))
        pipe.execute()

    def gone(self, name: str) -> None:
        self.r.zrem(keys.WORKERS, name)
        self.r.delete(keys.worker(name))

    def names(self) -> list[str]:
        """Workers whose liveness has not expired (expired ones are pruned)."""
        self.r.zremrangebyscore(keys.WORKERS, "-inf", now())
        return self.r.zrange(keys.WORKERS, 0, -1)

    def infos(self) -> dict[str, dict]:
        """Each alive worker's info (the dict it passed to `alive`), without pruning expired ones."""
        names = self.r.zrangebyscore(keys.WORKERS, f"({now()}", "+inf")
        if not names:
            return {}
        out = {}
        for name, raw in zip(names, self.r.mget([keys.worker(name) for name in names])):
            try:
                info = json.loads(raw) if raw else {}
            except ValueError:
                info = {}
            out[name] = info if isinstance(info, dict) else {}
        return out
