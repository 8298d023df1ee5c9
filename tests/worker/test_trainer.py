"""The training loop on real MNIST: accuracy, exact resume, budgets, stop hooks, live changes, divergence, metric points."""

from __future__ import annotations

import pytest
import torch

from service.config import Config
from service.spec.schemas import load_job_request
from tests.conftest import data_dir, example
from worker.trainer import (
    Diverged,
    Hooks,
    Interrupted,
    Training,
    load_state,
    point_spacing,
    save_state,
)


def training(budget: dict, seed: int = 7, state=None, **changes) -> Training:
    body = example("net1-default.json", budget=budget, seed=seed, **changes)
    request, network = load_job_request(body, Config())
    return Training(request, network, data_dir=data_dir(), device="cpu", state=state)


def test_first_network_reaches_the_assignment_accuracy():
    """Net 1, adadelta, batch 20, l2 0.001, 30,000 examples seen: at least 97.5% on the 10,000 test images."""
    points = []
    result = training({"examples": 30_000}).run(Hooks(on_metrics=points.append))
    assert result["examples_seen"] == 30_000
    assert result["test_acc"] >= 0.975, result
    assert set(result) >= {"examples_seen", "train_acc", "val_acc", "test_acc", "class_loss", "l2_loss",
                           "examples_per_second", "seconds"}
    # Placed by examples whatever the machine's speed: one every 100, the last at the budget.
    assert [p["examples"] for p in points] == list(range(100, 30_001, 100))
    for key in ("class_loss", "l2_loss", "train_acc", "val_acc", "examples_per_second", "forward_ms", "backward_ms"):
        assert points[-1][key] is not None and points[-1][key] >= 0, key


def _points(run: Training, hooks: Hooks | None = None):
    points = []
    hooks = hooks or Hooks()
    hooks.on_metrics = points.append
    return points, run.run(hooks)


def test_resumed_run_equals_uninterrupted_run():
    full_run = training({"examples": 4000})
    full_points, full = _points(full_run)

    first = training({"examples": 4000})

    def pause_once():
        return "pause" if first.examples >= 1700 else None

    with pytest.raises(Interrupted) as stop:
        _points(first, Hooks(poll=pause_once, poll_seconds=0))
    assert stop.value.reason == "pause" and stop.value.examples == 1700
    state = load_state(save_state(stop.value.state))  # through bytes, as a checkpoint file would go
    resumed = training({"examples": 4000}, state=state)
    resumed_points, result = _points(resumed)

    assert [p["examples"] for p in resumed_points] == [p["examples"] for p in full_points if p["examples"] > 1700]
    tail = [p for p in full_points if p["examples"] > 1700]
    assert [p["class_loss"] for p in resumed_points] == [p["class_loss"] for p in tail]
    assert [p["train_acc"] for p in resumed_points] == [p["train_acc"] for p in tail]
    assert result["test_acc"] == full["test_acc"]
    for name, weight in full_run.model.state_dict().items():
        assert torch.equal(resumed.model.state_dict()[name], weight), name


def test_same_seed_same_run_on_cpu():
    a = training({"examples": 1500}, seed=11).run(Hooks())
    b = training({"examples": 1500}, seed=11).run(Hooks())
    c = training({"examples": 1500}, seed=12).run(Hooks())
    keys = ("train_acc", "val_acc", "test_acc", "class_loss", "l2_loss")
    assert [a[k] for k in keys] == [b[k] for k in keys]
    assert [a[k] for k in keys] != [c[k] for k in keys]


def test_seconds_and_epochs_budgets():
    result = training({"seconds": 0.5}).run(Hooks())
    assert result["seconds"] >= 0.5 and result["examples_seen"] > 0
    assert training({"epochs": 2}).examples_total == 2 * 54_000


def test_cancel_stops_between_batches_without_state():
    run = training({"examples": 30_000})
    with pytest.raises(Interrupted) as stop:
        run.run(Hooks(poll=lambda: "cancel" if run.examples >= 500 else None, poll_seconds=0))
    assert stop.value.reason == "cancel" and stop.value.state is None
    assert stop.value.examples == 500


def test_live_trainer_change_applies_from_the_next_batch():
    run = training({"examples": 1000})
    events, points = [], []
    pending = [{"learning_rate": 0.5, "batch_size": 50}]

    def changes():
        return pending.pop() if run.examples >= 400 and pending else None

    run.run(Hooks(trainer_changes=changes, on_event=events.append, on_metrics=points.append, poll_seconds=0))
    assert events == [{"type": "trainer", "examples": 400, "changes": {"learning_rate": 0.5, "batch_size": 50}}]
    assert run.optimizer.hyper["learning_rate"] == 0.5 and run.hyper["batch_size"] == 50
    assert points[-1]["batch_size"] == 50 and points[0]["batch_size"] == 20


def test_divergence_is_reported_with_the_example_count():
    run = training({"examples": 5000}, trainer={"method": "sgd", "learning_rate": 1e6, "batch_size": 20})
    with pytest.raises(Diverged) as exc:
        run.run(Hooks())
    assert 0 < exc.value.examples <= 5000 and "NaN or infinite" in str(exc.value)


def test_checkpoint_hook_gives_loadable_states():
    states = []
    training({"examples": 3000}).run(Hooks(on_checkpoint=states.append, checkpoint_seconds=0))
    assert states and all(s["examples"] <= 3000 for s in states)
    blob = save_state(states[-1])
    restored = load_state(blob)
    assert torch.equal(restored["model"]["layers.0.weight"], states[-1]["model"]["layers.0.weight"])


class BatchSizes:
    """A training's batch stream that records the size of every batch it hands out."""

    def __init__(self, stream):
        self.stream, self.sizes = stream, []

    def next(self, n):
        self.sizes.append(n)
        return self.stream.next(n)

    def __getattr__(self, name):
        return getattr(self.stream, name)


def test_an_incomplete_last_batch_is_trained_and_counted_but_makes_no_update():
    """As ConvNetJS: with 205 examples and batch 20, k reaches 205 and 205 % 20 != 0, so 10 updates."""
    run, whole = training({"examples": 205}), training({"examples": 200})
    run.stream = BatchSizes(run.stream)
    points = []
    result = run.run(Hooks(on_metrics=points.append))
    whole.run(Hooks())
    assert run.stream.sizes == [20] * 10 + [5]
    assert result["examples_seen"] == 205 and run.optimizer.k == 205 and points[-1]["examples"] == 205
    assert run.log.loss.count == 105  # the window of whole batches covering 100 examples: 5 x 20, and the last 5
    for name, weight in whole.model.state_dict().items():
        assert torch.equal(run.model.state_dict()[name], weight), name  # the last 5 moved no weight


def test_a_live_batch_size_change_runs_to_the_next_multiple_of_the_new_size():
    """As ConvNetJS's k % batch_size: changed from 20 to 30 at k = 100, the next update comes at k = 120."""
    run = training({"examples": 300})
    run.stream = BatchSizes(run.stream)
    pending = [{"batch_size": 30}]
    run.run(Hooks(trainer_changes=lambda: pending.pop() if run.examples >= 100 and pending else None,
                  poll_seconds=0))
    assert run.stream.sizes == [20] * 5 + [20] + [30] * 6  # to k = 100; to 120, the next multiple of 30; on by 30
    assert run.optimizer.k == 300


@pytest.mark.parametrize("total,spacing", [
    (None, 100), (1, 100), (30_000, 100), (100_000, 100), (100_001, 200), (250_000, 300), (10**6, 1000),
])
def test_point_spacing_keeps_a_budget_to_a_thousand_points(total, spacing):
    assert point_spacing(total) == spacing


def test_points_follow_the_examples_they_cross():
    """With batches of 30, a point comes at the first batch at or past each multiple of the spacing, and at the end."""
    points = []
    training({"examples": 500}, trainer={"method": "adadelta", "batch_size": 30}).run(
        Hooks(on_metrics=points.append, metrics_examples=100))
    assert [p["examples"] for p in points] == [120, 210, 300, 420, 500]
