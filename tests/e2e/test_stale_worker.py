"""A worker that lost its lease changes nothing a reader sees: real workers stopped with SIGSTOP while
another finishes their job, then let go with SIGCONT (issue 13)."""

from __future__ import annotations

import hashlib
import os
import signal

import pytest

from service.store.jobs import JobStore
from tests.conftest import wait_status
from tests.e2e.test_reliability import api, checkpointed, long_job, wait_for

pytestmark = pytest.mark.e2e


def sha(svc, job_id: str, name: str) -> str:
    return hashlib.sha256((svc.config.home / "artifacts" / job_id / name).read_bytes()).hexdigest()


def attempt_folders(svc, job_id: str) -> set[str]:
    folder = svc.config.home / "artifacts" / job_id / "attempts"
    return {p.name for p in folder.iterdir()} if folder.exists() else set()


def stop_the_worker_of(svc, client, job_id: str, when) -> tuple:
    """SIGSTOP the worker training `job_id` as soon as `when(job)` holds; return (its process, its name)."""
    procs = {f"w{i}": svc.workers[i] for i in range(len(svc.workers))}
    job = wait_for(lambda: (lambda j: j if j["status"] == "running" and when(j) else None)(
        client.get(f"/v1/jobs/{job_id}").get_json()), timeout=120, what="the moment to stop the worker")
    proc = procs[job["worker"]]
    os.kill(proc.pid, signal.SIGSTOP)
    return proc, job["worker"]


@pytest.fixture
def two_workers(own_service):
    for name in ("w0", "w1"):
        own_service.start_worker(name)
    return own_service


def test_a_stale_worker_that_exports_after_another_finished_leaves_the_model_alone(two_workers):
    svc, client = two_workers, api(two_workers)
    job_id = client.post("/v1/jobs", json=long_job(12_000)).get_json()["id"]
    wait_for(lambda: checkpointed(svc, job_id), what="a checkpoint")
    # Its last batch is trained: the worker evaluates and exports now.
    stale, name = stop_the_worker_of(svc, client, job_id, lambda j: j["progress"]["examples_seen"] >= 12_000)
    try:
        job = wait_status(client, job_id, ("succeeded", "failed"), timeout=180)
        assert job["status"] == "succeeded" and job["worker"] != name and job["attempts"] == 2
    finally:
        os.kill(stale.pid, signal.SIGCONT)
    store = JobStore.from_url(svc.url)
    winner = job["model"]["file"].split("/")[1]
    # The stale worker goes on, writes its own files, is refused at finish and removes them.
    wait_for(lambda: attempt_folders(svc, job_id) == {winner}, what="the stale worker's files gone")
    assert store.status(job_id) == "succeeded"
    card = client.get(f"/v1/jobs/{job_id}/model/card").get_json()
    job = client.get(f"/v1/jobs/{job_id}").get_json()
    assert sha(svc, job_id, job["model"]["file"]) == job["model"]["sha256"]
    for fmt, info in job["model"]["exports"].items():
        assert sha(svc, job_id, info["file"]) == info["sha256"], fmt
    assert card["formats"]["pt"]["sha256"] == job["model"]["sha256"]
    child = client.post("/v1/jobs", json={"init": {"job": job_id}, "budget": {"examples": 200}}).get_json()
    assert wait_status(client, child["id"], ("succeeded", "failed"))["status"] == "succeeded"


def test_a_stale_worker_that_checkpoints_keeps_the_live_checkpoint(two_workers):
    svc, client = two_workers, api(two_workers)
    store = JobStore.from_url(svc.url)
    job_id = client.post("/v1/jobs", json=long_job(40_000)).get_json()["id"]
    wait_for(lambda: checkpointed(svc, job_id), what="a checkpoint")
    stale, name = stop_the_worker_of(svc, client, job_id, lambda j: True)
    try:
        # The other worker resumes from the stale one's checkpoint; the stale one is let go before the new
        # owner has checkpointed, so the record still points at the stale worker's file.
        wait_for(lambda: (lambda j: j["status"] == "running" and j["worker"] not in (None, name))(
            client.get(f"/v1/jobs/{job_id}").get_json()), timeout=60, what="the job resumed elsewhere")
    finally:
        os.kill(stale.pid, signal.SIGCONT)
    # The stale worker checkpoints once more before it notices its lost lease: a file of its own, which it
    # removes when its fenced update is refused; the file the record points to is never touched. Kill the
    # new owner now: the next attempt (on the once-stale worker) must find the checkpoint the record names.
    owner = client.get(f"/v1/jobs/{job_id}").get_json()["worker"]
    wait_for(lambda: (svc.config.home / "artifacts" / job_id / store.checkpoint_name(job_id)).exists(),
             what="the checkpoint the record names is there")
    os.kill({f"w{i}": p for i, p in enumerate(svc.workers)}[owner].pid, signal.SIGKILL)
    job = wait_status(client, job_id, ("succeeded", "failed"), timeout=240)
    assert job["status"] == "succeeded", job["error"]
    assert job["progress"]["examples_seen"] == 40_000
