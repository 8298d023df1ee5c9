"""Text for people: durations, numbers, progress bars and progress lines, shared by the command line, the
worker's `train` command and the sweep reports."""

from __future__ import annotations

import math
import re


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


BAR_WIDTH = 20


def number(value, digits: int = 3) -> str:
    """A metric as a table shows it: floats to `digits` places, - when unknown."""
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def bar(fraction: float | None) -> str:
    """`[#####...............]`: a progress bar of BAR_WIDTH cells."""
    filled = int(min(1.0, max(0.0, fraction or 0.0)) * BAR_WIDTH)
    return f"[{'#' * filled}{'.' * (BAR_WIDTH - filled)}]"


def examples_count(seen: int, total: int | None, unit: str = " examples") -> str:
    """`12,300/30,000 examples`, or `12,300 examples` without a known total."""
    return (f"{seen:,}/{total:,}" if total else f"{seen:,}") + unit


def metric_words(metrics: dict) -> list[str]:
    """`loss 0.231`, `acc 0.93` and, once there is one, `val 0.95`: what a progress line says of training."""
    words = [f"loss {number(metrics.get('class_loss'))}", f"acc {number(metrics.get('train_acc'), 2)}"]
    if metrics.get("val_acc") is not None:
        words.append(f"val {number(metrics.get('val_acc'), 2)}")
    return words


def file_stem(name: str | None, fallback: str) -> str:
    """`name` as a safe file-name stem (letters, digits, '.', '_', '-'; other runs become '-'), else `fallback`."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name or fallback).strip("-") or fallback
