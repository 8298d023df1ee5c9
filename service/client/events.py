"""A job's Server-Sent Events, followed across dropped connections with `Last-Event-ID`.

The parsing follows the HTML standard's event-stream rules: lines end with CR, LF or CRLF, a blank line
dispatches, `:` lines are comments, the last `id` is what a reconnect sends. A half-received event at a
dropped connection is discarded, not dispatched (sseclient-py yields it as if whole, so a resume would
read half a JSON document); the reconnect asks for it again.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import requests

from service.client.errors import Unreachable
from service.client.session import Session

_EOL = re.compile(rb"\r\n|\r|\n")


@dataclass(frozen=True)
class Event:
    """One event: its kind (`metrics`, `status`, `trainer`, `checkpoint`, `snapshot`, `end`), its data as JSON,
    and its sequence number (None on `end`, whose data is the finished job)."""

    event: str
    data: Any
    id: int | None


def lines(chunks: Iterable[bytes]) -> Iterator[str]:
    """The complete lines of a byte stream; an unterminated last line is dropped."""
    buffer = b""
    for chunk in chunks:
        buffer += chunk
        while (match := _EOL.search(buffer)) and not (match.group() == b"\r" and match.end() == len(buffer)):
            yield buffer[:match.start()].decode("utf-8", errors="replace")
            buffer = buffer[match.end():]


class Parser:
    """Event-stream lines to events; `last_id` (of the last whole event) and `retry` (milliseconds) are what
    the stream last said."""

    def __init__(self, last_id: str | None = None):
        self.last_id = last_id
        self.retry: int | None = None

    def events(self, stream: Iterable[str]) -> Iterator[Event]:
        kind, data, frame_id = "", [], None
        for line in stream:
            if not line:
                if frame_id is not None:  # only a whole event moves the resume point
                    self.last_id = frame_id
                if data:
                    yield Event(kind or "message", json.loads("\n".join(data)),
                                int(frame_id) if frame_id and frame_id.isdigit() else None)
                kind, data, frame_id = "", [], None
                continue
            if line.startswith(":"):
                continue
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if name == "data":
                data.append(value)
            elif name == "event":
                kind = value
            elif name == "id" and "\0" not in value:
                frame_id = value
            elif name == "retry" and value.isdigit():
                self.retry = int(value)


def follow(session: Session, path: str, after: int | None = None) -> Iterator[Event]:
    """The events at `path` until `end`, reconnecting after a drop from the last id received, as often as the
    session retries before an event comes again (then Unreachable)."""
    parser = Parser(str(after) if after else None)
    drops = 0
    while True:
        headers = {"Accept": "text/event-stream"}
        if parser.last_id is not None:
            headers["Last-Event-ID"] = parser.last_id
        response = session.request("GET", path, headers=headers, stream=True)
        try:
            for event in parser.events(lines(response.iter_content(chunk_size=None))):
                drops = 0
                yield event
                if event.event == "end":
                    return
        except (requests.exceptions.ConnectionError, requests.exceptions.ChunkedEncodingError,
                requests.exceptions.Timeout):
            pass  # dropped: reconnect below
        finally:
            response.close()
        drops += 1
        if drops > session.retries:
            raise Unreachable(f"the event stream at {session.base}{path} dropped {drops} times without an event")
        time.sleep((1000 if parser.retry is None else parser.retry) / 1000)  # as the stream asked
