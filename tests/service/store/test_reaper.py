"""The reaper against a real redis-server: it requeues only jobs whose lease expired, once, and republishes
long-queued jobs; its lock lets one reaper sweep at a time but never skips a round."""

from __future__ import annotations

import pytest
import redis

from service.config import Config
from service.store import keys
from service.store.jobs import JobStore
from service.store.reaper import Reaper
from tests.service.test_lifecycle import REQUEST, Published


@pytest.fixture
def store(redis_url):
    s = JobStore(redis.Redis.from_url(redis_url, decode_responses=True))
    s.r.flushdb()
    return s


def running(store: JobStore, token: str) -> str:
    job_id = store.create(REQUEST, {}, queue="cpu")["id"]
    store.start(job_id, "w", lease_seconds=60, max_attempts=3, token=token)
    store.r.zadd(keys.RUNNING, {job_id: 1.0})  # its last heartbeat looks old
    return job_id


def test_a_sweep_requeues_only_expired_leases_and_publishes_each_once(store):
    celery = Published()
    reaper = Reaper(store, celery, Config(reaper_seconds=0.5, lease_seconds=1))
    alive, lost = running(store, "a"), running(store, "b")
    store.r.delete(keys.lease(lost))
    assert reaper.sweep() == [lost]
    assert store.status(alive) == "running" and store.status(lost) == "queued"
    assert celery.tasks == [("convtrain.train", [lost], "cpu")]
    assert [p["event"] for p in store.points(lost)] == ["requeued"]


def test_one_reaper_at_a_time_but_the_lock_is_free_by_the_next_round(store):
    config = Config(reaper_seconds=0.5, lease_seconds=1)
    first, second = Reaper(store, Published(), config, "r1"), Reaper(store, Published(), config, "r2")
    lost = running(store, "a")
    store.r.delete(keys.lease(lost))
    assert first.sweep() == [lost]
    assert second.sweep() == [], "the lock is held"
    ttl = store.r.pttl(keys.REAPER_LOCK)
    assert 0 < ttl <= 250, "held for half an interval, so it has expired when the next round comes"


def test_long_queued_jobs_are_republished(store):
    celery = Published()
    reaper = Reaper(store, celery, Config(reaper_seconds=0.5, republish_seconds=0.001))
    job_id = store.create(REQUEST, {}, queue="cpu")["id"]
    store.r.zadd(keys.JOBS, {job_id: 1.0})  # created long ago
    reaper._last_scan = 0.0
    reaper.sweep()
    assert celery.tasks == [("convtrain.train", [job_id], "cpu")]
    assert store.raw(job_id)["requeued_at"]
