"""Ids of jobs and sweeps: sortable by creation time, unguessable."""

from __future__ import annotations

import re
import secrets
import time

# What new_id() makes, with room for older and longer ids: anything else is no job or sweep.
ID = re.compile(r"[0-9a-f]{8,40}")


def new_id() -> str:
    """A fresh id: milliseconds since the epoch in hex, then 48 random bits."""
    return f"{int(time.time() * 1000):x}{secrets.token_hex(6)}"
