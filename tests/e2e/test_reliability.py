"""Faults with real processes: killed workers, SIGTERM, a restarted redis-server, cancel, pause, live changes.

Each test runs its own redis-server and workers (the `own_service` fixture), with a 3 s lease, 0.5 s
heartbeats, reaper sweeps and checkpoints (tests/conftest.py FAST). The tests prove outcomes (where a job
resumed, what it trained, who moved it); how long recovery takes is measured by bench/recovery.py.
Every wait is for an observable condition; its timeout only detects a hang.
"""

from __future__ import annotations

import io
import signal

import pytest
import torch

from service.api import create_app
from service.store.jobs import JobStore
from tests.conftest import example, wait_for, wait_status

pytestmark = pytest.mark.e2e
# Metric points are placed by examples, every 100 for these budgets (worker/trainer.py): two consecutive points
# of one attempt further apart than this mean examples counted that were never trained.
MAX_STEP = 2000
SAME_RUN = ("class_loss", "train_acc", "val_acc", "l2_loss")  # what a point or result of the same run repeats


def long_job(examples: int = 40_000, **changes) -> dict:
    return example("net1-default.json", budget={"examples": examples}, seed=1, **changes)


def api(svc):
    return create_app(svc.config, svc.url).test_client()


def checkpointed(svc, job_id: str) -> bool:
    return bool(JobStore.from_url(svc.url).checkpoint_name(job_id))


def running_on(client, job_id: str, worker: str):
    job = client.get(f"/v1/jobs/{job_id}").get_json()
    return job if job["status"] == "running" and job["worker"] == worker else None


def timeline(client, job_id: str) -> list[dict]:
    return client.get(f"/v1/jobs/{job_id}/metrics?limit=10000").get_json()["points"]


def events(client, job_id: str) -> list[dict]:
    return [p for p in timeline(client, job_id) if "event" in p]


def metric_points(client, job_id: str) -> list[dict]:
    return [p for p in timeline(client, job_id) if "event" not in p]


def assert_no_gap(client, job_id: str, budget: int) -> None:
    """The timeline covers the whole budget, and each attempt goes on exactly where the last checkpoint was.

    - `started` is at 0 examples;
    - every `resumed` is at the examples of the last `checkpoint` event before it, and above 0: behind it
      would be progress lost, ahead of it examples counted that were never trained;
    - within an attempt, points and checkpoints never go back (after a resume, not below the resume either),
      and two points are at most MAX_STEP examples apart;
    - the last point is at the budget.
    """
    position = None  # the examples of the attempt writing now; None before `started`
    checkpoint = None  # the examples of the last checkpoint event
    last = None
    for point in timeline(client, job_id):
        kind = point.get("event")
        if kind == "started":
            assert position is None and point["examples"] == 0, point
            position = 0
        elif kind == "resumed":
            assert checkpoint is not None and point["examples"] == checkpoint > 0, (point, checkpoint)
            position = point["examples"]
        elif kind == "checkpoint":
            assert position is not None and point["examples"] >= position, (point, position)
            position = checkpoint = point["examples"]
        elif kind is None:
            assert position is not None and position < point["examples"] <= position + MAX_STEP, (point, position)
            position = last = point["examples"]
    assert last == budget, (last, budget)


def last_checkpoint_event(client, job_id: str) -> dict | None:
    return next((e for e in reversed(events(client, job_id)) if e["event"] == "checkpoint"), None)


def freeze_at_a_checkpoint(svc, client, job_id: str, proc) -> int:
    """SIGSTOP `proc` (training `job_id`) at a moment when its last checkpoint event is the checkpoint the
    record names; return that checkpoint's examples.

    A worker points the record at a new checkpoint, then writes its event: one stopped between the two is
    let go (SIGCONT) to finish that checkpoint, and stopped again after the next event.
    """
    store = JobStore.from_url(svc.url)
    for _ in range(20):
        wait_for(lambda: last_checkpoint_event(client, job_id), what="a checkpoint event")
        proc.send_signal(signal.SIGSTOP)
        recorded = int(store.raw(job_id).get("checkpoint_examples") or 0)
        shown = last_checkpoint_event(client, job_id)["examples"]
        if recorded == shown > 0:
            return recorded
        seen = len(events(client, job_id))
        proc.send_signal(signal.SIGCONT)
        wait_for(lambda: len(events(client, job_id)) > seen, what="the worker's next event")
    raise AssertionError("never stopped the worker where its record and its checkpoint event agree")


def model_weights(client, job_id: str) -> dict:
    download = client.get(f"/v1/jobs/{job_id}/model")
    assert download.status_code == 200
    return torch.load(io.BytesIO(download.data), weights_only=True)["state_dict"]


class Recorded:
    """A test client that answers the metrics request with a given timeline (for assert_no_gap's own test)."""

    def __init__(self, points: list[dict]):
        self.points = [{"seq": i, **p} for i, p in enumerate(points, 1)]

    def get(self, url: str):
        return self

    def get_json(self) -> dict:
        return {"points": self.points}


def points(after: int, upto: int) -> list[dict]:
    """Metric points every 100 examples after `after`, up to `upto`."""
    return [{"examples": n} for n in range(after + 100, upto + 1, 100)]


def event(kind: str, examples: int) -> dict:
    return {"event": kind, "examples": examples}


# A first attempt that checkpointed at 300 and trained on to 500 before its worker was lost.
FIRST = [event("started", 0), *points(0, 300), event("checkpoint", 300), *points(300, 500)]
GAPS = {  # timelines assert_no_gap must refuse: each a way a recovery could lose or invent progress
    "a resume behind its checkpoint": FIRST + [event("resumed", 200), *points(200, 1000)],
    "a resume ahead of its checkpoint": FIRST + [event("resumed", 400), *points(400, 1000)],
    "a resume at 0": [event("started", 0), event("checkpoint", 0), *points(0, 200), event("resumed", 0),
                      *points(0, 1000)],
    "a resume with no checkpoint": [event("started", 0), *points(0, 500), event("resumed", 300), *points(300, 1000)],
    "a point behind the one before": FIRST + [{"examples": 400}, *points(500, 1000)],
    "a jump forward": FIRST + [{"examples": 500 + MAX_STEP + 100}],
    "a run short of its budget": FIRST[:-1],
}


def test_assert_no_gap_passes_a_clean_resume_and_refuses_each_gap():
    assert_no_gap(Recorded(FIRST + [event("resumed", 300), *points(300, 1000)]), "j", 1000)
    for name, timeline_points in GAPS.items():
        with pytest.raises(AssertionError):
            assert_no_gap(Recorded(timeline_points), "j", 1000)
            pytest.fail(f"assert_no_gap passed {name}")


def test_sigkill_of_a_training_worker_is_recovered_from_the_checkpoint(own_service):
    svc = own_service
    victim = svc.start_worker("victim")
    client = api(svc)
    job = client.post("/v1/jobs", json=long_job()).get_json()
    wait_for(lambda: running_on(client, job["id"], "victim"), what="job running on the victim")
    checkpoint = freeze_at_a_checkpoint(svc, client, job["id"], victim)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    svc.start_worker("rescuer")
    wait_for(lambda: running_on(client, job["id"], "rescuer"), timeout=120, what="job running on the rescuer")

    job = wait_status(client, job["id"], ("succeeded", "failed"), timeout=300)
    assert job["status"] == "succeeded", job["error"]
    assert job["progress"]["examples_seen"] == 40_000 and job["result"]["examples_seen"] == 40_000
    assert job["attempts"] == 2 and job["worker"] == "rescuer"
    timeline_events = events(client, job["id"])
    kinds = [e["event"] for e in timeline_events]
    assert kinds[0] == "started" and kinds[-1] == "finished"
    assert [e.get("reason") for e in timeline_events if e["event"] == "requeued"] == ["worker lost"]
    resumed = [e for e in timeline_events if e["event"] == "resumed"]
    assert [e["examples"] for e in resumed] == [checkpoint] and checkpoint > 0  # the frozen worker's checkpoint
    assert_no_gap(client, job["id"], 40_000)

    # The engine resumes bit-identically (tests/worker/test_trainer.py): the same request and seed, never
    # interrupted, on the same kind of worker, must give exactly the same points, result and weights.
    reference = client.post("/v1/jobs", json=long_job(name="uninterrupted")).get_json()
    reference = wait_status(client, reference["id"], ("succeeded", "failed"), timeout=300)
    assert reference["status"] == "succeeded" and reference["attempts"] == 1, reference["error"]
    assert "resumed" not in [e["event"] for e in events(client, reference["id"])]
    for key in ("test_acc", "examples_seen", *SAME_RUN):
        assert job["result"][key] == reference["result"][key], key
    uninterrupted = {p["examples"]: p for p in metric_points(client, reference["id"])}
    after_resume = [p for p in metric_points(client, job["id"])
                    if p["seq"] > resumed[0]["seq"]]
    assert after_resume and after_resume[-1]["examples"] == 40_000
    for point in after_resume:
        assert {k: point[k] for k in SAME_RUN} == {k: uninterrupted[point["examples"]][k] for k in SAME_RUN}, point
    ours, theirs = model_weights(client, job["id"]), model_weights(client, reference["id"])
    assert ours.keys() == theirs.keys() and all(torch.equal(ours[k], theirs[k]) for k in ours)


HANDOVER_EXAMPLES = 120_000


def test_sigterm_hands_the_job_to_another_worker_at_once(own_service):
    svc = own_service
    # A lease far longer than the test: the job can only reach the other worker by the leaving worker
    # handing it over, never by its lease expiring and the reaper requeueing it.
    svc.env["CONVTRAIN_LEASE_SECONDS"] = "3600"
    leaving = svc.start_worker("leaving")
    client = api(svc)
    # Long enough to outlast starting the second worker (about 5 s here; 30,000 examples once ended first).
    job = client.post("/v1/jobs", json=long_job(HANDOVER_EXAMPLES)).get_json()
    wait_for(lambda: running_on(client, job["id"], "leaving"), what="job running")
    svc.start_worker("staying")
    leaving.send_signal(signal.SIGTERM)
    wait_for(lambda: running_on(client, job["id"], "staying"), timeout=120, what="job on the other worker")
    assert leaving.wait(120) == 0  # a clean exit; the timeout only detects a hang
    job = wait_status(client, job["id"], ("succeeded", "failed"), timeout=300)
    assert job["status"] == "succeeded" and job["progress"]["examples_seen"] == HANDOVER_EXAMPLES
    assert job["attempts"] == 2
    timeline_events = events(client, job["id"])
    # Handed over by the leaving worker itself, at the checkpoint it wrote on the way out.
    requeued = [e for e in timeline_events if e["event"] == "requeued"]
    assert [e.get("reason") for e in requeued] == ["worker shutting down"]
    resumed = [e for e in timeline_events if e["event"] == "resumed"]
    assert [e["examples"] for e in resumed] == [requeued[0]["examples"]] and resumed[0]["examples"] > 0
    assert_no_gap(client, job["id"], HANDOVER_EXAMPLES)


def test_redis_restart_while_training_loses_nothing(own_service):
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
    # Restart only once the worker has met the outage: a lease renewal of the training job has failed.
    log = svc.folder / "steady.log"
    wait_for(lambda: f"heartbeat for job {first['id']} failed" in log.read_text(errors="replace"),
             what="the worker's failed heartbeat while Redis is down")
    svc.redis.start()
    for job_id in [first["id"], *others]:
        assert client.get(f"/v1/jobs/{job_id}").status_code == 200
    first_done = wait_status(client, first["id"], ("succeeded", "failed"), timeout=300)
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
    job = wait_status(client, job["id"], ("cancelled",), timeout=120)
    # One worker, one slot, one queue served in order: once a job submitted now has run on it, no message
    # for the cancelled job was waiting before it, and none started it again.
    marker = client.post("/v1/jobs", json=long_job(300, name="after the cancel")).get_json()
    assert wait_status(client, marker["id"], ("succeeded", "failed"))["status"] == "succeeded"
    job = client.get(f"/v1/jobs/{job['id']}").get_json()
    assert job["status"] == "cancelled" and job["attempts"] == 1
    cancels = [e for e in events(client, job["id"]) if e["event"] == "cancelled"]
    assert [e.get("reason") for e in cancels] == ["cancelled while its worker was lost"]  # by the reaper
    assert [e["event"] for e in events(client, job["id"])].count("resumed") == 0


def test_too_many_lost_workers_fail_the_job(own_service):
    svc = own_service
    svc.env["CONVTRAIN_MAX_ATTEMPTS"] = "1"
    client, job = killed_while_training(svc)
    svc.start_worker("next")
    job = wait_status(client, job["id"], ("failed",), timeout=120)
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
    paused = wait_status(client, job["id"], ("paused",), timeout=120)  # hang detection only
    seen = paused["progress"]["examples_seen"]
    # The paused job gave its worker back: the only worker trains another job to the end meanwhile, and the
    # paused one has not moved.
    other = client.post("/v1/jobs", json=long_job(300, name="while paused")).get_json()
    other = wait_status(client, other["id"], ("succeeded", "failed"))
    assert other["status"] == "succeeded" and other["worker"] == "only"
    still = client.get(f"/v1/jobs/{job['id']}").get_json()
    assert still["status"] == "paused" and still["progress"]["examples_seen"] == seen
    assert client.post(f"/v1/jobs/{job['id']}/resume").status_code == 202
    done = wait_status(client, job["id"], ("succeeded", "failed"), timeout=300)
    assert done["status"] == "succeeded" and done["progress"]["examples_seen"] == 25_000
    timeline_events = events(client, job["id"])
    kinds = [e["event"] for e in timeline_events]
    assert kinds.index("trainer") < kinds.index("paused") < kinds.index("resumed")
    paused_event = next(e for e in timeline_events if e["event"] == "paused")
    resumed = [e for e in timeline_events if e["event"] == "resumed"]
    assert [e["examples"] for e in resumed] == [paused_event["examples"]]  # where it paused
    assert_no_gap(client, job["id"], 25_000)
    points = metric_points(client, job["id"])
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
    job = wait_status(client, job["id"], ("failed", "succeeded"), timeout=120)
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
    assert wait_status(client, job["id"], ("succeeded", "failed"), timeout=120)["status"] == "succeeded"
