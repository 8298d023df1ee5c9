"""Fixtures of the end-to-end tests that run `convtrain serve` itself."""

from __future__ import annotations

import pytest

from tests.e2e.test_cli import Serve


@pytest.fixture
def serves():
    """`convtrain serve` processes a test starts; each is killed at the end, however the test ended."""
    started: list[Serve] = []
    yield started
    for s in started:
        s.kill()
