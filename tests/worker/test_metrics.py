"""Metric windows, the per-batch log read in one sync, and the step clock."""

from __future__ import annotations

import pytest
import torch

from worker.metrics import BatchLog, StepClock, Window


@pytest.mark.parametrize("batches,count,total", [
    ([(20, 2.0)] * 5, 100, 10.0),
    ([(20, 2.0)] * 6, 100, 10.0),  # whole batches: the oldest leaves once the rest cover 100
    ([(30, 3.0)] * 4, 120, 12.0),  # 90 would be too few, so four batches of 30 stay
    ([(150, 1.5)], 150, 1.5),
    ([(50, 1.0), (150, 3.0)], 150, 3.0),
])
def test_window_keeps_the_last_whole_batches_covering_its_size(batches, count, total):
    window = Window(100)
    for n, value in batches:
        window.add(n, value)
    assert (window.count, window.total) == (count, pytest.approx(total))
    assert window.mean == pytest.approx(total / count)


def test_window_round_trips_through_its_state():
    window = Window(100)
    for n in (30, 40, 50):
        window.add(n, float(n))
    again = Window()
    again.load_state_dict(window.state_dict())
    assert (again.size, again.count, again.total) == (100, window.count, window.total)
    assert Window().mean is None


def test_batch_log_reads_pending_batches_into_the_windows():
    log = BatchLog()
    for i in range(3):
        log.add(20 * (i + 1), 20, torch.tensor(10.0 * i), torch.tensor(5 + i))
    assert log.flush() is None and not log.pending
    assert (log.loss.total, log.accuracy.total) == (30.0, 18.0)
    assert log.loss.count == log.accuracy.count == 60


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), 20 * 746.0])
def test_batch_log_reports_the_first_non_finite_batch(bad):
    log = BatchLog(max_loss=745.0)
    log.add(20, 20, torch.tensor(1.0), torch.tensor(3))
    log.add(40, 20, torch.tensor(bad), torch.tensor(3))
    log.add(60, 20, torch.tensor(bad), torch.tensor(3))
    assert log.flush() == 40
    assert log.loss.count == 20  # what came before still counts


def test_step_clock_on_a_cpu_times_every_batch_per_example():
    clock = StepClock(torch.device("cpu"))
    for n in (20, 30):
        clock.mark()
        sum(range(20_000))  # a forward that takes measurable time
        clock.mark()
        clock.mark()
        clock.batch(n)
    forward, backward = clock.read()
    assert forward > 0 and backward >= 0
    assert clock.read() == (0.0, 0.0)  # a read starts the next interval
