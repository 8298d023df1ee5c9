"""What a Job and a Sweep share: an id, the record last fetched, and following it until it ends."""

from __future__ import annotations

import re
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote, unquote

import requests

from service.client.errors import WaitTimeout
from service.client.progress import Bar
from service.client.session import Session


class Resource(ABC):
    """A job or sweep of the service; `record` is what the last GET (or the call that made it) returned."""

    collection = ""  # the listing's path, e.g. /v1/jobs
    unit = "ex"  # what its progress bar counts

    def __init__(self, session: Session, record: dict):
        self.session = session
        self.record = record

    @property
    def id(self) -> str:
        return self.record["id"]

    @property
    def status(self) -> str | None:
        return self.record.get("status")

    @property
    def path(self) -> str:
        return f"{self.collection}/{quote(self.id, safe='')}"

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.id} {self.status}>"

    def refresh(self) -> dict:
        """GET it again; the record is also kept in `record`."""
        self.record = self.session.json("GET", self.path)
        return self.record

    @abstractmethod
    def ended(self) -> bool:
        """Whether the record says it has ended."""

    @abstractmethod
    def draw(self, bar: Bar) -> None:
        """Show the record's progress on `bar`."""

    def follow(self, every: float = 0.5) -> Iterator[dict]:
        """Its record, fetched every `every` seconds, until it has ended (the last one yielded is the end)."""
        while True:
            yield self.refresh()
            if self.ended():
                return
            time.sleep(every)

    def wait(self, progress: bool = True, timeout: float | None = None, every: float = 0.5) -> dict:
        """Follow it until it ends, with a progress bar (a terminal's or Jupyter's) when `progress`; return the
        final record, whatever the outcome (see `status`). WaitTimeout after `timeout` seconds."""
        deadline = None if timeout is None else time.monotonic() + timeout
        bar = Bar(f"{type(self).__name__.lower()} {self.id}", self.unit) if progress else None
        try:
            for record in self.follow(every):
                if bar:
                    self.draw(bar)
                if not self.ended() and deadline is not None and time.monotonic() > deadline:
                    raise WaitTimeout(f"{type(self).__name__.lower()} {self.id} is still {self.status} after "
                                      f"{timeout} s; it goes on in the service")
        finally:
            if bar:
                bar.close()
        return record


def suggested_name(response: requests.Response) -> str | None:
    """The file name a Content-Disposition header suggests, reduced to a safe base name."""
    header = response.headers.get("Content-Disposition") or ""
    match = re.search(r"filename\*\s*=\s*[^']*'[^']*'([^;]+)", header)
    name = unquote(match.group(1).strip()) if match else None
    if name is None:
        match = re.search(r'filename\s*=\s*"([^"]*)"', header) or re.search(r"filename\s*=\s*([^;]+)", header)
        name = match.group(1).strip() if match else None
    if not name:
        return None
    name = Path(name.replace("\\", "/")).name
    return name if name not in ("", ".", "..") else None


def body_or_file(response: requests.Response, path: str | Path | None, fallback: str) -> bytes | Path:
    """The response's bytes when `path` is None; else written to `path` (in a folder: under the name the
    service suggests, else `fallback`) and that file's path. OSError when it cannot be written."""
    if path is None:
        return response.content
    target = Path(path)
    if target.is_dir():
        target = target / (suggested_name(response) or fallback)
    with open(target, "wb") as f:
        f.writelines(response.iter_content(1 << 16))
    return target
