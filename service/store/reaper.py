"""The reaper: requeues jobs whose worker stopped renewing its lease (killed, out of memory, machine lost),
republishes jobs queued so long that their message may be lost, and re-sends the advance step of searches
that have not advanced for a while."""

from __future__ import annotations

import logging
import threading
import time

from service.config import Config
from service.lifecycle import JobControl, advance_search
from service.store.jobs import JobStore
from service.store.searches import SearchStore

log = logging.getLogger("convtrain.reaper")


class Reaper(threading.Thread):
    """Runs in every worker and in `convtrain serve`; a Redis lock keeps one sweep at a time."""

    def __init__(self, store: JobStore, celery, config: Config, name: str = "reaper"):
        super().__init__(daemon=True, name=name)
        self.store, self.config = store, config
        self.control = JobControl(store, celery)
        self.searches = SearchStore(store.r)
        self.stopped = threading.Event()
        self._last_scan = time.monotonic()

    def run(self) -> None:
        while not self.stopped.wait(self.config.reaper_seconds):
            try:
                self.sweep()
            except Exception as exc:  # Redis restarting: try again next round
                log.warning("reaper sweep failed: %s", exc)

    def _lost_messages(self) -> list[str]:
        """Long-queued jobs, looked for only every quarter of the republish delay: it reads every job."""
        if time.monotonic() - self._last_scan < self.config.republish_seconds / 4:
            return []
        self._last_scan = time.monotonic()
        return self.store.queued_since(self.config.republish_seconds)

    def sweep(self) -> list[str]:
        """Requeue every job whose lease has expired (return their ids), and republish long-queued jobs."""
        # Held for half an interval: one sweep at a time, yet the lock has always expired by the next round
        # (held for a whole interval, a reaper that woke a little early found it taken and the round was lost).
        if not self.store.lock_reaper(self.name, self.config.reaper_seconds / 2):
            return []
        for job_id in self._lost_messages():
            # Queued this long with no start: its message may be lost (a failed publish, an API that died
            # between storing and publishing). A duplicate message is harmless: the lease makes it a no-op.
            self.control.republish(job_id)
        requeued = []
        for job_id in self.store.stale(self.config.lease_seconds):
            if self.control.requeue_lost(job_id):
                log.warning("job %s lost its worker; requeued", job_id, extra={"job_id": job_id})
                requeued.append(job_id)
        for search_id in self.searches.stalled(self.config.search_advance_seconds, self.config.republish_seconds):
            # Not advanced for a while: its step may be lost (a task lost, a worker killed in a step, a
            # trial cancelled while queued, which no worker ends). A step with nothing to do is cheap.
            self.searches.advance_sent(search_id)
            advance_search(self.control.celery, search_id)
        return requeued
