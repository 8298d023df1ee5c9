"""Small text helpers shared by the command-line tools."""

from __future__ import annotations

import math


def duration(seconds: float | None) -> str:
    """A short human duration: 42s, 3m07s, 2h05m; ? when unknown."""
    if seconds is None or not math.isfinite(seconds):
        return "?"
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds // 60 % 60:02d}m"
