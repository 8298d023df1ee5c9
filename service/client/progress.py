"""Progress bars for `wait(progress=True)`: tqdm.auto draws a text bar in a terminal and a widget in Jupyter."""

from __future__ import annotations

from tqdm.auto import tqdm

from service.text import metric_words


class Bar:
    """Examples (or a search's trials: `unit`) done out of the total, with the latest figures and the status."""

    def __init__(self, label: str, unit: str = "ex"):
        self.bar = tqdm(desc=label, unit=unit, unit_scale=unit == "ex", dynamic_ncols=True)

    def show(self, seen: int, total: int | None, words: list[str]) -> None:
        if total != self.bar.total:
            self.bar.reset(total=total)  # a notebook's widget learns its new length only this way
        self.bar.n = seen
        self.bar.set_postfix_str("  ".join(words), refresh=False)
        self.bar.refresh()

    def job(self, record: dict) -> None:
        p = record.get("progress") or {}
        words = metric_words(record["metrics"]) if record.get("metrics") else []
        self.show(p.get("examples_seen") or 0, p.get("examples_total"),
                  words + [record.get("status_detail") or record.get("status") or "?"])

    def sweep(self, record: dict) -> None:
        p = record.get("progress") or {}
        self.show(p.get("examples_seen") or 0, p.get("examples_total"),
                  [f"{p.get('ended', 0)}/{p.get('jobs', 0)} jobs ended", record.get("status") or "?"])

    def close(self) -> None:
        self.bar.close()
