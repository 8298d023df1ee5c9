"""Hostile sweeps of about 1 MiB against the real API under gunicorn: refused with a 422 that names the field
at fault, while /healthz keeps answering (issue 13: a 909 KB grid of 40,000 paths once held a worker 32 s).

How fast the refusal is, is bench/sweep_planning.py's question; the timeouts here are generous and only
tell a hung API from a slow one."""

from __future__ import annotations

import json
import threading
import time

import pytest
import requests

from tests.conftest import example, gunicorn

pytestmark = pytest.mark.e2e

BASE = example("net1-default.json", budget={"examples": 600})
HANG = 30  # seconds: longer than any answer should take, by far


def hostile() -> dict[str, tuple[dict, str]]:
    """Sweep bodies near (and under) the 1 MiB body limit, and the field each one must be refused at."""
    return {
        "40,000 grid paths": ({"base": BASE, "grid": {f"trainer.k{i:05d}": [1] for i in range(40_000)}}, "grid"),
        "100,000 values at one path": ({"base": BASE, "grid": {"seed": list(range(10**7, 10**7 + 100_000))}},
                                       "grid.seed"),
        "10,000 variants": ({"base": BASE, "variants": [
            {"name": f"variant {i:05d}", "patch": {"trainer": {"batch_size": i % 100 + 1, "learning_rate": 0.01}}}
            for i in range(10_000)]}, "variants"),
        "a 50,000-key base in 500 jobs": ({"base": {**BASE, "trainer": {**BASE["trainer"], **{
            f"k{i:05d}": i for i in range(50_000)}}}, "grid": {"seed": list(range(100)),
                                                                "trainer.batch_size": [1, 2, 3, 4, 5]}}, "base"),
    }


@pytest.fixture(scope="module")
def api(service):
    """The API under gunicorn, as `convtrain serve` runs it (two gevent workers), on the shared service."""
    with gunicorn(service.env) as base:
        yield base


def send_while_polling_health(base: str, bodies: list[bytes]) -> tuple[list[requests.Response], int]:
    """POST each body to /v1/sweeps from its own thread, all at once, and poll /healthz until every answer
    has come (and at least a few times); every poll must be answered. Returns the answers and the polls."""
    answers: list = [None] * len(bodies)
    started = threading.Barrier(len(bodies) + 1)

    def send(i: int) -> None:
        started.wait()
        try:
            answers[i] = requests.post(f"{base}/v1/sweeps", data=bodies[i], timeout=HANG * 4,
                                       headers={"Content-Type": "application/json"})
        except requests.RequestException as exc:  # shown by the assertion below
            answers[i] = exc

    threads = [threading.Thread(target=send, args=(i,), daemon=True) for i in range(len(bodies))]
    for t in threads:
        t.start()
    started.wait()
    polls = 0
    while any(t.is_alive() for t in threads) or polls < 5:
        health = requests.get(f"{base}/healthz", timeout=HANG)  # a hang raises ReadTimeout: the test fails
        assert health.status_code == 200 and health.json() == {"status": "ok"}
        polls += 1
        time.sleep(0.05)  # the polling step: every pass asserts an answer, so wait_for (which only looks) cannot
    for t in threads:
        t.join(HANG)
    return answers, polls


def _check_refused(answer, path: str, name: str) -> None:
    assert isinstance(answer, requests.Response), f"{name}: {answer!r}"
    assert answer.status_code == 422, (name, answer.status_code, answer.text[:500])
    assert answer.headers["Content-Type"].startswith("application/problem+json")
    problem = answer.json()
    assert [e["path"] for e in problem["errors"]] == [path], (name, problem["errors"])
    assert "limit" in problem["errors"][0]["message"], problem["errors"][0]["message"]


@pytest.mark.parametrize("name", list(hostile()))
def test_a_hostile_sweep_is_refused_while_health_answers(api, name):
    body, path = hostile()[name]
    text = json.dumps(body).encode()
    assert 800_000 < len(text) < 1 << 20, "about 1 MiB, under the body limit, so that the sweep checks refuse it"
    [answer], _ = send_while_polling_health(api, [text])
    _check_refused(answer, path, name)


def test_two_hostile_sweeps_at_once_leave_health_answering(api):
    cases = hostile()
    chosen = ["40,000 grid paths", "a 50,000-key base in 500 jobs"]
    answers, _ = send_while_polling_health(api, [json.dumps(cases[n][0]).encode() for n in chosen])
    for name, answer in zip(chosen, answers):
        _check_refused(answer, cases[name][1], name)
    # The API is still whole: a small sweep within the limits is accepted afterwards.
    small = {"name": "after-the-storm", "base": BASE, "grid": {"trainer.batch_size": [10, 20]}}
    ok = requests.post(f"{api}/v1/sweeps", json=small, timeout=HANG)
    assert ok.status_code == 202, ok.text[:500]
    sweep = ok.json()
    assert requests.post(f"{api}/v1/sweeps/{sweep['id']}/cancel", timeout=HANG).status_code == 202
