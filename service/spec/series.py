"""Metric series for plotting: downsampling that keeps every spike visible."""

from __future__ import annotations

import math

# The numeric fields of a metric point that a chart plots; `examples` is the x axis.
PLOTTED = ("class_loss", "l2_loss", "train_acc", "val_acc", "examples_per_second", "forward_ms", "backward_ms",
           "learning_rate", "batch_size")


def downsample(points: list[dict], buckets: int) -> list[dict]:
    """Split metric points (events skipped) into at most `buckets` equal runs; keep min, max and last of each field."""
    metrics = [p for p in points if "event" not in p]
    if not metrics or buckets < 1:
        return []
    size = math.ceil(len(metrics) / buckets)
    out = []
    for start in range(0, len(metrics), size):
        run = metrics[start:start + size]
        last = run[-1]
        bucket = {"seq": last["seq"], "examples": last["examples"], "count": len(run), "min": {}, "max": {}, "last": {}}
        for name in PLOTTED:
            values = [p[name] for p in run if isinstance(p.get(name), (int, float))]
            if values:
                bucket["min"][name] = min(values)
                bucket["max"][name] = max(values)
            bucket["last"][name] = last.get(name)
        out.append(bucket)
    return out
