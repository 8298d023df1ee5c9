"""The attempt's timeline writer: points batched by age, events in order after the points before them."""

from __future__ import annotations


import pytest

from worker.timeline import Timeline


class Recorder:
    def __init__(self):
        self.calls: list[tuple[list[dict], dict]] = []

    def __call__(self, entries, **fields):
        self.calls.append((entries, fields))
        return len(entries)


def test_points_wait_until_the_oldest_has_waited_long_enough():
    write = Recorder()
    timeline = Timeline(write, flush_seconds=3600)
    for i in range(1, 4):
        timeline.point({"examples": 100 * i})
    assert write.calls == [], "nothing is written before the oldest point is an hour old"
    timeline.flush()
    (entries, fields), = write.calls
    assert [e["examples"] for e in entries] == [100, 200, 300] and all("t" in e for e in entries)
    assert fields == {"metrics": entries[-1], "examples_seen": 300}


def test_with_no_wait_every_point_is_written_at_once():
    write = Recorder()
    timeline = Timeline(write, flush_seconds=0)
    timeline.point({"examples": 100})
    timeline.point({"examples": 200})
    assert [len(entries) for entries, _ in write.calls] == [1, 1]


def test_an_event_goes_after_the_points_before_it_in_one_write():
    write = Recorder()
    timeline = Timeline(write, flush_seconds=3600)
    timeline.point({"examples": 100})
    assert timeline.event({"event": "checkpoint", "examples": 100}) == 2
    (entries, fields), = write.calls
    assert [e.get("event", "point") for e in entries] == ["point", "checkpoint"]
    assert fields["examples_seen"] == 100


def test_an_event_alone_sets_no_metrics():
    write = Recorder()
    Timeline(write).event({"event": "started"})
    assert write.calls == [([{"event": "started"}], {})]


@pytest.mark.parametrize("waited", [0.0, 0.05])
def test_tick_flushes_only_old_enough_points(waited):
    write = Recorder()
    timeline = Timeline(write, flush_seconds=0.05)
    timeline.point({"examples": 1})
    timeline.oldest -= waited  # as if the point had waited this long
    timeline.tick()
    assert len(write.calls) == (1 if waited else 0)
    timeline.flush()
    assert timeline.flush() is None, "nothing left to write"


def test_a_refused_write_loses_only_what_it_carried():
    written: list[list[int]] = []

    def write(entries, **fields):  # the first call is fenced out (0), the next ones are written
        written.append([e["examples"] for e in entries])
        return 0 if len(written) == 1 else len(entries)

    timeline = Timeline(write, flush_seconds=0)
    timeline.point({"examples": 1})
    assert timeline.waiting == []
    timeline.point({"examples": 2})
    assert written == [[1], [2]], "the refused point is dropped, not carried into the next write"
