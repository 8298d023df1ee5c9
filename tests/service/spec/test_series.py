"""Downsampling keeps min, max and last per bucket, so a spike survives any zoom."""

import pytest

from service.spec.series import downsample


def points(losses):
    return [{"seq": i + 1, "examples": (i + 1) * 100, "class_loss": v, "train_acc": 0.5} for i, v in enumerate(losses)]


@pytest.mark.parametrize(("n", "buckets", "sizes"), [
    (10, 5, [2, 2, 2, 2, 2]),
    (10, 3, [4, 4, 2]),
    (10, 20, [1] * 10),
    (1, 1, [1]),
    (0, 4, []),
])
def test_bucket_sizes(n, buckets, sizes):
    assert [b["count"] for b in downsample(points([1.0] * n), buckets)] == sizes


def test_a_spike_stays_visible():
    losses = [1.0] * 1000
    losses[537] = 50.0
    out = downsample(points(losses), 7)
    assert max(b["max"]["class_loss"] for b in out) == 50.0
    assert all(b["min"]["class_loss"] == 1.0 for b in out)
    assert out[-1]["examples"] == 100_000 and out[-1]["seq"] == 1000


def test_events_and_missing_values_are_skipped():
    series = points([2.0, 1.0]) + [{"seq": 3, "event": "checkpoint", "examples": 200}]
    series[0]["val_acc"] = None
    out = downsample(series, 1)
    assert out == [{"seq": 2, "examples": 200, "count": 2,
                    "min": {"class_loss": 1.0, "train_acc": 0.5}, "max": {"class_loss": 2.0, "train_acc": 0.5},
                    "last": {"class_loss": 1.0, "l2_loss": None, "train_acc": 0.5, "val_acc": None,
                             "examples_per_second": None, "forward_ms": None, "backward_ms": None,
                             "learning_rate": None, "batch_size": None}}]
