"""The Celery worker process: the train task, shutdown handling, the reaper and a liveness heartbeat."""

from __future__ import annotations

import logging
import os
import socket
import threading

import torch
from celery.exceptions import Reject
from celery.signals import worker_shutting_down

from service import logs
from service.celery_app import QUEUES, SEARCH_TASK, TRAIN_TASK, make_celery
from service.config import Config
from service.lifecycle import TERMINAL
from service.storage import Artifacts
from service.store.jobs import JobStore
from service.store.reaper import Reaper
from service.store.workers import Workers
from worker import exports
from worker.predict import Predictor
from worker.runner import WorkerContext, run_job
from worker.search import Searches

log = logging.getLogger("convtrain.worker")


def build(config: Config, redis_url: str, *, device: str = "auto", name: str | None = None):
    """The Celery app with the train and search tasks bound to this process's worker context."""
    app = make_celery(config, redis_url)
    ctx = WorkerContext(config=config, store=JobStore.from_url(redis_url),
                        artifacts=Artifacts(config.artifacts_url),
                        name=name or f"worker-{socket.gethostname()}-{os.getpid()}", device=device)
    searches = Searches(ctx, app, redis_url)
    ctx.trial_hooks = searches.trial_hooks

    @app.task(name=TRAIN_TASK, acks_late=True, ignore_result=True)
    def train(job_id: str) -> str:
        outcome = run_job(ctx, job_id)
        if outcome == "requeued":
            # The job record is queued again; hand the message back at once for another worker.
            raise Reject("worker shutting down", requeue=True)
        if outcome in TERMINAL:  # a search's trial has ended: its search takes its next step now
            searches.after_job(job_id)
        return outcome

    @app.task(name=SEARCH_TASK, acks_late=True, ignore_result=True)
    def advance(search_id: str) -> str:
        return searches.advance(search_id)

    return app, ctx


class Liveness(threading.Thread):
    """Tells Redis this worker is alive, for /readyz."""

    def __init__(self, ctx: WorkerContext, every: float = 5.0):
        super().__init__(daemon=True, name="liveness")
        self.ctx, self.every = ctx, every
        self.workers = Workers(ctx.store.r)
        self.stopped = threading.Event()

    def run(self) -> None:
        while True:
            try:
                rate = round(sum(self.ctx.rates.values()), 1)
                self.workers.alive(self.ctx.name, self.every * 3,
                                            {"device": self.ctx.device, "examples_per_second": rate,
                                    "checkpoint_failures": self.ctx.checkpoint_failures})
            except Exception as exc:
                log.warning("liveness update failed: %s", exc)
            if self.stopped.wait(self.every):
                break
        try:
            self.workers.gone(self.ctx.name)
        except Exception:
            pass


def main(config: Config, redis_url: str, *, queues: str | None = None, device: str = "auto",
         concurrency: int = 1, name: str | None = None, loglevel: str = "INFO") -> None:
    """Run a worker until it is told to stop (SIGTERM or Ctrl-C: checkpoint and requeue running jobs)."""
    torch.set_num_threads(max(1, config.torch_threads))
    exports.preload()
    if device in ("gpu", "cuda") or device.startswith("cuda"):
        default_queues = "gpu,auto"
    elif device == "cpu" or not torch.cuda.is_available():
        default_queues = "cpu,auto"
    else:
        default_queues = ",".join(QUEUES)
    app, ctx = build(config, redis_url, device=device, name=name)
    logs.configure(loglevel, worker=ctx.name)  # before worker_main, so Celery adds no handler of its own
    logs.tag_celery_tasks((TRAIN_TASK,))  # every line of a train task, Celery's own included, carries its job id

    def draining(**_):
        ctx.draining.set()

    worker_shutting_down.connect(draining, weak=False)
    reaper = Reaper(ctx.store, app, config, name=f"reaper@{ctx.name}")
    liveness = Liveness(ctx)
    predictor = Predictor(ctx)
    for thread in (reaper, liveness, predictor):
        thread.start()
    try:
        app.worker_main([
            "worker", "-P", "threads", "-c", str(concurrency), "-Q", queues or default_queues,
            "-n", f"{ctx.name}@%h", "--without-mingle", "--without-gossip", "--without-heartbeat",
            "-l", loglevel,
        ])
    finally:
        for thread in (reaper, liveness, predictor):
            thread.stopped.set()
        liveness.join(timeout=2)
