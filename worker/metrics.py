"""Moving metric windows as in the ConvNetJS demo and step timings, fed per batch without per-batch device syncs."""

from __future__ import annotations

import time
from collections import deque

import torch


class Window:
    """The last `size` examples' sums of a quantity, kept as (count, sum) per batch."""

    def __init__(self, size: int = 100):
        self.size = size
        self.items: deque[tuple[int, float]] = deque()
        self.count = 0
        self.total = 0.0

    def add(self, count: int, total: float) -> None:
        self.items.append((count, total))
        self.count += count
        self.total += total
        # Keep whole batches; drop the oldest while the rest still covers `size` examples.
        while self.items and self.count - self.items[0][0] >= self.size:
            c, t = self.items.popleft()
            self.count -= c
            self.total -= t

    @property
    def mean(self) -> float | None:
        return self.total / self.count if self.count else None

    def state_dict(self) -> dict:
        return {"size": self.size, "items": list(self.items)}

    def load_state_dict(self, state: dict) -> None:
        self.__init__(state["size"])
        for count, total in state["items"]:
            self.add(int(count), float(total))


class BatchLog:
    """Per-batch losses and hits held on the device until the next metric point, then read in one sync.

    `max_loss` is the largest per-example loss that counts as finite: ConvNetJS computes
    softmax loss as -log(p) in float64, which is infinite once p underflows (-log p > 745).
    """

    def __init__(self, max_loss: float = float("inf")):
        self.max_loss = max_loss
        self.pending: list[tuple[int, int, torch.Tensor, torch.Tensor]] = []
        self.loss = Window()
        self.accuracy = Window()

    def add(self, examples_after: int, n: int, loss_sum: torch.Tensor, hits: torch.Tensor) -> None:
        self.pending.append((examples_after, n, loss_sum.detach(), hits))

    def flush(self) -> int | None:
        """Move pending batches into the windows; return the example count of the first non-finite loss."""
        if not self.pending:
            return None
        # Two stacks and one transfer to the host, however many batches are pending.
        losses = torch.stack([loss for _, _, loss, _ in self.pending]).double()
        hits = torch.stack([hit for _, _, _, hit in self.pending]).double()
        values = torch.stack((losses, hits), 1).tolist()
        diverged = None
        for (examples_after, n, _, _), (loss, hits) in zip(self.pending, values):
            if not loss / n <= self.max_loss:  # NaN fails every comparison
                diverged = examples_after
                break
            self.loss.add(n, loss)
            self.accuracy.add(n, hits)
        self.pending.clear()
        return diverged

    def state_dict(self) -> dict:
        """The windows; call flush() first so that no batch is pending."""
        return {"loss": self.loss.state_dict(), "accuracy": self.accuracy.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.loss.load_state_dict(state["loss"])
        self.accuracy.load_state_dict(state["accuracy"])


class StepClock:
    """Forward and backward (with the update) seconds per example, between two reads.

    On a CPU every batch is timed with the host clock, which costs next to nothing. On a GPU the host
    clock would time kernel launches, and synchronising would drain the queue; so one batch after
    each read is timed with CUDA events, read at the next read, when they have long completed.
    """

    def __init__(self, device: torch.device):
        self.cuda = device.type == "cuda"
        self._marks: list = []
        self._timed: tuple[list, int] | None = None  # GPU: the events of the batch timed since the last read
        self._seconds = [0.0, 0.0]
        self._examples = 0

    def mark(self) -> None:
        """Call before the forward, before the backward and after the update of a batch."""
        if not self.cuda:
            self._marks.append(time.perf_counter())
        elif self._timed is None:
            event = torch.cuda.Event(enable_timing=True)
            event.record()
            self._marks.append(event)

    def batch(self, examples: int) -> None:
        """The batch just marked had `examples` examples."""
        if len(self._marks) != 3:
            return
        if self.cuda:
            self._timed = (self._marks, examples)
        else:
            start, middle, end = self._marks
            self._seconds[0] += middle - start
            self._seconds[1] += end - middle
            self._examples += examples
        self._marks = []

    def read(self) -> tuple[float, float]:
        """(forward, backward) seconds per example since the last read; starts the next interval."""
        if self._timed is not None:
            (start, middle, end), examples = self._timed
            end.synchronize()
            self._seconds = [start.elapsed_time(middle) / 1000, middle.elapsed_time(end) / 1000]
            self._examples = examples
        per_example = tuple(s / max(self._examples, 1) for s in self._seconds)
        self._timed, self._seconds, self._examples = None, [0.0, 0.0], 0
        return per_example
