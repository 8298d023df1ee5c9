"""The training loop: a validated job request in, a trained model and the demo's metrics out.

Metrics go to callbacks, never to print. Between batches the loop asks its hooks
whether to stop, pause or change the trainer, and hands out checkpoints that
resume the run exactly (model, optimizer, RNGs, data position, metric windows).

Batches follow ConvNetJS's SGDTrainer, which counts examples (k) and updates when k
reaches a multiple of batch_size: each batch runs up to the next such multiple, so a
live batch-size change brings the next update early, and a budget that ends between
two multiples trains and counts its last examples without updating.
"""

from __future__ import annotations

import io
import math
import time
from dataclasses import dataclass
from typing import Callable

import torch

from service.spec import netspec
from service.spec.schemas import TRAINER_LIVE_FIELDS
from worker import data, snapshots
from worker.initial import initial_state
from worker.metrics import BatchLog, StepClock
from worker.model import Net, memory_format
from worker.optim import ConvNetJSOptimizer

CHECKPOINT_VERSION = 2  # 2: the optimizer's state is per parameter, with the examples k counts
# Evaluation batch: on a CPU, 1,000 images overflow the cache and run 1.75x slower per image than 256.
EVAL_BATCH = {"cpu": 256, "cuda": 1000}
POINT_EXAMPLES = 100  # metric points are at least this many examples apart (the demo's windows are 100)
MAX_POINTS = 1000  # ... and a known budget has at most about this many
SOFTMAX_MAX_LOSS = 745.0  # -log of the smallest float64: beyond it ConvNetJS's loss is infinite


@dataclass
class Hooks:
    """What the loop reports to and asks of its caller; every hook is optional."""

    on_metrics: Callable[[dict], None] | None = None  # one metric point
    on_event: Callable[[dict], None] | None = None  # live trainer changes, as they are applied
    on_checkpoint: Callable[[dict], None] | None = None  # a resumable state, every checkpoint_seconds
    on_snapshot: Callable[[snapshots.Snapshot, int], None] | None = None  # layer views of the probe, and examples
    poll: Callable[[], str | None] | None = None  # "cancel", "pause" or "shutdown" stops the loop
    trainer_changes: Callable[[], dict | None] | None = None  # live changes to the trainer options
    checkpoint_seconds: float = 5.0
    snapshot_seconds: float = 5.0
    poll_seconds: float = 0.2
    metrics_examples: int | None = None  # a point every this many examples; None: point_spacing(budget)
    # A search's rungs (examples): at the first batch end past each, on_rung gets the rung and the val_acc of
    # the first `val_slice` validation images (the same images for every rung and every trial), and True
    # back stops the loop there: the run ends as a finished one does, its result marked `pruned`.
    rungs: tuple[int, ...] = ()
    on_rung: Callable[[int, float | None], bool] | None = None
    val_slice: int = 2000


def point_spacing(total: int | None) -> int:
    """Examples between metric points: 100, or the multiple of 100 that keeps a budget of `total` to 1,000 points.

    Points are placed by examples, whatever the machine's speed, as the demo plots a point every
    200 steps; a budget in seconds (total None) gets one every 100.
    """
    if total is None:
        return POINT_EXAMPLES
    return POINT_EXAMPLES * max(1, math.ceil(total / (POINT_EXAMPLES * MAX_POINTS)))


class Interrupted(Exception):
    """The loop stopped on request; `state` resumes it (None for a cancel)."""

    def __init__(self, reason: str, state: dict | None, examples: int):
        super().__init__(f"training {reason} at {examples} examples")
        self.reason, self.state, self.examples = reason, state, examples


class Diverged(Exception):
    """The loss became NaN or infinite."""

    def __init__(self, examples: int):
        super().__init__(f"the loss became NaN or infinite at {examples} examples seen; "
                         "try a smaller learning rate")
        self.examples = examples


def resolve_device(name: str | None) -> torch.device:
    """auto|cpu|gpu|cuda[:n] to a torch device; gpu or cuda without CUDA is an error."""
    name = (name or "auto").lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name in ("gpu", "cuda") or name.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise ValueError(f"device {name!r} asked for, but this machine has no CUDA GPU")
        return torch.device("cuda" if name == "gpu" else name)
    if name == "cpu":
        return torch.device("cpu")
    raise ValueError(f"unknown device {name!r}; use auto, cpu, gpu or cuda:N")


def save_state(state: dict) -> bytes:
    buf = io.BytesIO()
    torch.save(state, buf)
    return buf.getvalue()


def load_state(blob: bytes) -> dict:
    return torch.load(io.BytesIO(blob), map_location="cpu", weights_only=True)


class Training:
    """One training run of a job request; resumable from a state that `state()` returns."""

    def __init__(self, request: dict, network: netspec.Network | None = None, *, data_dir=None,
                 device: str | torch.device = "cpu", state: dict | None = None, initial: dict | None = None,
                 dtype: torch.dtype = torch.float32, artifacts=None):
        self.request = request
        self.network = network or netspec.analyze(request["network"])
        self.device = device if isinstance(device, torch.device) else resolve_device(device)
        opts = request["data"]
        self.dataset = data.load(opts["dataset"], data_dir, device=self.device,
                                 validation_fraction=opts["validation_fraction"],
                                 upload=opts.get("upload"), artifacts=artifacts)  # an upload: by its hash
        first = self.network.input
        self.input_size = (first["out_sy"], first["out_sx"])
        image_size = tuple(self.dataset.train.images.shape[-2:])
        seed = int(request["seed"])
        torch.manual_seed(seed)  # model initialisation and dropout masks
        self.dtype = dtype
        self.memory_format = memory_format(self.network)
        self.model = Net(self.network).to(self.device, dtype).to(memory_format=self.memory_format)
        if state is None and (initial is not None or request.get("init")):
            # Given weights: a state dict, or the request's inline ConvNetJS snapshot.
            self.model.load_state_dict(initial if initial is not None else initial_state(request, self.network.layers))
        trainer = dict(request["trainer"])
        self.hyper = {k: trainer[k] for k in TRAINER_LIVE_FIELDS}
        self.optimizer = ConvNetJSOptimizer(self.model.param_groups(), **trainer)
        generator = torch.Generator(device=self.device).manual_seed(seed)
        crop = self.input_size if self.input_size != image_size and opts["augment"]["crop"] else None
        self.center = self.input_size != image_size and crop is None
        self.stream = data.BatchStream(self.dataset.train, trainer["batch_size"], crop=crop,
                                       flip=opts["augment"]["flip"], shift=opts["augment"].get("shift", 0),
                                       generator=generator, device=self.device,
                                       dtype=dtype)
        self.eval_generator = torch.Generator(device=self.device).manual_seed(seed + 1)
        self.log = BatchLog(SOFTMAX_MAX_LOSS if self.model.loss_type == "softmax" else float("inf"))
        self.examples = 0
        self.elapsed = 0.0  # seconds of training, over every attempt
        self.val_acc: float | None = None
        self.val_cursor = 0
        self.next_val = opts["val_interval"]
        self.last_point = 0
        self._probe = None
        if state is not None:
            self._restore(state)

    # --- budget --------------------------------------------------------------

    @property
    def examples_total(self) -> int | None:
        budget = self.request["budget"]
        if "examples" in budget:
            return int(budget["examples"])
        if "epochs" in budget:
            return int(budget["epochs"]) * len(self.dataset.train)
        return None

    def _done(self, total: int | None) -> bool:
        """Whether the budget is spent; `total` is examples_total."""
        if total is not None:
            return self.examples >= total
        return self.elapsed >= float(self.request["budget"]["seconds"])

    # --- the loop ------------------------------------------------------------

    def run(self, hooks: Hooks | None = None) -> dict:
        """Train until the budget is spent; return the result summary."""
        hooks = hooks or Hooks()
        model, optimizer, stream, log = self.model, self.optimizer, self.stream, self.log
        model.train()
        total = self.examples_total
        spacing = hooks.metrics_examples or point_spacing(total)
        next_point = (self.last_point // spacing + 1) * spacing
        clock = StepClock(self.device)
        started = time.perf_counter()
        elapsed_before = self.elapsed
        examples_before = self.examples
        last_poll = last_ckpt = last_emit = started
        last_snapshot = started - hooks.snapshot_seconds  # the first pictures come with the first batch
        emit_examples = self.examples
        rungs = [r for r in sorted(hooks.rungs) if r > self.examples] if hooks.on_rung else []
        pruned = False
        done = self._done(total)
        while not done:
            n = optimizer.until_update  # the batch ends where ConvNetJS's k % batch_size reaches 0
            if total is not None:
                n = min(n, total - self.examples)
            x, y = stream.next(n)
            if self.center:
                x = data.center_crop(x, *self.input_size)
            x = x.contiguous(memory_format=self.memory_format)
            clock.mark()
            scores = model(x)
            loss = model.loss(scores, y)
            clock.mark()
            optimizer.begin_batch()
            loss.backward()  # into the optimizer's flat gradient buffer, summed since the last update
            optimizer.step(n)
            clock.mark()
            clock.batch(n)
            log.add(self.examples + n, n, loss, (scores.argmax(1) == y).sum())
            self.examples += n
            now = time.perf_counter()
            self.elapsed = elapsed_before + (now - started)
            done = self._done(total)

            if self.examples >= self.next_val and len(self.dataset.val):
                self._validate_window()
                self.next_val += self.request["data"]["val_interval"]
            while rungs and self.examples >= rungs[0] and not done:
                if hooks.on_rung(rungs.pop(0), self.rung_accuracy(hooks.val_slice)):
                    pruned = done = True
            if self.examples >= next_point or done:
                self._emit(hooks, (self.examples - emit_examples) / max(now - last_emit, 1e-9), *clock.read())
                next_point = (self.examples // spacing + 1) * spacing
                last_emit, emit_examples = time.perf_counter(), self.examples  # the hook's own time is not training
            if now - last_poll >= hooks.poll_seconds:
                last_poll = now
                self._poll(hooks)
            if hooks.on_checkpoint and now - last_ckpt >= hooks.checkpoint_seconds and not done:
                hooks.on_checkpoint(self.state())
                last_ckpt = time.perf_counter()
            if hooks.on_snapshot and now - last_snapshot >= hooks.snapshot_seconds and not done:
                hooks.on_snapshot(self.snapshot(), self.examples)
                last_snapshot = time.perf_counter()
        train_seconds = self.elapsed - elapsed_before
        if hooks.on_snapshot:
            hooks.on_snapshot(self.snapshot(), self.examples)
        result = self._finish((self.examples - examples_before) / max(train_seconds, 1e-9))
        if pruned:
            result["pruned"] = True
        return result

    def _emit(self, hooks: Hooks, rate: float, fwd: float, bwd: float) -> None:
        diverged = self.log.flush()
        if diverged is not None:
            raise Diverged(diverged)
        self.last_point = self.examples
        if hooks.on_metrics:
            hooks.on_metrics(self.point(rate, fwd, bwd))

    def point(self, rate: float = 0.0, fwd: float = 0.0, bwd: float = 0.0) -> dict:
        """The current metric point, as the demo shows it."""
        l1, l2 = self.optimizer.decay_loss()
        return {
            "examples": self.examples,
            "epoch": round(self.examples / len(self.dataset.train), 4),
            "seconds": round(self.elapsed, 3),
            "class_loss": self.log.loss.mean,
            "l2_loss": l2,
            "l1_loss": l1,
            "train_acc": self.log.accuracy.mean,
            "val_acc": self.val_acc,
            "examples_per_second": round(rate, 1),
            "forward_ms": round(fwd * 1000, 4),
            "backward_ms": round(bwd * 1000, 4),
            "learning_rate": self.hyper["learning_rate"],
            "batch_size": self.hyper["batch_size"],
        }

    def _poll(self, hooks: Hooks) -> None:
        if hooks.trainer_changes:
            changes = hooks.trainer_changes()
            if changes:
                self.change_trainer(changes, hooks)
        if hooks.poll:
            reason = hooks.poll()
            if reason:
                state = None if reason == "cancel" else self.state()
                raise Interrupted(reason, state, self.examples)

    def change_trainer(self, changes: dict, hooks: Hooks | None = None) -> None:
        """Apply live trainer changes from the next batch on; a new batch_size first runs to its next multiple of k."""
        changes = {k: v for k, v in changes.items() if k in TRAINER_LIVE_FIELDS}
        self.optimizer.set_hyper(**changes)
        self.hyper.update(changes)
        if hooks and hooks.on_event:
            hooks.on_event({"type": "trainer", "examples": self.examples, "changes": changes})

    # --- evaluation ----------------------------------------------------------

    def snapshot(self) -> snapshots.Snapshot:
        """Layer statistics and pictures of the fixed probe image (the first test image)."""
        if self._probe is None:
            self._probe = snapshots.probe(self.dataset.test, self.input_size)
        image, label = self._probe
        return snapshots.take(self.model, image.to(self.device), label)

    def predictions(self, limit: int = 100) -> list[dict]:
        """The first `limit` test images with their top-3 classes."""
        return snapshots.predictions(self.model, self.dataset.test, self.input_size, limit, device=self.device)

    def rung_accuracy(self, images: int) -> float | None:
        """Accuracy on the first `images` of the validation split: a fixed slice, so rungs compare trials."""
        val = self.dataset.val
        return self.accuracy(data.Split(val.images[:images], val.labels[:images]))

    def _validate_window(self) -> None:
        """Accuracy on the next `val_examples` held-out images, cycling through the split."""
        val = self.dataset.val
        k = min(self.request["data"]["val_examples"], len(val))
        index = (torch.arange(k, device=val.labels.device) + self.val_cursor) % len(val)
        self.val_cursor = (self.val_cursor + k) % len(val)
        self.val_acc = self.accuracy(data.Split(val.images[index], val.labels[index]))

    @torch.inference_mode()
    def probabilities(self, images: torch.Tensor, crops: int = 0) -> torch.Tensor:
        """Class probabilities (softmax of the scores) of uint8 images: centre crop, or the mean over random crops."""
        was_training = self.model.training
        self.model.eval()
        out = []
        try:
            step = EVAL_BATCH.get(self.device.type, 256)
            for start in range(0, len(images), step):
                batch = images[start:start + step].to(self.device)
                if crops and tuple(batch.shape[-2:]) != self.input_size:
                    views = [data.random_crop(batch, *self.input_size, self.eval_generator) for _ in range(crops)]
                else:
                    views = [data.center_crop(batch, *self.input_size)]
                probs = sum(torch.softmax(self.model(self._input(v)), 1) for v in views) / len(views)
                out.append(probs)
        finally:
            self.model.train(was_training)
        return torch.cat(out) if out else torch.empty(0, self.network.output["out_depth"], device=self.device)

    def _input(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 images as the model's input: scaled, in its dtype and memory format."""
        return data.to_input(images, self.dtype).contiguous(memory_format=self.memory_format)

    def accuracy(self, split: data.Split, crops: int = 0) -> float | None:
        if len(split) == 0:
            return None
        predicted = self.probabilities(split.images, crops).argmax(1)
        return (predicted == split.labels.to(predicted.device)).float().mean().item()

    def _finish(self, rate: float) -> dict:
        diverged = self.log.flush()
        if diverged is not None:
            raise Diverged(diverged)
        self.val_acc = self.accuracy(self.dataset.val)
        l1, l2 = self.optimizer.decay_loss()
        result = {
            "examples_seen": self.examples,
            "epochs": round(self.examples / len(self.dataset.train), 4),
            "train_acc": self.log.accuracy.mean,
            "val_acc": self.val_acc,
            "test_acc": self.accuracy(self.dataset.test),
            "class_loss": self.log.loss.mean,
            "l2_loss": l2,
            "examples_per_second": round(rate, 1),
            "seconds": round(self.elapsed, 3),
        }
        crops = self.request["data"].get("test_crops", 0)
        if crops:
            result["test_acc_crops"] = self.accuracy(self.dataset.test, crops)
        return result

    # --- checkpoints ---------------------------------------------------------

    def state(self) -> dict:
        """Everything needed to continue this run exactly where it is."""
        diverged = self.log.flush()
        if diverged is not None:
            raise Diverged(diverged)
        state = {
            "version": CHECKPOINT_VERSION,
            "model": self._weights(),
            "optimizer": self.optimizer.state_dict(),
            "stream": self.stream.state_dict(),
            "torch_rng": torch.get_rng_state(),
            "eval_rng": self.eval_generator.get_state(),
            "log": self.log.state_dict(),
            "examples": self.examples,
            "elapsed": self.elapsed,
            "val_acc": self.val_acc,
            "val_cursor": self.val_cursor,
            "next_val": self.next_val,
            "last_point": self.last_point,
            "hyper": dict(self.hyper),
        }
        if self.device.type == "cuda":
            state["cuda_rng"] = torch.cuda.get_rng_state(self.device)
        return state

    def _restore(self, state: dict) -> None:
        if state.get("version") != CHECKPOINT_VERSION:
            raise ValueError(f"checkpoint version {state.get('version')} is not {CHECKPOINT_VERSION}")
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.stream.load_state_dict(state["stream"])
        torch.set_rng_state(state["torch_rng"])
        self.eval_generator.set_state(state["eval_rng"])
        if "cuda_rng" in state and self.device.type == "cuda":
            torch.cuda.set_rng_state(state["cuda_rng"], self.device)
        self.log.load_state_dict(state["log"])
        self.examples = int(state["examples"])
        self.elapsed = float(state["elapsed"])
        self.val_acc = state["val_acc"]
        self.val_cursor = int(state["val_cursor"])
        self.next_val = int(state["next_val"])
        self.last_point = int(state["last_point"])
        self.hyper = dict(state["hyper"])
        self.optimizer.set_hyper(**self.hyper)

    def _weights(self) -> dict[str, torch.Tensor]:
        """The model's state dict as contiguous copies: the parameters are views of the optimizer's flat buffer."""
        return {k: v.detach().clone(memory_format=torch.contiguous_format) for k, v in self.model.state_dict().items()}

    def weights(self) -> dict:
        """The trained model as a state dict on the CPU, with the validated spec."""
        return {"state_dict": {k: v.cpu() for k, v in self._weights().items()},
                "network": self.request["network"], "layers": self.network.layers}
