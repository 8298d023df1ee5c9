"""A search's rungs in the training loop (worker/trainer.py Hooks.rungs/on_rung): each reported once, on the
same fixed validation slice, and a True answer stops the run there with a finished result marked pruned."""

from __future__ import annotations

from service.config import Config
from service.spec.schemas import load_job_request
from tests.conftest import data_dir, example
from worker.trainer import Hooks, Training


def training(examples: int, state=None) -> Training:
    request, network = load_job_request(example("net1-default.json", budget={"examples": examples}, seed=3),
                                        Config())
    return Training(request, network, data_dir=data_dir(), state=state)


def test_each_rung_is_reported_once_and_the_run_trains_on():
    reports = []
    run = training(1200)
    result = run.run(Hooks(rungs=(400, 800, 1200), val_slice=300,
                           on_rung=lambda examples, acc: reports.append((examples, acc)) and False))
    # The budget's end is no rung: the job's own end measures it on the whole validation split.
    assert [e for e, _ in reports] == [400, 800] and all(0 <= acc <= 1 for _, acc in reports)
    assert "pruned" not in result and result["examples_seen"] == 1200
    assert run.rung_accuracy(300) == run.rung_accuracy(300), "the same images every time"


def test_a_true_answer_stops_the_run_at_that_rung():
    run = training(3000)
    result = run.run(Hooks(rungs=(400, 800), val_slice=300, on_rung=lambda examples, acc: examples == 800))
    assert result["pruned"] is True and result["examples_seen"] == 800 == run.examples
    assert 0 <= result["test_acc"] <= 1, "a pruned run ends as a finished one does, its test accuracy measured"


def test_a_resumed_run_reports_only_the_rungs_it_has_not_passed():
    first = training(1200)
    state = {}

    def stop_after_first_rung(examples, acc):
        state.update(first.state())
        return False

    first.run(Hooks(rungs=(400,), val_slice=300, on_rung=stop_after_first_rung))
    reports = []
    resumed = training(1200, state=state)
    resumed.run(Hooks(rungs=(400, 800), val_slice=300, on_rung=lambda e, acc: reports.append(e) and False))
    assert state["examples"] >= 400 and reports == [800]
