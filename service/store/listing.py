"""Newest-first listings over a sorted set of ids by creation time, with a cursor to continue."""

from __future__ import annotations

from typing import Callable


def newest_first(r, index: str, key_of: Callable[[str], str], keep: Callable[[dict], bool], *,
                 cursor: float | None = None, limit: int = 50) -> tuple[list[dict], str | None]:
    """Up to `limit` records (raw hashes) whose ids are in `index`, newest first, that `keep` accepts.

    `cursor` is a score this returned as `next`: the listing continues below it. Records that vanished
    (deleted between the index read and the hash read) are skipped.
    """
    out: list[dict] = []
    top = f"({cursor}" if cursor is not None else "+inf"
    while True:
        ids = r.zrevrangebyscore(index, top, "-inf", start=0, num=limit * 2, withscores=True)
        if not ids:
            return out, None
        pipe = r.pipeline()
        for item_id, _ in ids:
            pipe.hgetall(key_of(item_id))
        for (_, score), raw in zip(ids, pipe.execute()):
            top = f"({score}"
            if not raw or not keep(raw):
                continue
            out.append(raw)
            if len(out) == limit:
                return out, repr(score)
