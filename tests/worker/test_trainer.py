"""The training loop on real MNIST: accuracy, exact resume, budgets, stop hooks, live changes, divergence."""

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
    assert points and points[-1]["examples"] == 30_000
    for key in ("class_loss", "l2_loss", "train_acc", "val_acc", "examples_per_second", "forward_ms", "backward_ms"):
        assert points[-1][key] is not None and points[-1][key] >= 0, key


def _points(run: Training, hooks: Hooks | None = None):
    points = []
    hooks = hooks or Hooks()
    hooks.on_metrics = points.append
    hooks.metrics_seconds = 0  # a point every 100 examples, independent of the clock
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

    run.run(Hooks(trainer_changes=changes, on_event=events.append, on_metrics=points.append,
                  poll_seconds=0, metrics_seconds=0))
    assert events == [{"type": "trainer", "examples": 400, "changes": {"learning_rate": 0.5, "batch_size": 50}}]
    assert run.optimizer.hyper["learning_rate"] == 0.5 and run.hyper["batch_size"] == 50
    assert points[-1]["batch_size"] == 50 and points[0]["batch_size"] == 20


def test_divergence_is_reported_with_the_example_count():
    run = training({"examples": 5000}, trainer={"method": "sgd", "learning_rate": 1e6, "batch_size": 20})
    with pytest.raises(Diverged) as exc:
        run.run(Hooks(metrics_seconds=0))
    assert 0 < exc.value.examples <= 5000 and "NaN or infinite" in str(exc.value)


def test_checkpoint_hook_gives_loadable_states():
    states = []
    training({"examples": 3000}).run(Hooks(on_checkpoint=states.append, checkpoint_seconds=0))
    assert states and all(s["examples"] <= 3000 for s in states)
    blob = save_state(states[-1])
    restored = load_state(blob)
    assert torch.equal(restored["model"]["layers.0.weight"], states[-1]["model"]["layers.0.weight"])
