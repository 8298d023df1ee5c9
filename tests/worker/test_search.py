"""The advance step (worker/search.py) on a real redis-server with Optuna's journal on it, the store playing
the trials' workers: trials become jobs up to `parallel`, each ended job is told to Optuna once, invalid
combinations and steps that died halfway cost nothing and lose nothing."""

from __future__ import annotations

import pytest
import redis
from optuna.trial import TrialState

from service.config import Config
from service.lifecycle import Attempt
from service.spec import search as search_spec
from service.storage import Artifacts
from service.store.jobs import JobStore
from service.store.record import now
from service.store.searches import SearchRecord
from tests.service.test_lifecycle import Published
from worker.runner import WorkerContext
from worker.search import Searches, open_study

LAYERS = [{"type": "input", "out_sx": 24, "out_sy": 24, "out_depth": 1},
          {"type": "conv", "sx": 5, "filters": 4, "activation": "relu"},
          {"type": "pool", "sx": 2, "stride": 2},
          {"type": "softmax", "num_classes": 10}]


def body(**changes) -> dict:
    out = {"name": "unit", "base": {"network": {"layers": LAYERS}, "trainer": {"method": "adadelta"},
                                    "budget": {"examples": 2000}, "device": "cpu"},
           "space": {"network.layers[1].sx": {"choice": [3, 5]}}, "trials": 3, "parallel": 2, "seed": 2,
           "sampler": "random"}
    out.update(changes)
    return out


@pytest.fixture
def world(redis_url, tmp_path):
    store = JobStore(redis.Redis.from_url(redis_url, decode_responses=True))
    store.r.flushdb()
    celery = Published()
    ctx = WorkerContext(config=Config(), store=store, artifacts=Artifacts(str(tmp_path)), name="w")
    return Searches(ctx, celery, redis_url), celery


def submit(searches: Searches, **changes) -> str:
    search_id = f"5ea{len(searches.searches.r.keys('*')):09d}"
    searches.searches.create(SearchRecord(search_id, "unit", "alice", now(), body(**changes), quota=None))
    return search_id


def finish(store: JobStore, job_id: str, val_acc: float) -> None:
    start = store.start(job_id, "w", 30, 3)
    result = {"examples_seen": 2000, "val_acc": val_acc, "test_acc": val_acc}
    assert Attempt(store, job_id, start.token).succeed(2000, result, None)


def test_trials_become_jobs_up_to_parallel_and_each_end_is_told_once(world):
    searches, celery = world
    search_id = submit(searches)
    assert searches.advance(search_id) == "advanced"
    record = searches.searches.get(search_id)
    assert record.asked == 2 and [t["state"] for t in record.trials] == ["running", "running"]
    jobs = [t["job"] for t in record.trials]
    assert [args for _, args, _ in celery.tasks] == [[j] for j in jobs], "each trial's job published once"
    stored = searches.ctx.store.raw(jobs[0])
    assert stored["search"] == search_id and stored["trial"] == "0" and stored["name"] == "unit/trial 0"
    assert searches.advance(search_id) == "advanced" and len(celery.tasks) == 2, "nothing ended: nothing new"

    finish(searches.ctx.store, jobs[0], 0.9)
    searches.advance(search_id)
    searches.advance(search_id)  # a second step for the same end (the reaper's, a duplicate task)
    record = searches.searches.get(search_id)
    assert [(t["state"], t["value"]) for t in record.trials[:1]] == [("complete", 0.9)] and record.asked == 3
    study = open_study(searches.redis_url, search_id, search_spec.parse(record.body))
    assert [t.state for t in study.trials] == [TrialState.COMPLETE, TrialState.RUNNING, TrialState.RUNNING]
    assert study.trials[0].value == 0.9

    for t in record.trials[1:]:
        finish(searches.ctx.store, t["job"], 0.8)
    assert searches.advance(search_id) == "succeeded"
    assert searches.searches.get(search_id).finished_at is not None
    assert searches.advance(search_id) == "succeeded", "an ended search stays as it is"


def test_invalid_combinations_are_told_fail_and_make_no_job(world):
    searches, celery = world
    search_id = submit(searches, space={"network.layers[1].sx": {"choice": [40]}})
    assert searches.advance(search_id) == "failed"  # every trial invalid: nothing scored
    record = searches.searches.get(search_id)
    assert [t["state"] for t in record.trials] == ["invalid"] * 3 and celery.tasks == []
    assert all(t["job"] is None and t["errors"][0]["path"].startswith("network.layers[1]") for t in record.trials)
    study = open_study(searches.redis_url, search_id, search_spec.parse(record.body))
    assert [t.state for t in study.trials] == [TrialState.FAIL] * 3


def test_a_step_that_died_halfway_is_finished_by_the_next(world):
    searches, celery = world
    search_id = submit(searches, parallel=1)
    spec = search_spec.parse(searches.searches.get(search_id).body)
    # Died after asking Optuna, before recording the trial: the orphan is told FAIL, and a new trial is asked.
    open_study(searches.redis_url, search_id, spec).ask()
    searches.advance(search_id)
    record = searches.searches.get(search_id)
    study = open_study(searches.redis_url, search_id, spec)
    assert study.trials[0].state == TrialState.FAIL and [t["number"] for t in record.trials] == [1]
    # Died after recording `creating` with its job id, before storing the job: the next step stores that job.
    trial = {**record.trials[0], "number": 2, "state": "creating", "job": "5eaf00000000000000000001"}
    token = searches.searches.lock(search_id, 5)
    searches.searches.write(search_id, token, trials=[trial])
    searches.searches.unlock(search_id, token)
    searches.advance(search_id)
    assert searches.searches.get(search_id).trials[1]["state"] == "running"
    assert searches.ctx.store.raw(trial["job"])["trial"] == "2"
    assert [args for _, args, _ in celery.tasks].count([trial["job"]]) == 1


def test_a_cancelled_search_stops_the_trials_its_cancel_did_not_see(world):
    """A step that ran while the cancel was being made may have queued trials the cancel route never read:
    the next step cancels them, and the search ends once each has stopped."""
    searches, _celery = world
    search_id = submit(searches)
    searches.advance(search_id)
    jobs = [t["job"] for t in searches.searches.get(search_id).trials]
    searches.searches.mark_cancelled(search_id)  # the flag only, as if the route read no job ids
    assert searches.advance(search_id) == "advanced"
    assert searches.ctx.store.statuses(jobs) == ["cancelled", "cancelled"], "queued trials cancelled at once"
    assert searches.advance(search_id) == "cancelled"
    record = searches.searches.get(search_id)
    assert [t["state"] for t in record.trials] == ["cancelled", "cancelled"] and record.asked == 2
