"""The client's HTTP against a scripted server: retries after 503 + Retry-After and dropped connections,
problem+json as ApiError, the token, and listings followed by their cursor."""

from __future__ import annotations

import email.utils
import time

import pytest

from service.cli.embedded import free_port
from service.client import ApiError, Client, Unreachable
from service.client.session import Session, retry_delay
from tests.service.client.conftest import drop, reply

PROBLEM = "application/problem+json"
UNAVAILABLE = {"type": "about:blank", "title": "Service Unavailable", "status": 503,
               "detail": "the job store (Redis) is unreachable; try again shortly"}


@pytest.mark.parametrize(("attempt", "retry_after", "expected"), [
    (0, None, 0.5),  # no Retry-After: the backoff, doubling
    (1, None, 1.0),
    (3, None, 4.0),
    (0, "2", 2.0),  # Retry-After in seconds wins over the backoff
    (2, "0", 0.0),
    (0, "120", 30.0),  # never longer than the cap
    (6, None, 30.0),
    (0, "soon", 0.5),  # neither seconds nor a date: the backoff
])
def test_retry_delay(attempt, retry_after, expected):
    assert retry_delay(attempt, retry_after, backoff=0.5, cap=30) == expected


def test_retry_delay_reads_an_http_date():
    in_ten = email.utils.formatdate(time.time() + 10, usegmt=True)
    assert 8 <= retry_delay(0, in_ten, backoff=0.5, cap=30) <= 10
    past = email.utils.formatdate(time.time() - 10, usegmt=True)
    assert retry_delay(0, past, backoff=0.5, cap=30) == 0


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_a_503_with_retry_after_is_sent_again(server, method):
    # A 503 means the service did nothing, so even a POST without an idempotency key is retried.
    server.answers = [reply(503, UNAVAILABLE, {"Retry-After": "0"}, PROBLEM),
                      reply(503, UNAVAILABLE, {"Retry-After": "0"}, PROBLEM), reply(200, {"ok": True})]
    assert Session(server.url).json(method, "/v1/thing", json={"a": 1}) == {"ok": True}
    assert [(s.method, s.path) for s in server.seen] == [(method, "/v1/thing")] * 3
    assert all(s.body == b'{"a": 1}' for s in server.seen)


def test_a_503_after_every_retry_is_the_problem(server):
    server.answers = [reply(503, UNAVAILABLE, {"Retry-After": "0"}, PROBLEM)] * 3
    with pytest.raises(ApiError) as caught:
        Session(server.url, retries=2).json("GET", "/v1/jobs")
    assert caught.value.status == 503 and caught.value.title == "Service Unavailable"
    assert caught.value.detail == UNAVAILABLE["detail"] and caught.value.body["status"] == 503
    assert len(server.seen) == 3


def test_a_problem_carries_status_title_detail_and_field_errors(server):
    problem = {"type": "about:blank", "title": "Invalid job request", "status": 422,
               "detail": "1 problem(s) found", "errors": [{"path": "budget.examples", "message": "must be at least 1"}],
               "instance": "/v1/jobs"}
    server.answers = [reply(422, problem, media=PROBLEM)]
    with pytest.raises(ApiError) as caught:
        Session(server.url).json("POST", "/v1/jobs", json={})
    error = caught.value
    assert (error.status, error.title, error.detail) == (422, "Invalid job request", "1 problem(s) found")
    assert error.errors == [{"path": "budget.examples", "message": "must be at least 1"}]
    assert error.body == problem and str(error) == "Invalid job request: 1 problem(s) found"
    assert len(server.seen) == 1, "a 4xx is not retried"


def test_an_error_that_is_not_json_keeps_its_status_and_first_line(server):
    server.answers = [reply(502, b"upstream went away\nmore", media="text/plain")]
    with pytest.raises(ApiError) as caught:
        Session(server.url).json("GET", "/v1/jobs")
    assert caught.value.status == 502 and caught.value.title == "502 Bad Gateway"
    assert caught.value.detail == "upstream went away" and caught.value.errors == []


def test_a_success_that_is_not_json_is_an_api_error(server):
    server.answers = [reply(200, b"<html>", media="text/html")]
    with pytest.raises(ApiError, match="not JSON"):
        Session(server.url).json("GET", "/v1/jobs")


def test_a_dropped_connection_is_retried_only_where_that_is_safe(server):
    server.answers = [drop, reply(200, {"ok": 1})]
    assert Session(server.url, backoff=0).json("GET", "/v1/jobs") == {"ok": 1}
    assert len(server.seen) == 2

    # A POST the service may have acted on is not sent twice...
    server.seen.clear()
    server.answers = [drop]
    with pytest.raises(Unreachable, match=f"cannot connect to the convtrain service at {server.url}"):
        Session(server.url, backoff=0).json("POST", "/v1/sweeps", json={})
    assert len(server.seen) == 1
    # ...unless its Idempotency-Key makes a repeat harmless.
    server.seen.clear()
    server.answers = [drop, reply(202, {"id": "j1"})]
    assert Session(server.url, backoff=0).json("POST", "/v1/jobs", json={}, headers={"Idempotency-Key": "k"}) == {"id": "j1"}
    assert [s.headers["Idempotency-Key"] for s in server.seen] == ["k", "k"]


def test_submit_sends_a_fresh_idempotency_key_each_time_unless_given(server):
    server.answers = [reply(202, {"id": "a", "status": "queued"}), reply(202, {"id": "b", "status": "queued"}),
                      reply(200, {"id": "a", "status": "queued"})]
    client = Client(server.url)
    client.submit({"layers": []}, budget={"examples": 10})
    client.submit({"layers": []}, budget={"examples": 10})
    client.submit({"layers": []}, idempotency_key="mine", budget={"examples": 10})
    keys = [s.headers["Idempotency-Key"] for s in server.seen]
    assert keys[0] != keys[1] and len(keys[0]) >= 16 and keys[2] == "mine"


def test_nothing_listening_is_unreachable_naming_the_url():
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(Unreachable) as caught:
        Session(url, retries=1, backoff=0).json("GET", "/v1/jobs")
    assert url in str(caught.value) and "Connection refused" in str(caught.value)
    assert caught.value.status is None and isinstance(caught.value, ApiError)


def test_the_token_and_the_url_come_from_the_arguments_or_the_environment(server, monkeypatch):
    server.answers = [reply(200, {"principal": "alice"}), reply(200, {"principal": "bob"})]
    Session(server.url, "secret").json("GET", "/v1/whoami")
    monkeypatch.setenv("CONVTRAIN_URL", server.url + "/")
    monkeypatch.setenv("CONVTRAIN_TOKEN", "from-env")
    session = Session()
    assert session.base == server.url
    session.json("GET", "/v1/whoami")
    assert [s.headers["Authorization"] for s in server.seen] == ["Bearer secret", "Bearer from-env"]


def test_a_listing_follows_its_cursor_to_the_last_page(server):
    server.answers = [reply(200, {"jobs": [{"id": "c"}, {"id": "b"}], "next": "17.5"}),
                      reply(200, {"jobs": [{"id": "a"}], "next": None})]
    jobs = list(Client(server.url).jobs(status="succeeded", page_size=2))
    assert [job.id for job in jobs] == ["c", "b", "a"]
    assert [s.path for s in server.seen] == ["/v1/jobs?status=succeeded&limit=2",
                                            "/v1/jobs?status=succeeded&limit=2&cursor=17.5"]
