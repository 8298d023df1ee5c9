"""What gunicorn answers itself, before Flask sees the request, is problem+json like every other error.

gunicorn runs exactly as `convtrain serve` runs it (service.cli.serve.gunicorn_args), on a real
redis-server with no worker: an over-long request line, an over-long header field, too many header
fields and a malformed request line get gunicorn's status with an application/problem+json body, its
limits unchanged, and the API stays healthy after.
"""

from __future__ import annotations

import json
import os
import socket

import pytest
import requests

from tests.conftest import gunicorn

pytestmark = pytest.mark.e2e
PROBLEM = "application/problem+json"


@pytest.fixture(scope="module", params=["gevent", "gthread"])
def api(request, redis_url, tmp_path_factory):
    """gunicorn with serve's arguments (and the gthread class that bench/api_latency.py compares)."""
    tmp_path = tmp_path_factory.mktemp(f"api-{request.param}")
    env = {**os.environ, "CONVTRAIN_REDIS_URL": redis_url, "CONVTRAIN_HOME": str(tmp_path / "home")}
    with gunicorn(env, tmp_path / "api.log", worker_class=request.param) as base:
        yield base


def assert_problem(response: requests.Response, statuses: tuple[int, ...]) -> dict:
    assert response.status_code in statuses, (response.status_code, response.text[:300])
    assert response.headers["Content-Type"] == PROBLEM, response.headers
    body = response.json()
    assert body["status"] == response.status_code
    assert body["type"] == "about:blank" and body["title"] and body["detail"]
    return body


def assert_healthy(base: str) -> None:
    r = requests.get(base + "/healthz", timeout=5)
    assert r.status_code == 200 and r.json() == {"status": "ok"}


def test_a_5000_character_job_id_is_a_414_problem(api):
    body = assert_problem(requests.get(f"{api}/v1/jobs/{'a' * 5000}", timeout=10), (414,))
    assert body["title"] == "URI Too Long" and "4094" in body["detail"]  # gunicorn's default limit, kept
    assert_healthy(api)


def test_a_10_kb_header_is_a_431_problem(api):
    r = requests.get(f"{api}/v1/jobs", headers={"X-Padding": "x" * 10 * 1024}, timeout=10)
    body = assert_problem(r, (431, 400))
    assert "header" in body["detail"]
    assert_healthy(api)


def test_too_many_headers_is_a_problem(api):
    r = requests.get(f"{api}/healthz", headers={f"X-H{i}": "1" for i in range(150)}, timeout=10)
    assert_problem(r, (431, 400))
    assert_healthy(api)


def test_a_malformed_request_line_is_a_400_problem(api):
    host, port = api.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1 extra\r\nHost: x\r\n\r\n")
        raw = b""
        while chunk := sock.recv(65536):
            raw += chunk
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    assert lines[0].startswith("HTTP/1.1 400 "), lines
    assert f"Content-Type: {PROBLEM}" in lines

    problem = json.loads(body)
    assert problem["status"] == 400 and problem["title"] == "Bad Request" and problem["detail"]
    assert_healthy(api)
