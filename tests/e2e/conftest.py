"""Fixtures of the end-to-end tests that run `convtrain serve` itself."""

from __future__ import annotations

import threading

import pytest

from service.cli.embedded import free_port
from tests.e2e.test_cli import Serve


@pytest.fixture
def http_api(app):
    """The `app` fixture served over real HTTP on a free port, for the command line client."""
    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", free_port(), app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(10)


@pytest.fixture
def serves():
    """`convtrain serve` processes a test starts; each is killed at the end, however the test ended."""
    started: list[Serve] = []
    yield started
    for s in started:
        s.kill()
