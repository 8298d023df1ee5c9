"""The reaper: requeues jobs whose worker stopped renewing its lease (killed, out of memory, machine lost)."""

from __future__ import annotations

import logging
import threading
import time

from service.celery_app import TRAIN_TASK, queue_for
from service.config import Config
from service.store.jobs import PREFIX, JobStore

log = logging.getLogger("convtrain.reaper")


class Reaper(threading.Thread):
    """Runs in every worker and in `convtrain serve`; a Redis lock keeps one sweep at a time."""

    def __init__(self, store: JobStore, celery, config: Config, name: str = "reaper"):
        super().__init__(daemon=True, name=name)
        self.store, self.celery, self.config = store, celery, config
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
        lock = f"{PREFIX}reaper:lock"
        if not self.store.r.set(lock, self.name, nx=True, px=int(self.config.reaper_seconds * 1000)):
            return []
        requeued = []
        for job_id in self._lost_messages():
            # Queued this long with no start: its message may be lost (a failed publish, an API that died
            # between storing and publishing). A duplicate message is harmless: the lease makes it a no-op.
            self.store.touch_requeued(job_id)
            device = self.store.r.hget(self.store.key(job_id), "device") or "auto"
            self.celery.send_task(TRAIN_TASK, args=[job_id], queue=queue_for(device))
        for job_id in self.store.stale(self.config.lease_seconds):
            outcome = self.store.reap(job_id)
            if outcome == 2:
                self.store.add_event(job_id, "cancelled", reason="cancelled while its worker was lost")
            if outcome == 1:
                self.store.add_event(job_id, "requeued", reason="worker lost")
                device = self.store.r.hget(self.store.key(job_id), "device") or "auto"
                self.celery.send_task(TRAIN_TASK, args=[job_id], queue=queue_for(device))
                log.warning("job %s lost its worker; requeued", job_id, extra={"job_id": job_id})
                requeued.append(job_id)
        return requeued
