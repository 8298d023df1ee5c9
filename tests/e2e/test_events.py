"""Server-Sent Events and plotting series, with a real worker training; many streams through gunicorn."""

from __future__ import annotations

import json
import threading

import pytest
import requests

from tests.conftest import example, gunicorn, wait_status

pytestmark = pytest.mark.e2e


def parse(lines):
    """SSE frames from an iterator of text lines: yields dicts with id, event, data."""
    frame: dict = {}
    for line in lines:
        if line == "":
            if "event" in frame or "data" in frame:
                yield frame
            frame = {}
        elif line.startswith(":") or line.startswith("retry:"):
            continue
        else:
            name, _, value = line.partition(": ")
            frame[name] = json.loads(value) if name == "data" else value


def lines_of(response):
    buffer = ""
    for chunk in response.response:
        buffer += chunk.decode() if isinstance(chunk, bytes) else chunk
        while "\n" in buffer:
            line, buffer = buffer.split("\n", 1)
            yield line


def test_reconnect_with_last_event_id_has_no_duplicate_and_no_gap(client):
    job = client.post("/v1/jobs", json=example("net1-default.json", budget={"examples": 6000}, seed=4)).get_json()
    first = client.get(f"/v1/jobs/{job['id']}/events", buffered=False)
    assert first.mimetype == "text/event-stream"
    received = []
    for frame in parse(lines_of(first)):
        received.append(frame)
        if len([f for f in received if f["event"] == "metrics"]) == 5:
            break
    first.close()  # the client goes away mid-training
    last_id = received[-1]["id"]
    second = client.get(f"/v1/jobs/{job['id']}/events", headers={"Last-Event-ID": last_id}, buffered=False)
    rest = list(parse(lines_of(second)))
    assert rest[-1]["event"] == "end" and rest[-1]["data"]["status"] == "succeeded"
    frames = received + rest[:-1]
    seqs = [int(f["id"]) for f in frames]
    assert seqs == list(range(1, len(seqs) + 1))  # no duplicate, no gap
    assert [f["data"]["seq"] for f in frames] == seqs
    kinds = {f["event"] for f in frames}
    assert {"status", "metrics"} <= kinds
    assert frames[0]["data"]["event"] == "started" and frames[0]["data"]["status"] == "running"
    assert frames[-1]["event"] == "status" and frames[-1]["data"]["status"] == "succeeded"
    everything = client.get(f"/v1/jobs/{job['id']}/metrics?limit=10000").get_json()["points"]
    assert [p["seq"] for p in everything] == seqs


def test_events_of_a_finished_job_replay_and_end(client):
    job = client.post("/v1/jobs", json=example("net1-default.json", budget={"examples": 300})).get_json()
    wait_status(client, job["id"], ("succeeded",))
    frames = list(parse(lines_of(client.get(f"/v1/jobs/{job['id']}/events", buffered=False))))
    assert frames[-1]["event"] == "end" and frames[0]["id"] == "1"
    after = list(parse(lines_of(client.get(f"/v1/jobs/{job['id']}/events?after={frames[-2]['id']}", buffered=False))))
    assert [f["event"] for f in after] == ["end"]
    assert client.get(f"/v1/jobs/{job['id']}/events", headers={"Last-Event-ID": "x1"}).status_code == 400
    assert client.get("/v1/jobs/0123456789abcdef/events").status_code == 404


def test_a_cancelled_queued_job_streams_its_cancel(own_service):
    from service.api import create_app

    client = create_app(own_service.config, own_service.url).test_client()
    job = client.post("/v1/jobs", json=example("net1-default.json", budget={"examples": 300})).get_json()
    client.post(f"/v1/jobs/{job['id']}/cancel")
    frames = list(parse(lines_of(client.get(f"/v1/jobs/{job['id']}/events", buffered=False))))
    assert [f["event"] for f in frames] == ["status", "end"]
    assert frames[0]["data"]["status"] == "cancelled"


def test_downsampled_history_keeps_min_max_last(client):
    job = client.post("/v1/jobs", json=example("net1-default.json", budget={"examples": 4000})).get_json()
    wait_status(client, job["id"], ("succeeded",))
    full = [p for p in client.get(f"/v1/jobs/{job['id']}/metrics?limit=10000").get_json()["points"] if "event" not in p]
    body = client.get(f"/v1/jobs/{job['id']}/metrics?points=5").get_json()
    buckets = body["buckets"]
    assert 1 <= len(buckets) <= 5 and sum(b["count"] for b in buckets) == len(full)
    assert buckets[-1]["examples"] == 4000
    assert max(b["max"]["class_loss"] for b in buckets) == max(p["class_loss"] for p in full)
    assert min(b["min"]["class_loss"] for b in buckets) == min(p["class_loss"] for p in full)
    assert client.get(f"/v1/jobs/{job['id']}/metrics?points=0").status_code == 400


def test_many_streams_through_gunicorn_do_not_starve_the_api(service):
    with gunicorn(service.env, timeout=120) as base:  # the deadline tells a hang, not a speed
        job = requests.post(f"{base}/v1/jobs", json=example("net1-default.json", budget={"examples": 15000})).json()
        streams = 80
        opened, ended = threading.Semaphore(0), []

        def follow():
            with requests.get(f"{base}/v1/jobs/{job['id']}/events", stream=True, timeout=120) as r:
                lines = r.iter_lines(decode_unicode=True)
                first = next(lines)  # the stream is open and served: its retry line came
                opened.release()
                frames = list(parse([first, *lines]))
                ended.append(frames[-1]["event"] == "end")

        threads = [threading.Thread(target=follow, daemon=True) for _ in range(streams)]
        for t in threads:
            t.start()
        for _ in range(streams):
            assert opened.acquire(timeout=60), "a stream was not served"
        # Every stream is open: the API must still answer (how fast is bench/api_latency.py's question; the
        # timeout here only tells a starved API from a slow one).
        for _ in range(20):
            assert requests.get(f"{base}/v1/jobs/{job['id']}", timeout=30).ok
        for t in threads:
            t.join(120)
        assert ended.count(True) == streams
