"""The job store's transitions against a real redis-server: leases, fencing, release, cancel, reap."""

from __future__ import annotations

import pytest
import redis

from service.lifecycle import Attempt
from service.store import keys
from service.store.jobs import JobNotFound, JobStore

REQUEST = {"budget": {"examples": 1000}, "device": "auto", "name": "t", "trainer": {"batch_size": 20}}


@pytest.fixture
def store(redis_url):
    s = JobStore(redis.Redis.from_url(redis_url, decode_responses=True))
    s.r.flushdb()
    return s


def queued(store: JobStore) -> str:
    return store.create(REQUEST, {"params": 1}, queue="auto", owner="alice")["id"]


def timeline(store: JobStore, job_id: str) -> list[str]:
    return [p.get("event", "point") for p in store.points(job_id, 0, None)]


def test_start_on_a_free_lease_runs_the_job_and_counts_the_attempt(store):
    job_id = queued(store)
    start = store.start(job_id, "w1", lease_seconds=10, max_attempts=3, token="t1")
    assert (start.outcome, start.token, start.attempt) == ("started", "t1", 1)
    record = store.raw(job_id)
    assert record["status"] == "running" and record["worker"] == "w1" and record["token"] == "t1"
    assert store.r.get(keys.lease(job_id)) == "t1" and 0 < store.r.pttl(keys.lease(job_id)) <= 10_000
    assert store.r.zscore(keys.RUNNING, job_id) is not None


def test_a_retried_start_with_the_same_token_is_recognised(store):
    job_id = queued(store)
    store.start(job_id, "w1", 10, 3, token="t1")
    again = store.start(job_id, "w1", 10, 3, token="t1")
    assert (again.outcome, again.attempt) == ("started", 1)


def test_start_on_a_held_lease_answers_busy(store):
    job_id = queued(store)
    store.start(job_id, "w1", 10, 3, token="t1")
    store.r.hset(keys.job(job_id), "status", "queued")  # a duplicate delivery while the lease is held
    assert store.start(job_id, "w2", 10, 3, token="t2").outcome == "busy"
    assert store.r.get(keys.lease(job_id)) == "t1"


@pytest.mark.parametrize(("status", "outcome"), [("succeeded", "finished"), ("failed", "finished"),
                                                 ("cancelled", "finished"), ("paused", "paused")])
def test_start_of_a_job_that_cannot_run_changes_nothing(store, status, outcome):
    job_id = queued(store)
    store.r.hset(keys.job(job_id), "status", status)
    assert store.start(job_id, "w1", 10, 3).outcome == outcome
    assert store.raw(job_id)["status"] == status and not store.r.exists(keys.lease(job_id))


def test_start_of_a_missing_job_answers_missing(store):
    assert store.start("0123456789abcdef", "w1", 10, 3).outcome == "missing"


def test_a_job_that_lost_too_many_workers_fails(store):
    job_id = queued(store)
    for attempt in range(2):
        assert store.start(job_id, "w", 10, max_attempts=2, token=f"t{attempt}").outcome == "started"
        store.r.delete(keys.lease(job_id))  # the worker died
        assert store.reap(job_id) == 1
    assert store.start(job_id, "w", 10, max_attempts=2, token="t9").outcome == "failed"
    assert store.get(job_id)["error"]["type"] == "worker_lost"


def test_writes_and_finish_with_a_stale_token_are_refused(store):
    job_id = queued(store)
    store.start(job_id, "w1", 10, 3, token="old")
    store.r.delete(keys.lease(job_id))
    store.reap(job_id)
    store.start(job_id, "w2", 10, 3, token="new")
    stale = Attempt(store, job_id, "old")
    assert not store.update(job_id, "old", checkpoint="x.pt")
    assert store.add_point(job_id, "old", {"examples": 5}) == 0
    assert store.add_snapshot(job_id, "old", [], 5) == 0
    assert store.take_trainer_patch(job_id, "old") is None
    assert not store.heartbeat(job_id, "old", 10)
    assert not stale.succeed(1000, {"test_acc": 0.9}, None)
    assert stale.pause(10) == "lost" and stale.requeue(10, "x") == "lost"
    record = store.raw(job_id)
    assert record["status"] == "running" and record["token"] == "new" and "checkpoint" not in record
    assert store.r.get(keys.lease(job_id)) == "new"


def test_finish_ends_the_job_with_its_event_in_one_step(store):
    job_id = queued(store)
    store.start(job_id, "w1", 10, 3, token="t")
    assert Attempt(store, job_id, "t").succeed(1000, {"test_acc": 0.98}, {"file": "m.pt"})
    job = store.get(job_id)
    assert job["status"] == "succeeded" and job["result"] == {"test_acc": 0.98} and job["finished_at"]
    assert timeline(store, job_id) == ["finished"]
    assert not store.r.exists(keys.lease(job_id)) and store.r.zscore(keys.RUNNING, job_id) is None


@pytest.mark.parametrize(("preempted", "preemptions"), [(True, 1), (False, 0)])
def test_release_gives_the_job_back_and_counts_preemptions(store, preempted, preemptions):
    job_id = queued(store)
    store.start(job_id, "w1", 10, 3, token="t")
    assert store.release(job_id, "t", "queued", {"event": "requeued"}, preempted=preempted) == 1
    record = store.raw(job_id)
    assert record["status"] == "queued" and record["worker"] == "" and int(record["preemptions"]) == preemptions
    assert not store.r.exists(keys.lease(job_id))
    # A preemption does not use up an attempt: the next start is still allowed with max_attempts=1.
    outcome = store.start(job_id, "w2", 10, max_attempts=1).outcome
    assert outcome == ("started" if preempted else "failed")


def test_release_after_a_cancel_ends_cancelled(store):
    job_id = queued(store)
    store.start(job_id, "w1", 10, 3, token="t")
    assert store.cancel(job_id) == "cancelling"
    assert Attempt(store, job_id, "t").pause(100) == "cancelled"
    assert store.raw(job_id)["status"] == "cancelled"


def test_cancel_while_queued_is_immediate(store):
    job_id = queued(store)
    assert store.cancel(job_id) == "cancelled"
    assert store.raw(job_id)["status"] == "cancelled"
    assert store.start(job_id, "w1", 10, 3).outcome == "finished"


def test_cancel_while_running_asks_the_worker(store):
    job_id = queued(store)
    store.start(job_id, "w1", 10, 3, token="t")
    assert store.cancel(job_id) == "cancelling"
    assert store.raw(job_id)["status"] == "running" and store.flags(job_id)["cancel"]
    assert store.get(job_id)["status_detail"] == "cancelling"
    assert Attempt(store, job_id, "t").cancelled(40)
    assert store.raw(job_id)["status"] == "cancelled" and timeline(store, job_id) == ["cancelled"]


def test_cancel_while_recovering_ends_it_at_once(store):
    """Running in the record, but its lease expired: no worker will see the flag, so the cancel ends it."""
    job_id = queued(store)
    store.start(job_id, "w1", 10, 3, token="t")
    store.r.delete(keys.lease(job_id))
    assert store.cancel(job_id) == "cancelled"
    assert store.raw(job_id)["status"] == "cancelled" and store.r.zscore(keys.RUNNING, job_id) is None
    assert store.reap(job_id) == 0


@pytest.mark.parametrize("status", ["succeeded", "failed", "cancelled"])
def test_cancel_of_an_ended_job_says_so(store, status):
    job_id = queued(store)
    store.r.hset(keys.job(job_id), "status", status)
    assert store.cancel(job_id) == f"already {status}"


def test_pause_and_resume(store):
    job_id = queued(store)
    assert store.pause(job_id) == "paused" and store.raw(job_id)["status"] == "paused"
    assert store.resume(job_id) == "resumed" and store.raw(job_id)["status"] == "queued"
    store.start(job_id, "w1", 10, 3, token="t")
    assert store.pause(job_id) == "pausing" and store.flags(job_id)["pause"]
    assert store.resume(job_id) == "running" and not store.flags(job_id)["pause"]


def test_the_reaper_requeues_only_expired_leases(store):
    alive, dead = queued(store), queued(store)
    store.start(alive, "w1", 10, 3, token="a")
    store.start(dead, "w2", 10, 3, token="d")
    store.r.zadd(keys.RUNNING, {alive: 1.0, dead: 1.0})  # both heartbeats look old...
    store.r.delete(keys.lease(dead))  # ...but only one lease expired
    assert sorted(store.stale(older_than=5)) == sorted([alive, dead])
    assert store.reap(alive) == 0 and store.raw(alive)["status"] == "running"
    assert store.reap(dead) == 1 and store.raw(dead)["status"] == "queued"
    assert store.r.zscore(keys.RUNNING, dead) is None and store.r.zscore(keys.RUNNING, alive) is not None


def test_heartbeat_renews_the_lease(store):
    job_id = queued(store)
    store.start(job_id, "w1", 1, 3, token="t")
    assert store.heartbeat(job_id, "t", 30)
    assert store.r.pttl(keys.lease(job_id)) > 20_000


def test_points_batch_in_order_and_set_the_last_metrics(store):
    job_id = queued(store)
    store.start(job_id, "w1", 10, 3, token="t")
    points = [{"examples": 100 * i} for i in range(1, 4)]
    assert store.add_points(job_id, "t", [*points, {"event": "checkpoint"}], metrics=points[-1], examples_seen=300) == 4
    assert [p["seq"] for p in store.points(job_id)] == [1, 2, 3, 4]
    assert store.get(job_id)["progress"]["examples_seen"] == 300
    assert [p["seq"] for p in store.follow(job_id, 2, None)] == [3, 4]


def test_live_trainer_changes_merge_into_the_request_and_wait_for_the_worker(store):
    job_id = queued(store)
    assert store.patch_trainer(job_id, {"batch_size": 40}) == "queued"
    assert store.request(job_id)["trainer"]["batch_size"] == 40
    store.start(job_id, "w1", 10, 3, token="t")
    assert store.take_trainer_patch(job_id, "t") == {"batch_size": 40}
    assert store.take_trainer_patch(job_id, "t") is None


def test_listing_pages_newest_first_by_owner(store):
    ids = [queued(store) for _ in range(5)]
    page, cursor = store.list(owner="alice", limit=3)
    assert [j["id"] for j in page] == ids[::-1][:3] and cursor
    rest, end = store.list(owner="alice", cursor=float(cursor), limit=3)
    assert [j["id"] for j in rest] == ids[::-1][3:] and end is None
    assert store.list(owner="bob") == ([], None)


def test_delete_removes_every_key(store):
    job_id = queued(store)
    store.add_event(job_id, "cancelled")
    store.delete(job_id)
    assert not any(store.r.exists(k) for k in (keys.job(job_id), keys.metrics(job_id), keys.lease(job_id)))
    assert store.r.zscore(keys.JOBS, job_id) is None and store.r.zscore(keys.owned("alice"), job_id) is None
    with pytest.raises(JobNotFound):
        store.get(job_id)
