"""The lifecycle's transitions and their timeline events, through the real store on a real redis-server,
with a recording stand-in for Celery (the publish is the one thing no broker is needed to check)."""

from __future__ import annotations

import pytest
import redis

from service import lifecycle
from service.errors import Conflict
from service.lifecycle import JobControl
from service.store import keys
from service.store.jobs import JobStore

REQUEST = {"budget": {"examples": 1000}, "device": "cpu", "name": "t", "trainer": {"batch_size": 20}}


class Published:
    """Stands in for the Celery client: records what would have been sent."""

    def __init__(self):
        self.tasks: list[tuple[str, list, str]] = []

    def send_task(self, name, args, queue):
        self.tasks.append((name, args, queue))


@pytest.fixture
def control(redis_url):
    store = JobStore(redis.Redis.from_url(redis_url, decode_responses=True))
    store.r.flushdb()
    return JobControl(store, Published())


def new_job(control) -> str:
    return control.store.create(REQUEST, {}, queue="cpu")["id"]


def events(control, job_id) -> list[str]:
    return [p["event"] for p in control.store.points(job_id, 0, None)]


def test_the_lua_sees_the_same_statuses():
    prelude = lifecycle.lua_constants()
    for status in lifecycle.STATUSES:
        assert f"'{status}'" in prelude
    assert "local TERMINAL = {succeeded = true, failed = true, cancelled = true, pruned = true}" in prelude


def test_every_status_event_leaves_a_known_status():
    assert set(lifecycle.STATUS_AFTER.values()) <= set(lifecycle.STATUSES)


def test_cancel_of_a_queued_job_writes_its_event(control):
    job_id = new_job(control)
    assert control.cancel(job_id) == "cancelled"
    assert events(control, job_id) == ["cancelled"]
    with pytest.raises(Conflict, match="cancelled already"):
        control.cancel(job_id)
    control.cancel_quietly(job_id)  # an ended member of a group is not an error


def test_cancel_of_a_running_job_leaves_the_event_to_its_worker(control):
    job_id = new_job(control)
    control.store.start(job_id, "w", 10, 3, token="t")
    assert control.cancel(job_id) == "cancelling" and events(control, job_id) == []


def test_pause_and_resume_publish_the_job_again(control):
    job_id = new_job(control)
    assert control.pause(job_id) == "paused"
    assert control.resume(job_id) == "resumed"
    assert events(control, job_id) == ["paused", "queued"]
    assert control.celery.tasks == [("convtrain.train", [job_id], "cpu")]
    with pytest.raises(Conflict, match="only a paused one"):
        control.resume(job_id)


def test_delete_refuses_a_job_that_has_not_ended(control, tmp_path):
    from service.storage import Artifacts

    job_id = new_job(control)
    with pytest.raises(Conflict, match="cancel it before deleting it"):
        control.delete(job_id, Artifacts(str(tmp_path)))
    control.cancel(job_id)
    control.delete(job_id, Artifacts(str(tmp_path)))
    assert not control.store.exists(job_id)


def test_requeue_lost_publishes_once_and_only_for_an_expired_lease(control):
    job_id = new_job(control)
    control.store.start(job_id, "w", 10, 3, token="t")
    assert not control.requeue_lost(job_id), "the lease is held"
    control.store.r.delete(keys.lease(job_id))
    assert control.requeue_lost(job_id)
    assert not control.requeue_lost(job_id), "already queued"
    assert events(control, job_id) == ["requeued"] and len(control.celery.tasks) == 1


def test_requeue_lost_with_a_cancel_pending_ends_cancelled(control):
    job_id = new_job(control)
    control.store.start(job_id, "w", 10, 3, token="t")
    control.store.r.hset(keys.job(job_id), "cancel_requested", "1")
    control.store.r.delete(keys.lease(job_id))
    assert not control.requeue_lost(job_id)
    assert control.store.status(job_id) == "cancelled" and events(control, job_id) == ["cancelled"]


@pytest.mark.parametrize(("statuses", "cancelled", "expected"), [
    (["succeeded", "running"], False, "running"),
    (["succeeded", "succeeded"], False, "succeeded"),
    (["succeeded", None], False, "cancelled"),  # a job deleted on its own ended, but did not succeed
    (["succeeded", "failed"], False, "failed"),
    (["succeeded", "failed"], True, "cancelled"),
    (["succeeded", "cancelled"], False, "cancelled"),
    ([], False, "cancelled"),
])
def test_a_group_status_follows_its_jobs(statuses, cancelled, expected):
    assert lifecycle.sweep_status(statuses, cancelled) == expected
