"""Small text helpers shared by the command-line tools."""

from __future__ import annotations

import math


def duration(seconds: float | None, *, words: bool = False) -> str:
    """A short human duration: 42s, 3m07s, 2h05m (with `words`: 42 s, 3 min 07 s, 2 h 05 min); ? when unknown."""
    if seconds is None or not math.isfinite(seconds):
        return "?"
    s_, m_, h_ = (" s", " min ", " h ") if words else ("s", "m", "h")
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds}{s_}"
    if seconds < 3600:
        return f"{seconds // 60}{m_}{seconds % 60:02d}{s_}"
    return f"{seconds // 3600}{h_}{seconds // 60 % 60:02d}{m_.rstrip()}"
