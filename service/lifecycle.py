"""The job lifecycle: its statuses, the transitions between them, and the timeline event each one writes.

::

    queued ──start──▶ running ──finish──▶ succeeded | failed | cancelled | pruned
      ▲  │              │  ▲
      │  └─pause─▶ paused  └─ release (pause: paused; shutdown, lost lease: queued)
      └──resume──────┘

Every transition is one Lua script in the job store (service/store/scripts.py), so the API, the
workers and the reaper never interleave halfway through one; this module is what they all call:
`JobControl` for the API's requests (cancel, pause, resume, delete, live trainer changes) and the
reaper's requeues, `Attempt` for a worker's fenced side (start, finish, release).
"""

from __future__ import annotations

from service.celery_app import SEARCH_TASK, TRAIN_TASK, queue_for
from service.errors import Conflict

QUEUED, RUNNING, PAUSED = "queued", "running", "paused"
SUCCEEDED, FAILED, CANCELLED = "succeeded", "failed", "cancelled"
PRUNED = "pruned"  # a search's trial that its pruner stopped early: it ends with its model, as a success does
TERMINAL = (SUCCEEDED, FAILED, CANCELLED, PRUNED)
WITH_MODEL = (SUCCEEDED, PRUNED)  # the statuses whose job has a trained model, its exports and test predictions
STATUSES = (QUEUED, RUNNING, PAUSED) + TERMINAL

# The status each timeline event leaves the job in: these events travel as `status` events on the stream.
STATUS_AFTER = {
    "started": RUNNING, "resumed": RUNNING, "paused": PAUSED, "queued": QUEUED, "requeued": QUEUED,
    "cancelled": CANCELLED, "failed": FAILED, "finished": SUCCEEDED, "pruned": PRUNED,
}


def lua_constants() -> str:
    """The statuses as Lua locals, so that the scripts never spell a status themselves."""
    names = {"QUEUED": QUEUED, "RUNNING": RUNNING, "PAUSED": PAUSED, "SUCCEEDED": SUCCEEDED, "FAILED": FAILED,
             "CANCELLED": CANCELLED, "PRUNED": PRUNED}
    lines = [f"local {name} = '{value}'" for name, value in names.items()]
    lines.append("local TERMINAL = {" + ", ".join(f"{s} = true" for s in TERMINAL) + "}")
    return "\n".join(lines) + "\n"


def sweep_status(statuses: list[str | None], cancel_requested: bool = False) -> str:
    """A group of jobs' status: `running` until every job has ended (None: a job deleted on its own counts as
    ended), then `succeeded` when all succeeded, `cancelled` when the group was cancelled or a job was, else
    `failed`."""
    if any(s is not None and s not in TERMINAL for s in statuses):
        return RUNNING
    if statuses and all(s == SUCCEEDED for s in statuses):
        return SUCCEEDED
    if cancel_requested:
        return CANCELLED
    if any(s == FAILED for s in statuses):
        return FAILED
    return CANCELLED


def publish(celery, job_id: str, device: str) -> None:
    """Send the job's train task to its device's queue.

    The job record says queued before this is called, so a publish that fails or is lost costs nothing:
    the reaper republishes long-queued jobs, and a duplicate message is a no-op thanks to the lease.
    """
    celery.send_task(TRAIN_TASK, args=[job_id], queue=queue_for(device))


def advance_search(celery, search_id: str) -> None:
    """Send a search's advance step to whichever worker is free. A lost one costs nothing: the reaper sends
    it again for a search that has not advanced for a while, and an extra one finds nothing to do."""
    celery.send_task(SEARCH_TASK, args=[search_id], queue="auto")


class JobControl:
    """The transitions that requests and the reaper make, each with its timeline event."""

    def __init__(self, store, celery):
        self.store, self.celery = store, celery

    def publish(self, job_id: str, device: str | None = None) -> None:
        publish(self.celery, job_id, device or self.store.device(job_id))

    def cancel(self, job_id: str) -> str:
        """Cancel a job that has not ended: `cancelled` at once, or `cancelling` (a running job stops at its
        next poll and writes its own event); Conflict for an ended job."""
        outcome = self.store.cancel(job_id)
        if outcome.startswith("already "):
            raise Conflict(f"the job has {outcome.split()[1]} already and cannot be cancelled")
        if outcome == CANCELLED:  # no worker holds it: no worker will write the event
            self.store.add_event(job_id, "cancelled", examples=self.store.examples_seen(job_id))
        return outcome

    def cancel_quietly(self, job_id: str) -> None:
        """Cancel if not ended yet (a group's cancel: an ended member is not an error)."""
        try:
            self.cancel(job_id)
        except Conflict:
            pass

    def pause(self, job_id: str) -> str:
        """A queued job pauses at once (`paused`); a running one at its next poll (`pausing`)."""
        outcome = self.store.pause(job_id)
        if outcome not in (PAUSED, "pausing"):
            raise Conflict(f"a {outcome} job cannot be paused")
        if outcome == PAUSED:
            self.store.add_event(job_id, "paused", examples=self.store.examples_seen(job_id))
        return outcome

    def resume(self, job_id: str) -> str:
        """A paused job is queued again and published; resuming a running job forgets a pending pause."""
        outcome = self.store.resume(job_id)
        if outcome == "resumed":
            self.store.add_event(job_id, "queued", examples=self.store.examples_seen(job_id),
                                 reason="resume requested")
            self.publish(job_id)
        elif outcome != RUNNING:
            raise Conflict(f"a {outcome} job cannot be resumed; only a paused one can")
        return outcome

    def change_trainer(self, job_id: str, changes: dict) -> None:
        """Live trainer changes: in the stored request now, picked up by a running worker at its next batch."""
        outcome = self.store.patch_trainer(job_id, changes)
        if outcome in TERMINAL:
            raise Conflict(f"the job has {outcome} already; its trainer can no longer change")

    def delete(self, job_id: str, artifacts) -> None:
        """Delete an ended job, its records and its files."""
        status = self.store.status(job_id)
        if status not in TERMINAL:
            raise Conflict(f"the job is {status}; cancel it before deleting it")
        artifacts.delete_job(job_id)
        self.store.delete(job_id)

    def requeue_lost(self, job_id: str) -> bool:
        """The reaper's transition: a running job whose lease expired goes back to the queue (or, with a
        cancel pending, ends cancelled). True when it was requeued and published."""
        outcome = self.store.reap(job_id)
        if outcome == 2:
            self.store.add_event(job_id, "cancelled", reason="cancelled while its worker was lost")
        if outcome != 1:
            return False
        self.store.add_event(job_id, "requeued", reason="worker lost")
        self.publish(job_id)
        return True

    def republish(self, job_id: str) -> None:
        """Publish a long-queued job again: its message may be lost. A duplicate is a no-op."""
        self.store.touch_requeued(job_id)
        self.publish(job_id)


class Attempt:
    """One worker's attempt at a job, holding its lease: every write is fenced by the attempt's token, so a
    worker that lost its lease changes nothing. Each ending is one step: the status and its timeline event."""

    def __init__(self, store, job_id: str, token: str):
        self.store, self.job_id, self.token = store, job_id, token

    def succeed(self, examples: int, result: dict, model: dict | None, predictions: str | None = None) -> bool:
        """The job has succeeded: its result, and pointers to this attempt's model files and test predictions."""
        return self.store.finish(self.job_id, self.token, SUCCEEDED,
                                 {"event": "finished", "examples": examples, "result": result},
                                 result=result, model=model, predictions=predictions, examples_seen=examples)

    def pruned(self, examples: int, result: dict, model: dict | None, predictions: str | None = None) -> bool:
        """The search's pruner stopped the job: it ends as a success does, with its model, but `pruned`."""
        return self.store.finish(self.job_id, self.token, PRUNED,
                                 {"event": "pruned", "examples": examples, "result": result},
                                 result=result, model=model, predictions=predictions, examples_seen=examples)

    def fail(self, error: dict) -> bool:
        return self.store.finish(self.job_id, self.token, FAILED, {"event": "failed", "error": error}, error=error)

    def cancelled(self, examples: int) -> bool:
        return self.store.finish(self.job_id, self.token, CANCELLED, {"event": "cancelled", "examples": examples},
                                 examples_seen=examples)

    def pause(self, examples: int) -> str:
        """Give the job back paused: `paused`, or `cancelled` when a cancel came first (`lost`: fenced out)."""
        outcome = self.store.release(self.job_id, self.token, PAUSED, {"event": "paused", "examples": examples},
                                     preempted=True)
        return {1: PAUSED, 2: CANCELLED}.get(outcome, "lost")

    def requeue(self, examples: int, reason: str) -> str:
        """Give the job back to the queue for another worker (this one is shutting down)."""
        outcome = self.store.release(self.job_id, self.token, QUEUED,
                                     {"event": "requeued", "examples": examples, "reason": reason}, preempted=True)
        return {1: "requeued", 2: CANCELLED}.get(outcome, "lost")


def not_started(store, job_id: str, outcome: str) -> None:
    """The timeline event for a start that ended the job instead (too many lost workers, a pending cancel)."""
    if outcome == FAILED:
        store.add_event(job_id, "failed", error=store.get(job_id)["error"])
    elif outcome == CANCELLED:
        store.add_event(job_id, "cancelled", reason="cancelled before it started")
