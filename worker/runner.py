"""Run one job for a worker: take the lease, train with heartbeats and fenced writes, record the outcome."""

from __future__ import annotations

import json
import logging
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import redis
import torch

from service.config import Config
from service.errors import public_message
from service.lifecycle import PRUNED, SUCCEEDED, Attempt, not_started
from service.logs import job_context
from service.spec.datasets import DatasetError
from service.spec.model_formats import FORMATS
from service.spec.netspec import analyze
from service.storage import Artifacts, sha256
from service.store.jobs import JobStore
from worker.exports import store_exports
from worker.initial import initial_state
from worker.timeline import Timeline
from worker.trainer import (
    Diverged,
    Hooks,
    Interrupted,
    Training,
    load_state,
    save_state,
)

log = logging.getLogger("convtrain.worker")
PREDICTIONS_FILE = "predictions.json"
ATTEMPTS = "attempts"  # attempts/<token>/: an attempt's final files, the job's once a fenced finish points at them
PREDICTIONS = 100  # test images shown with their top-3 guesses
REDIS_DOWN = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, redis.exceptions.BusyLoadingError)


def quietly(fn, *args, **kwargs):
    """An in-loop write: losing one point while Redis restarts is better than failing the job."""
    try:
        return fn(*args, **kwargs)
    except REDIS_DOWN as exc:
        log.warning("redis unavailable, skipped %s: %s", fn.__name__, exc)
        return None


def patiently(fn, *args, timeout: float = 300.0, **kwargs):
    """A transition that must land (start, finish, release): retry until Redis is back."""
    deadline, delay = time.monotonic() + timeout, 0.2
    while True:
        try:
            return fn(*args, **kwargs)
        except REDIS_DOWN as exc:
            if time.monotonic() > deadline:
                raise
            log.warning("redis unavailable for %s, retrying: %s", fn.__name__, exc)
            time.sleep(delay)
            delay = min(delay * 2, 5.0)


@dataclass
class WorkerContext:
    """What a worker process knows: its name, device, stores, and whether it is shutting down."""

    config: Config
    store: JobStore
    artifacts: Artifacts
    name: str
    device: str = "auto"
    draining: threading.Event = field(default_factory=threading.Event)
    rates: dict = field(default_factory=dict)  # examples/s of each job training here, for /metrics
    checkpoint_failures: int = 0  # checkpoint writes that failed since the worker started, for /metrics
    # (record, job id, token, timeline) -> more Hooks fields for a search's trial (worker/search.py); None: none
    trial_hooks: Callable[..., dict] | None = None


class Heartbeat(threading.Thread):
    """Renews the job's lease while the job trains; `lost` is set when another attempt owns it."""

    def __init__(self, ctx: WorkerContext, job_id: str, token: str):
        super().__init__(daemon=True, name=f"heartbeat-{job_id}")
        self.ctx, self.job_id, self.token = ctx, job_id, token
        self.stop = threading.Event()
        self.lost = threading.Event()

    def run(self) -> None:
        with job_context(self.job_id):  # threads do not inherit the job's log context
            self._beat()

    def _beat(self) -> None:
        while not self.stop.wait(self.ctx.config.heartbeat_seconds):
            try:
                if not self.ctx.store.heartbeat(self.job_id, self.token, self.ctx.config.lease_seconds):
                    self.lost.set()
                    return
            except Exception as exc:  # Redis down: keep trying; the lease may expire and the reaper decides
                log.warning("heartbeat for job %s failed: %s", self.job_id, exc)


def run_job(ctx: WorkerContext, job_id: str) -> str:
    """Train job `job_id` if no one else is; return what happened (started jobs: their final state)."""
    cfg = ctx.config
    token = secrets.token_hex(8)  # one per attempt, so a retried start recognises its own lease
    start = patiently(ctx.store.start, job_id, ctx.name, cfg.lease_seconds, cfg.max_attempts, token)
    if start.outcome != "started":
        log.info("job %s: not started (%s)", job_id, start.outcome, extra={"job_id": job_id})
        quietly(not_started, ctx.store, job_id, start.outcome)  # too many lost workers, a pending cancel
        return start.outcome
    beat = Heartbeat(ctx, job_id, token)
    beat.start()
    try:
        return _train(ctx, job_id, token, start.attempt, beat)
    finally:
        beat.stop.set()
        ctx.rates.pop(job_id, None)


def _train(ctx: WorkerContext, job_id: str, token: str, number: int, beat: Heartbeat) -> str:
    store, cfg = ctx.store, ctx.config
    attempt = Attempt(store, job_id, token)
    timeline = Timeline(lambda entries, **fields: quietly(store.add_points, job_id, token, entries, **fields),
                        cfg.metrics_interval_seconds)
    record = patiently(store.raw, job_id)
    request = patiently(store.request, job_id)
    log.info("job %s: attempt %d on %s", job_id, number, ctx.name, extra={"job_id": job_id})
    try:
        device = request.get("device", "auto")
        device = ctx.device if device == "auto" else device
        state = None
        if record.get("checkpoint"):
            state = load_state(ctx.artifacts.get(job_id, record["checkpoint"]))
        network = analyze(request["network"], cfg.limits)
        initial = None if state is not None else initial_state(request, network.layers, ctx.artifacts, job_id)
        training = Training(request, network, data_dir=cfg.data_path, device=device, state=state, initial=initial,
                            artifacts=ctx.artifacts)
        quietly(store.update, job_id, token, device=str(training.device))
        event = "resumed" if state is not None else "started"
        timeline.event({"event": event, "examples": training.examples, "attempt": number})
        trial = ctx.trial_hooks(record, job_id, token, timeline) if ctx.trial_hooks else {}
        result = training.run(_hooks(ctx, job_id, token, beat, timeline, trial))
        timeline.flush()
        return _succeed(ctx, attempt, training, result)
    except Interrupted as stop:
        timeline.flush()
        return _interrupted(ctx, attempt, stop, timeline)
    except Diverged as exc:
        return _fail(attempt, timeline, "diverged", str(exc), examples=exc.examples)
    except DatasetError as exc:
        return _fail(attempt, timeline, "invalid_data", str(exc))
    except torch.OutOfMemoryError as exc:
        return _fail(attempt, timeline, "out_of_memory", f"out of memory: {exc}")
    except ValueError as exc:  # e.g. a GPU asked for on a machine without one
        return _fail(attempt, timeline, "invalid_request", str(exc))
    except Exception as exc:
        log.exception("job %s failed", job_id, extra={"job_id": job_id})
        return _fail(attempt, timeline, "internal", public_message(exc))  # the log above keeps the detail



def _succeed(ctx: WorkerContext, attempt: Attempt, training: Training, result: dict) -> str:
    """Store the model, its exports and test predictions under this attempt's own names; the fenced finish
    then makes them the job's. A worker that lost its lease writes files no record points to."""
    job_id = attempt.job_id
    folder = f"{ATTEMPTS}/{attempt.token}"
    weights = training.weights()
    blob = save_state(weights)
    ctx.artifacts.put(job_id, f"{folder}/{FORMATS['pt'].file}", blob)
    predictions = f"{folder}/{PREDICTIONS_FILE}"
    ctx.artifacts.put(job_id, predictions, json.dumps(
        {"test_acc": result["test_acc"], "predictions": training.predictions(PREDICTIONS)}).encode())
    model = {"file": f"{folder}/{FORMATS['pt'].file}", "format": "pt", "bytes": len(blob), "sha256": sha256(blob)}
    model["exports"] = store_exports(ctx.artifacts, job_id, weights, blob, folder)  # every format (worker/exports.py)
    # A trial that its search's pruner stopped ends the same way, with its weights, but `pruned`.
    outcome = PRUNED if result.pop("pruned", False) else SUCCEEDED
    end = attempt.pruned if outcome == PRUNED else attempt.succeed
    if patiently(end, training.examples, result, model, predictions):
        log.info("job %s %s: test_acc %.4f", job_id, outcome, result["test_acc"], extra={"job_id": job_id})
        _collect(ctx, job_id, keep=folder)
        return outcome
    ctx.artifacts.remove(job_id, folder)  # fenced out: no record points to them
    return "lost"


def _collect(ctx: WorkerContext, job_id: str, keep: str) -> None:
    """Remove what no reader needs once the job has succeeded: every checkpoint (nothing resumes a finished
    job) and the files of attempts that lost their lease."""
    for name in ctx.artifacts.names(job_id):
        if name.startswith("checkpoint-") or (name.startswith(f"{ATTEMPTS}/") and name != keep):
            ctx.artifacts.remove(job_id, name)


def _hooks(ctx: WorkerContext, job_id: str, token: str, beat: Heartbeat, timeline: Timeline, trial: dict) -> Hooks:
    store, cfg = ctx.store, ctx.config
    last_flags = {"t": 0.0, "flags": {}}

    def flags() -> dict:
        # One small read per poll; the poll interval bounds cancel latency.
        last_flags["flags"] = quietly(store.flags, job_id) or {}
        return last_flags["flags"]

    def on_metrics(point: dict) -> None:
        ctx.rates[job_id] = point.get("examples_per_second") or 0.0
        timeline.point(point)

    def on_event(event: dict) -> None:
        timeline.event({"event": event.pop("type"), **event})

    def on_checkpoint(state: dict) -> None:
        write_checkpoint(ctx, job_id, token, state, timeline)

    def on_snapshot(snapshot, examples: int) -> None:
        number = quietly(store.add_snapshot, job_id, token, snapshot.stats, examples)
        if not number:  # Redis unreachable, or fenced out
            return
        for name, png in snapshot.images.items():
            ctx.artifacts.put(job_id, f"snapshots/{number}/{name}", png)
        timeline.event({"event": "snapshot", "snapshot": number, "examples": examples})

    def poll() -> str | None:
        timeline.tick()
        if beat.lost.is_set():
            return "lost"
        f = flags()
        if f.get("cancel"):
            return "cancel"
        if f.get("pause"):
            return "pause"
        if ctx.draining.is_set():
            return "shutdown"
        return None

    def trainer_changes() -> dict | None:
        if not last_flags["flags"].get("trainer_patch"):
            return None
        return quietly(store.take_trainer_patch, job_id, token)

    return Hooks(on_metrics=on_metrics, on_event=on_event, on_checkpoint=on_checkpoint, on_snapshot=on_snapshot,
                 poll=poll, trainer_changes=trainer_changes, checkpoint_seconds=cfg.checkpoint_seconds,
                 snapshot_seconds=cfg.snapshot_seconds, **trial)


def write_checkpoint(ctx: WorkerContext, job_id: str, token: str, state: dict, timeline: Timeline) -> None:
    """Write a checkpoint under a name of its own, then point the record at it (fenced). A write that fails
    is logged and counted, and the next checkpoint tries again: the job goes on."""
    name = f"checkpoint-{token}-{secrets.token_hex(4)}.pt"  # never a name that a record points to
    try:
        ctx.artifacts.put(job_id, name, save_state(state))
    except Exception as exc:
        ctx.checkpoint_failures += 1
        log.warning("job %s: checkpoint at %d examples not written, retried at the next one: %s: %s", job_id,
                    state["examples"], type(exc).__name__, exc, extra={"job_id": job_id})
        return
    previous = quietly(ctx.store.checkpoint_name, job_id)
    # The pointer and its timeline event in one fenced step: a resume always has its checkpoint event.
    landed = timeline.event({"event": "checkpoint", "examples": state["examples"]},
                            checkpoint=name, checkpoint_examples=state["examples"])
    if landed:
        if previous and previous != name:
            ctx.artifacts.remove(job_id, previous)
    elif landed == 0:  # fenced out: another attempt owns the job (None: Redis unreachable, the file may be kept)
        ctx.artifacts.remove(job_id, name)


def _interrupted(ctx: WorkerContext, attempt: Attempt, stop: Interrupted, timeline: Timeline) -> str:
    job_id = attempt.job_id
    if stop.reason == "lost":
        log.warning("job %s: lease lost, another attempt owns it; stopping", job_id, extra={"job_id": job_id})
        return "lost"
    if stop.reason == "cancel":
        patiently(attempt.cancelled, stop.examples)
        return "cancelled"
    write_checkpoint(ctx, job_id, attempt.token, stop.state, timeline)
    if stop.reason == "pause":
        return patiently(attempt.pause, stop.examples)
    return patiently(attempt.requeue, stop.examples, "worker shutting down", timeout=10)


def _fail(attempt: Attempt, timeline: Timeline, kind: str, message: str, **extra) -> str:
    timeline.flush()  # the points before the failure, then the failure
    error = {"type": kind, "message": message, **extra}
    log.warning("job %s failed: %s", attempt.job_id, message, extra={"job_id": attempt.job_id})
    patiently(attempt.fail, error)
    return "failed"
