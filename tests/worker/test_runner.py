"""One attempt's writes through the runner, on a real redis-server and a real artifact folder: a failed
checkpoint write is counted and the job goes on; a fenced-out checkpoint removes only its own file."""

from __future__ import annotations

import pytest
import redis

from service.config import Config
from service.storage import Artifacts
from service.store import keys
from service.store.jobs import JobStore
from worker.runner import WorkerContext, write_checkpoint
from worker.timeline import Timeline

REQUEST = {"budget": {"examples": 1000}, "device": "cpu", "name": "t", "trainer": {"batch_size": 20}}


class BrokenDisk(Artifacts):
    """The artifact store with a full disk: the one error a real folder here cannot be made to produce."""

    def put(self, job_id, name, data):
        raise OSError(28, "No space left on device")


@pytest.fixture
def running(redis_url, tmp_path):
    store = JobStore(redis.Redis.from_url(redis_url, decode_responses=True))
    store.r.flushdb()
    job_id = store.create(REQUEST, {}, queue="cpu")["id"]
    store.start(job_id, "w", 30, 3, token="t1")
    return store, job_id, tmp_path


def context(store, folder, artifacts_class=Artifacts) -> WorkerContext:
    return WorkerContext(config=Config(), store=store, artifacts=artifacts_class(str(folder)), name="w")


def timeline(store, job_id, token):
    return Timeline(lambda entries, **fields: store.add_points(job_id, token, entries, **fields), 0)


def test_a_failed_checkpoint_write_is_counted_and_the_job_goes_on(running):
    store, job_id, folder = running
    ctx = context(store, folder, BrokenDisk)
    write_checkpoint(ctx, job_id, "t1", {"examples": 500}, timeline(store, job_id, "t1"))
    assert ctx.checkpoint_failures == 1
    assert store.checkpoint_name(job_id) is None and store.status(job_id) == "running"
    ctx.artifacts = Artifacts(str(folder))  # the disk has room again: the next checkpoint lands
    write_checkpoint(ctx, job_id, "t1", {"examples": 600}, timeline(store, job_id, "t1"))
    assert store.checkpoint_name(job_id) and ctx.checkpoint_failures == 1
    assert [p["event"] for p in store.points(job_id)] == ["checkpoint"]


def test_each_checkpoint_has_a_name_of_its_own_and_the_previous_one_goes(running):
    store, job_id, folder = running
    ctx = context(store, folder)
    write_checkpoint(ctx, job_id, "t1", {"examples": 500}, timeline(store, job_id, "t1"))
    first = store.checkpoint_name(job_id)
    write_checkpoint(ctx, job_id, "t1", {"examples": 500}, timeline(store, job_id, "t1"))
    second = store.checkpoint_name(job_id)
    assert first != second
    assert ctx.artifacts.names(job_id) == [second]


def test_a_fenced_out_checkpoint_removes_only_its_own_file(running):
    store, job_id, folder = running
    ctx = context(store, folder)
    write_checkpoint(ctx, job_id, "t1", {"examples": 500}, timeline(store, job_id, "t1"))
    live = store.checkpoint_name(job_id)
    store.r.delete(keys.lease(job_id))  # t1 lost its lease...
    store.reap(job_id)
    store.start(job_id, "w2", 30, 3, token="t2")  # ...and t2 resumed from the live checkpoint
    write_checkpoint(ctx, job_id, "t1", {"examples": 900}, timeline(store, job_id, "t1"))  # the stale attempt
    assert store.checkpoint_name(job_id) == live
    assert ctx.artifacts.names(job_id) == [live], "the file the record points to is still there, alone"
