"""A real HTTP server on a free port that answers from a script: a 503 then a 200, a dropped connection, an
event stream cut off halfway. What the client must do with such answers needs no convtrain service."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest


@dataclass
class Seen:
    """One request the server received."""

    method: str
    path: str
    headers: dict
    body: bytes


class Script:
    """What the server answers, in order (one callable per request, given the handler), and what it saw."""

    def __init__(self, url: str):
        self.url = url
        self.answers: list = []
        self.seen: list[Seen] = []


def reply(status: int, body=b"", headers: dict | None = None, media: str = "application/json"):
    """An answer: `body` (JSON when not bytes) with `status` and `headers`."""
    data = body if isinstance(body, bytes) else json.dumps(body).encode()

    def answer(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(status)
        handler.send_header("Content-Type", media)
        handler.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            handler.send_header(name, value)
        handler.end_headers()
        handler.wfile.write(data)

    return answer


def drop(handler: BaseHTTPRequestHandler) -> None:
    """No answer: the connection closes after the request was read."""
    handler.close_connection = True


def stream(frames: list[bytes], cut: bytes = b"", chunked: bool = False):
    """An event stream that sends `frames`, then the first bytes of one more (`cut`), and closes the
    connection: with `chunked`, each frame in its own chunk and `cut` in a chunk that never completes (a
    server dying mid-write), else as a body delimited by the close."""

    def answer(handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Type", "text/event-stream")
        if chunked:
            handler.send_header("Transfer-Encoding", "chunked")
        handler.end_headers()
        for data in frames:
            handler.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n" if chunked else data)
            handler.wfile.flush()
        handler.wfile.write(f"{len(cut) + 100:x}\r\n".encode() + cut if chunked else cut)
        handler.wfile.flush()
        handler.close_connection = True

    return answer


@pytest.fixture
def server():
    """A Script served over real HTTP/1.1 on 127.0.0.1."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _answer(self):
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            script.seen.append(Seen(self.command, self.path, dict(self.headers), body))
            script.answers.pop(0)(self)

        do_GET = do_POST = do_PATCH = do_DELETE = _answer

        def log_message(self, *args):  # the test's output stays the test's
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    script = Script(f"http://127.0.0.1:{httpd.server_port}")
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield script
    httpd.shutdown()
    httpd.server_close()
    thread.join(10)
