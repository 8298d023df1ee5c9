"""Server-Sent Events: the event-stream rules, and resuming with Last-Event-ID after a dropped connection."""

from __future__ import annotations

import json

import pytest

from service.client import Event, Unreachable
from service.client.events import Parser, follow, lines
from service.client.session import Session
from tests.service.client.conftest import stream


@pytest.mark.parametrize(("chunks", "expected"), [
    ([b"a\nb\r\nc\rd\n"], ["a", "b", "c", "d"]),
    ([b"a\r", b"\nb\n"], ["a", "b"]),  # a CRLF split across two chunks is one line end
    ([b"a\r", b"b\n"], ["a", "b"]),
    ([b"\n\n"], ["", ""]),
    ([b"whole\npart"], ["whole"]),  # an unterminated last line is incomplete: dropped
    ([b"caf\xc3", b"\xa9\n"], ["caf\u00e9"]),  # UTF-8 split across chunks
])
def test_lines(chunks, expected):
    assert list(lines(chunks)) == expected


def test_the_parser_follows_the_event_stream_rules():
    parser = Parser()
    text = ("retry: 1500\n\n"  # no data: nothing dispatched
            ": keep-alive\n\n"
            "id: 7\nevent: metrics\ndata: {\"seq\": 7,\ndata:  \"x\": 1}\n\n"  # data lines join with a newline
            "event: end\ndata:{\"status\": \"succeeded\"}\n\n"
            "data: [1]\nunknown: field\n\n"
            "id: 9\nevent: metrics\ndata: {\"seq\": 9}\n")  # never finished with a blank line
    events = list(parser.events(text.split("\n")[:-1]))
    assert events == [Event("metrics", {"seq": 7, "x": 1}, 7), Event("end", {"status": "succeeded"}, None),
                      Event("message", [1], None)]
    assert parser.retry == 1500 and parser.last_id == "7", "an unfinished event does not move the resume point"


def frame(seq: int, kind: str = "metrics") -> bytes:
    return f"id: {seq}\nevent: {kind}\ndata: {json.dumps({'seq': seq})}\n\n".encode()


END = b"event: end\ndata: " + json.dumps({"id": "j1", "status": "succeeded"}).encode() + b"\n\n"


@pytest.mark.parametrize("chunked", [False, True], ids=["close-delimited", "chunked"])
def test_a_dropped_stream_resumes_after_the_last_event_received(server, chunked):
    half = b'id: 3\nevent: metrics\ndata: {"se'  # the connection dies in the middle of event 3
    server.answers = [stream([b"retry: 0\n\n", frame(1), frame(2)], half, chunked),
                      stream([b"retry: 0\n\n", frame(3), b": keep-alive\n\n"], chunked=chunked),  # no `end`
                      stream([b"retry: 0\n\n", frame(4, "status"), END])]
    events = list(follow(Session(server.url), "/v1/jobs/j1/events"))
    assert [(e.event, e.id) for e in events] == [("metrics", 1), ("metrics", 2), ("metrics", 3), ("status", 4),
                                                ("end", None)]
    assert events[-1].data == {"id": "j1", "status": "succeeded"}
    assert [s.headers.get("Last-Event-ID") for s in server.seen] == [None, "2", "3"]
    assert all(s.headers["Accept"] == "text/event-stream" for s in server.seen)


def test_following_from_a_cursor_sends_it_as_last_event_id(server):
    server.answers = [stream([frame(6), END])]
    assert [e.id for e in follow(Session(server.url), "/v1/jobs/j1/events", after=5)] == [6, None]
    assert server.seen[0].headers["Last-Event-ID"] == "5"


def test_a_stream_that_keeps_dropping_without_news_gives_up(server):
    server.answers = [stream([b"retry: 0\n\n", frame(1)])] + [stream([b"retry: 0\n\n: nothing\n\n"])] * 2
    received = []
    with pytest.raises(Unreachable, match="dropped 3 times without an event"):
        for event in follow(Session(server.url, retries=2), "/v1/jobs/j1/events"):
            received.append(event.id)
    assert received == [1] and len(server.seen) == 3
