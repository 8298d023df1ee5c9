"""Parallel requests from real clients against the API under gunicorn (two processes): quotas cannot be
raced, and an idempotent submit is stored and published once. No worker runs, so every task that was
published is still in its Celery queue (a Redis list) to be counted."""

from __future__ import annotations

import base64
import json
from concurrent.futures import ThreadPoolExecutor

import pytest
import redis
import requests

from service import auth
from tests.conftest import example, gunicorn

pytestmark = pytest.mark.e2e
PARALLEL = 20


@pytest.fixture
def api(own_service, tmp_path):
    """gunicorn on the service's Redis, with a token for carol whose active-jobs quota is 5."""
    path = tmp_path / "tokens.json"
    token = auth.create(path, "carol")
    data = json.loads(path.read_text())
    data["tokens"][0]["quotas"] = {"active_jobs": 5}
    path.write_text(json.dumps(data))
    env = {**own_service.env, "CONVTRAIN_TOKENS_FILE": str(path)}
    with gunicorn(env, stop_timeout=30) as base:
        yield base, {"Authorization": f"Bearer {token}"}, redis.Redis.from_url(own_service.url, decode_responses=True)


def published(r) -> list[str]:
    """The job ids of every train task waiting in the queues."""
    return [json.loads(base64.b64decode(json.loads(message)["body"]))[0][0]
            for queue in ("auto", "cpu", "gpu") for message in r.lrange(queue, 0, -1)]


def test_parallel_submits_cannot_overshoot_the_active_jobs_quota(api):
    base, headers, r = api
    body = example("net1-default.json", budget={"examples": 300})
    with ThreadPoolExecutor(PARALLEL) as pool:
        answers = list(pool.map(lambda _: requests.post(f"{base}/v1/jobs", json=body, headers=headers, timeout=60),
                                range(PARALLEL)))
    codes = sorted(a.status_code for a in answers)
    assert codes == [202] * 5 + [429] * (PARALLEL - 5), codes
    assert all(a.json()["limit"] == "active_jobs" for a in answers if a.status_code == 429)
    listed = requests.get(f"{base}/v1/jobs?limit=100", headers=headers, timeout=30).json()["jobs"]
    accepted = sorted(a.json()["id"] for a in answers if a.status_code == 202)
    assert sorted(j["id"] for j in listed) == accepted
    assert sorted(published(r)) == accepted, "each accepted job's task is published once"


def test_one_idempotency_key_in_parallel_makes_one_job_published_once(api):
    base, headers, r = api
    body = example("net1-default.json", budget={"examples": 300})
    key = {**headers, "Idempotency-Key": "the-same-key"}
    with ThreadPoolExecutor(PARALLEL) as pool:
        answers = list(pool.map(lambda _: requests.post(f"{base}/v1/jobs", json=body, headers=key, timeout=60),
                                range(PARALLEL)))
    assert {a.status_code for a in answers} <= {200, 202}
    assert [a.status_code for a in answers].count(202) == 1, "one request stored it; the others replay it"
    ids = {a.json()["id"] for a in answers}
    assert len(ids) == 1
    assert published(r) == list(ids), "its task is published once"
