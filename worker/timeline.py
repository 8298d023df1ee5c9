"""An attempt's timeline in Redis: metric points buffered and written in batches, events in order with them.

The trainer places a point every so many examples whatever the speed (worker/trainer.py), so a fast job
makes many points a second; writing them one round trip each would make Redis load grow with the
machine's speed. Points wait here and go in one fenced script call once `flush_seconds` have passed
since the oldest waiting one, and before any event, so the stream keeps the order they happened in.
"""

from __future__ import annotations

import time
from typing import Callable

from service.store.record import now


class Timeline:
    """Buffered, fenced writes of one attempt's stream; `write` is the store's add_points (or a wrapper)."""

    def __init__(self, write: Callable[..., int | None], flush_seconds: float = 1.0):
        self.write, self.flush_seconds = write, flush_seconds
        self.waiting: list[dict] = []
        self.oldest = 0.0

    def point(self, point: dict) -> None:
        """Buffer a metric point (stamped now); flush when the oldest waiting point is old enough."""
        if not self.waiting:
            self.oldest = time.monotonic()
        self.waiting.append({**point, "t": now()})
        self.tick()

    def tick(self) -> None:
        """Flush if the oldest waiting point has waited `flush_seconds` (called between batches too)."""
        if self.waiting and time.monotonic() - self.oldest >= self.flush_seconds:
            self.flush()

    def event(self, event: dict, **fields) -> int | None:
        """Write the waiting points, then `event`, and set the record's `fields`, in one call; return the
        event's sequence number (0: fenced out, None: not written)."""
        return self.flush(event, **fields)

    def flush(self, event: dict | None = None, **fields) -> int | None:
        """Write what waits (and `event` after it); the record's `metrics` is the last point written."""
        points, self.waiting = self.waiting, []
        entries = points + ([event] if event is not None else [])
        if not entries:
            return None
        if points:
            fields = {"metrics": points[-1], "examples_seen": points[-1]["examples"], **fields}
        return self.write(entries, **fields)
