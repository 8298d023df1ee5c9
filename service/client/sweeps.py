"""A sweep as a script sees it: its variants' jobs, its progress, its report, and cancelling it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from service.client.errors import ApiError
from service.client.jobs import Job
from service.client.progress import Bar
from service.client.resource import Resource, body_or_file
from service.config import Config
from service.lifecycle import RUNNING
from service.spec.netspec import InvalidSpec
from service.spec.request_body import read_body


def request_body(spec: dict | str | Path) -> Any:
    """The POST /v1/sweeps body: the dict itself, or the JSON in the file `spec` names."""
    if isinstance(spec, dict):
        return spec
    try:
        return read_body(str(spec), Config())
    except InvalidSpec as exc:
        raise ApiError(exc.errors[0].message) from None


class Sweep(Resource):
    """A sweep of the service (`client.sweep(...)`, `client.get_sweep(id)`); `record` holds what was last fetched."""

    collection = "/v1/sweeps"

    def ended(self) -> bool:
        return self.status != RUNNING

    def draw(self, bar: Bar) -> None:
        bar.sweep(self.record)

    def jobs(self) -> list[Job]:
        """Its jobs, variant after variant, each with the entry the sweep's record has of it (`refresh()` for all)."""
        record = self.record if "variants" in self.record else self.refresh()  # a listing's summary has none
        return [Job(self.session, entry) for variant in record["variants"] for entry in variant["jobs"]]

    def report(self, format: str = "md", path: str | Path | None = None) -> bytes | Path:
        """The comparison as Markdown, CSV or a PNG figure: its bytes, or written to `path` (a folder: under the
        service's name for it) and that path."""
        response = self.session.request("GET", f"{self.path}/report", params={"format": format}, stream=True)
        with response:
            return body_or_file(response, path, f"sweep-{self.id}.{format}")

    def cancel(self) -> dict:
        """Cancel every job of it that has not ended."""
        self.record = self.session.json("POST", f"{self.path}/cancel")
        return self.record

    def delete(self) -> None:
        """Delete an ended sweep and its jobs."""
        self.session.request("DELETE", self.path)
