"""An architecture search as a script sees it: its trials, the best network so far, their jobs, its report."""

from __future__ import annotations

from pathlib import Path

from service.client.jobs import Job
from service.client.progress import Bar
from service.client.resource import Resource, body_or_file
from service.lifecycle import RUNNING


class Search(Resource):
    """A search of the service (`client.search(...)`, `client.get_search(id)`); `record` holds what was last
    fetched. A listing's summary has no trials: `trials`, `best`, `progress` and `jobs()` fetch it first."""

    collection = "/v1/searches"
    unit = "trial"

    def _full(self) -> dict:
        return self.record if "trials" in self.record else self.refresh()

    @property
    def trials(self) -> list[dict]:
        """Each trial asked so far, in order: architecture, sampled `params`, status, val_acc, job, rungs."""
        return self._full()["trials"]

    @property
    def best(self) -> dict | None:
        """The best trial so far (its job, val_acc, test_acc, network and demo JavaScript), None before one ends."""
        return self._full()["best"]

    @property
    def progress(self) -> dict:
        """Trials done, running, pruned and invalid, examples spent, seconds elapsed."""
        return self._full()["progress"]

    def ended(self) -> bool:
        return self.status != RUNNING

    def draw(self, bar: Bar) -> None:
        p = self.record["progress"]
        best = self.record["best"]
        words = [f"best val {best['val_acc']:.4f}"] if best else []
        words += [f"{p['trials_running']} running", f"{p['pruned']} pruned", self.status or "?"]
        bar.show(p["trials_done"], self.record["trials_total"], words)

    def jobs(self) -> list[Job]:
        """The trials' jobs in trial order, each with the trial's status (`refresh()` for all); an invalid trial
        has none."""
        return [Job(self.session, {"id": t["job"], "status": t["status"]}) for t in self.trials if t["job"]]

    def report(self, format: str = "md", path: str | Path | None = None) -> bytes | Path:
        """The leaderboard as Markdown or CSV, or val_acc against examples as a PNG figure: its bytes, or written
        to `path` (a folder: under the service's name for it) and that path."""
        response = self.session.request("GET", f"{self.path}/report", params={"format": format}, stream=True)
        with response:
            return body_or_file(response, path, f"search-{self.id}.{format}")

    def cancel(self) -> dict:
        """Stop its trials and ask no more; the record, still `running` until every trial has stopped."""
        self.record = self.session.json("POST", f"{self.path}/cancel")
        return self.record

    def delete(self) -> None:
        """Delete an ended search and its trials' jobs."""
        self.session.request("DELETE", self.path)
