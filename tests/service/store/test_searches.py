"""Search records against a real redis-server: the step's lock fences its writes, and the reaper sends the
advance step again, once per stall, for a running search that has not advanced for a while."""

from __future__ import annotations

import pytest
import redis

from service.celery_app import SEARCH_TASK
from service.config import Config
from service.store import keys
from service.store.jobs import JobStore
from service.store.reaper import Reaper
from service.store.searches import SearchRecord, SearchStore
from tests.service.test_lifecycle import Published


@pytest.fixture
def searches(redis_url):
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    client.flushdb()
    return SearchStore(client)


def stored(searches: SearchStore, search_id: str = "1a2b3c4d5e6f") -> str:
    searches.create(SearchRecord(search_id, "s", "alice", 1.0, {"trials": 3, "parallel": 1}, quota=None))
    return search_id


def test_writes_land_only_under_the_lock_and_an_ended_search_leaves_the_running_index(searches):
    search_id = stored(searches)
    token = searches.lock(search_id, 5)
    assert token and searches.lock(search_id, 5) is None
    trial = {"number": 0, "architecture": "base", "params": {}, "skipped": [], "job": "j0", "state": "running",
             "value": None, "errors": []}
    assert searches.write(search_id, token, fields={"asked": 1}, trials=[trial])
    assert searches.get(search_id).trials == [trial] and searches.get(search_id).asked == 1
    searches.unlock(search_id, "someone else's token")
    assert searches.lock(search_id, 5) is None, "only the holder's token unlocks"
    searches.unlock(search_id, token)
    assert not searches.write(search_id, token, fields={"asked": 2}), "a step that lost its lock is fenced out"
    assert searches.get(search_id).asked == 1
    again = searches.lock(search_id, 5)
    assert searches.write(search_id, again, fields={"status": "succeeded", "finished_at": 2.0})
    assert searches.r.zscore(keys.SEARCHES_RUNNING, search_id) is None
    searches.delete(search_id)
    assert not [k for k in searches.r.keys("*") if k.startswith(keys.search(search_id))]


def test_the_reaper_sends_a_stalled_search_its_step_once(searches):
    search_id = stored(searches)
    celery = Published()
    reaper = Reaper(JobStore(searches.r), celery, Config(reaper_seconds=0.5, search_advance_seconds=0))
    reaper.sweep()
    assert celery.tasks == [(SEARCH_TASK, [search_id], "auto")]
    searches.r.delete(keys.REAPER_LOCK)
    reaper.sweep()
    assert len(celery.tasks) == 1, "sent, and not run yet: not sent again"
    token = searches.lock(search_id, 5)
    searches.write(search_id, token, fields={})  # the step ran
    searches.unlock(search_id, token)
    searches.r.delete(keys.REAPER_LOCK)
    reaper.sweep()
    assert len(celery.tasks) == 2
