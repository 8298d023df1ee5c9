"""Faults with real processes: killed workers, SIGTERM, a restarted redis-server, cancel, pause, live changes.

Each test runs its own redis-server and workers (the `own_service` fixture), with a 3 s lease,
0.5 s heartbeats, reaper sweeps and checkpoints (tests/conftest.py FAST), and measures what it proves.
"""

from __future__ import annotations

import json
import signal
import time

import pytest

from service.api import create_app
from service.store.jobs import JobStore
from tests.conftest import ROOT, example, wait_status

pytestmark = pytest.mark.e2e
RECOVERY_LOG = ROOT / "test-output" / "recovery.json"


def report(name: str, seconds: float, capsys) -> None:
    """Print a measured recovery time and keep it for the README table."""
    RECOVERY_LOG.parent.mkdir(exist_ok=True)
    results = json.loads(RECOVERY_LOG.read_text()) if RECOVERY_LOG.exists() else {}
    results[name] = round(seconds, 2)
    RECOVERY_LOG.write_text(json.dumps(results, indent=1))
    with capsys.disabled():
        print(f"\n  [{name}] {seconds:.2f} s")


def long_job(examples: int = 40_000, **changes) -> dict:
    return example("net1-default.json", budget={"examples": examples}, seed=1, **changes)


def api(svc):
    return create_app(svc.config, svc.url).test_client()


def wait_for(predicate, timeout: float = 60, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not reached in {timeout} s")
        time.sleep(0.02)


def checkpointed(svc, job_id: str) -> bool:
    return bool(JobStore.from_url(svc.url).checkpoint_name(job_id))


def running_on(client, job_id: str, worker: str):
    job = client.get(f"/v1/jobs/{job_id}").get_json()
    return job if job["status"] == "running" and job["worker"] == worker else None


def events(client, job_id: str) -> list[dict]:
    return [p for p in client.get(f"/v1/jobs/{job_id}/metrics?limit=10000").get_json()["points"] if "event" in p]


def assert_no_gap(client, job_id: str, budget: int) -> None:
    """The timeline covers the whole budget: no two points, and no resume and the point before it, are far apart.

    Points come every 100 examples or 0.05 s here and checkpoints every 0.5 s, so a gap
    above 2,000 examples (about one checkpoint interval of training) means lost progress.
    """
    timeline = client.get(f"/v1/jobs/{job_id}/metrics?limit=10000").get_json()["points"]
    covered = 0
    for point in timeline:
        if point.get("event") in ("resumed", "started") or "event" not in point:
            assert point["examples"] - covered <= 2000, (point, covered)
        if "event" not in point:
            covered = max(covered, point["examples"])
    assert covered == budget


def test_sigkill_of_a_training_worker_is_recovered_from_the_checkpoint(own_service, capsys):
    svc = own_service
    victim = svc.start_worker("victim")
    client = api(svc)
    job = client.post("/v1/jobs", json=long_job()).get_json()
    wait_for(lambda: running_on(client, job["id"], "victim"), what="job running on the victim")
    wait_for(lambda: checkpointed(svc, job["id"]), what="a checkpoint")
    svc.start_worker("rescuer")
    killed_at = time.monotonic()
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    wait_for(lambda: running_on(client, job["id"], "rescuer"), timeout=60, what="job running on the rescuer")
    report("sigkill: kill to running again", time.monotonic() - killed_at, capsys)

    job = wait_status(client, job["id"], ("succeeded", "failed"), timeout=180)
    assert job["status"] == "succeeded", job["error"]
    assert job["progress"]["examples_seen"] == 40_000 and job["result"]["examples_seen"] == 40_000
    assert job["attempts"] == 2 and job["worker"] == "rescuer"
    kinds = [e["event"] for e in events(client, job["id"])]
    assert kinds[0] == "started" and "resumed" in kinds and kinds[-1] == "finished"
    assert_no_gap(client, job["id"], 40_000)


def test_sigterm_hands_the_job_to_another_worker_at_once(own_service, capsys):
    svc = own_service
    leaving = svc.start_worker("leaving")
    client = api(svc)
    job = client.post("/v1/jobs", json=long_job(30_000)).get_json()
    wait_for(lambda: running_on(client, job["id"], "leaving"), what="job running")
    svc.start_worker("staying")
    asked = time.monotonic()
    leaving.send_signal(signal.SIGTERM)
    wait_for(lambda: running_on(client, job["id"], "staying"), timeout=30, what="job on the other worker")
    handover = time.monotonic() - asked
    report("sigterm: handover to another worker", handover, capsys)
    assert handover < svc.config.lease_seconds  # it did not wait for the lease to expire
    assert leaving.wait(30) == 0
    job = wait_status(client, job["id"], ("succeeded", "failed"), timeout=180)
    assert job["status"] == "succeeded" and job["progress"]["examples_seen"] == 30_000
    assert job["attempts"] == 2
    assert [e["event"] for e in events(client, job["id"])].count("requeued") == 1
    assert_no_gap(client, job["id"], 30_000)


def test_redis_restart_while_training_loses_nothing(own_service, capsys):
    svc = own_service
    svc.start_worker("steady")
    client = api(svc)
    first = client.post("/v1/jobs", json=long_job(30_000)).get_json()
    others = [client.post("/v1/jobs", json=long_job(500, name=f"queued-{i}")).get_json()["id"] for i in range(3)]
    wait_for(lambda: running_on(client, first["id"], "steady"), what="job running")
    wait_for(lambda: checkpointed(svc, first["id"]), what="a checkpoint")
    svc.redis.stop()  # SIGTERM: redis-server writes its append-only file and exits
    down = client.get(f"/v1/jobs/{first['id']}")
    assert down.status_code == 503 and down.headers["Retry-After"]
    time.sleep(1.0)
    restarted_at = time.monotonic()
    svc.redis.start()
    for job_id in [first["id"], *others]:
        assert client.get(f"/v1/jobs/{job_id}").status_code == 200
    first_done = wait_status(client, first["id"], ("succeeded", "failed"), timeout=240)
    report("redis restart: restart to job finished", time.monotonic() - restarted_at, capsys)
    assert first_done["status"] == "succeeded", first_done["error"]
    assert first_done["progress"]["examples_seen"] == 30_000
    for job_id in others:
        assert wait_status(client, job_id, ("succeeded", "failed"), timeout=120)["status"] == "succeeded"
    listed = {j["id"] for j in client.get("/v1/jobs?limit=100").get_json()["jobs"]}
    assert {first["id"], *others} <= listed


def killed_while_training(svc):
    """Submit a long job, let a worker start training it, and SIGKILL that worker."""
    victim = svc.start_worker("victim")
    client = api(svc)
    job = client.post("/v1/jobs", json=long_job()).get_json()
    wait_for(lambda: running_on(client, job["id"], "victim"), what="job running")
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    return client, job


def test_cancel_while_the_job_is_being_recovered(own_service):
    svc = own_service
    client, job = killed_while_training(svc)
    response = client.post(f"/v1/jobs/{job['id']}/cancel")  # the lease has not expired yet
    assert response.status_code == 202 and response.get_json()["status_detail"] == "cancelling"
    svc.start_worker("later")  # its reaper finds the expired lease and the cancel request
    job = wait_status(client, job["id"], ("cancelled",), timeout=30)
    time.sleep(1)
    job = client.get(f"/v1/jobs/{job['id']}").get_json()
    assert job["status"] == "cancelled" and job["attempts"] == 1


def test_too_many_lost_workers_fail_the_job(own_service):
    svc = own_service
    svc.env["CONVTRAIN_MAX_ATTEMPTS"] = "1"
    client, job = killed_while_training(svc)
    svc.start_worker("next")
    job = wait_status(client, job["id"], ("failed",), timeout=60)
    assert job["error"]["type"] == "worker_lost" and job["attempts"] == 2


def test_pause_resume_and_a_trainer_change_mid_run(own_service):
    svc = own_service
    svc.start_worker("only")
    client = api(svc)
    job = client.post("/v1/jobs", json=long_job(25_000)).get_json()
    wait_for(lambda: client.get(f"/v1/jobs/{job['id']}").get_json()["progress"]["examples_seen"] > 0, what="progress")
    patch = client.patch(f"/v1/jobs/{job['id']}/trainer", json={"learning_rate": 0.5, "batch_size": 40})
    assert patch.status_code == 200 and patch.get_json()["request"]["trainer"]["batch_size"] == 40
    wait_for(lambda: any(e["event"] == "trainer" for e in events(client, job["id"])), what="trainer event")
    bad = client.patch(f"/v1/jobs/{job['id']}/trainer", json={"learning_rate": -1, "nesterov": 1})
    assert bad.status_code == 422 and {e["path"] for e in bad.get_json()["errors"]} == {"trainer.learning_rate", "trainer.nesterov"}

    assert client.post(f"/v1/jobs/{job['id']}/pause").status_code == 202
    paused = wait_status(client, job["id"], ("paused",), timeout=10)
    seen = paused["progress"]["examples_seen"]
    time.sleep(1.0)
    assert client.get(f"/v1/jobs/{job['id']}").get_json()["progress"]["examples_seen"] == seen
    assert client.post(f"/v1/jobs/{job['id']}/resume").status_code == 202
    done = wait_status(client, job["id"], ("succeeded", "failed"), timeout=180)
    assert done["status"] == "succeeded" and done["progress"]["examples_seen"] == 25_000
    kinds = [e["event"] for e in events(client, job["id"])]
    assert kinds.index("trainer") < kinds.index("paused") < kinds.index("resumed")
    points = [p for p in client.get(f"/v1/jobs/{job['id']}/metrics?limit=10000").get_json()["points"] if "event" not in p]
    assert points[0]["batch_size"] == 20 and points[-1]["batch_size"] == 40
    assert points[-1]["learning_rate"] == 0.5


def test_idempotency_key_returns_the_same_job(own_service):
    client = api(own_service)
    body = long_job(500)
    first = client.post("/v1/jobs", json=body, headers={"Idempotency-Key": "abc-123"})
    again = client.post("/v1/jobs", json=body, headers={"Idempotency-Key": "abc-123"})
    assert first.status_code == 202 and again.status_code == 200
    assert first.get_json()["id"] == again.get_json()["id"]
    other = client.post("/v1/jobs", json=long_job(600), headers={"Idempotency-Key": "abc-123"})
    assert other.status_code == 409 and other.mimetype == "application/problem+json"
    assert len(client.get("/v1/jobs").get_json()["jobs"]) == 1


def test_a_diverging_job_fails_with_the_example_count(own_service):
    svc = own_service
    svc.start_worker("only")
    client = api(svc)
    job = client.post("/v1/jobs", json=long_job(20_000, trainer={"method": "sgd", "learning_rate": 1e6,
                                                                  "batch_size": 20})).get_json()
    job = wait_status(client, job["id"], ("failed", "succeeded"), timeout=60)
    assert job["status"] == "failed" and job["error"]["type"] == "diverged"
    assert 0 < job["error"]["examples"] < 20_000


def test_a_job_whose_task_was_never_published_is_republished(own_service):
    """The API stored the job but died before publishing its task: the reaper sends it again."""
    svc = own_service
    svc.env["CONVTRAIN_REPUBLISH_SECONDS"] = "1"
    store = JobStore.from_url(svc.url)
    from service.spec import schemas

    request, network = schemas.load_job_request(long_job(500), svc.config)
    job = store.create(request, network.as_dict(), queue="auto")  # and no send_task
    svc.start_worker("late")
    client = api(svc)
    assert wait_status(client, job["id"], ("succeeded", "failed"), timeout=60)["status"] == "succeeded"
