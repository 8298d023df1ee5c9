"""Moving metric windows as in the ConvNetJS demo, fed per batch without per-batch device syncs."""

from __future__ import annotations

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
        values = torch.stack([torch.stack((loss.float(), hits.float())) for _, _, loss, hits in self.pending]).tolist()
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
