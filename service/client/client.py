"""`Client`: the entry point a script, a notebook or the `convtrain` commands use to talk to a service."""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path

from service.client import jobs, sweeps
from service.client.datasets import Dataset, upload_form
from service.client.jobs import Job
from service.client.searches import Search
from service.client.session import Session
from service.client.sweeps import Sweep


class Client:
    """One convtrain service: `url` (default CONVTRAIN_URL, else http://127.0.0.1:8000) and `token` (default
    CONVTRAIN_TOKEN); `timeout` seconds per request, `retries` after a 503 or a dropped connection."""

    def __init__(self, url: str | None = None, token: str | None = None, *, timeout: float = 30,
                 retries: int = 3, backoff: float = 0.5):
        self.session = Session(url, token, timeout=timeout, retries=retries, backoff=backoff)

    @property
    def url(self) -> str:
        return self.session.base

    def __repr__(self) -> str:
        return f"<Client {self.url}>"

    def submit(self, spec: dict | str | Path, *, idempotency_key: str | None = None, **overrides) -> Job:
        """Queue a job: `spec` is a job request or a network (dict), a `.json`/`.js` file, or demo source; each
        keyword replaces that member of the request (`budget={"examples": 3000}`, `trainer={...}`, `name=`,
        `seed=`). The same `idempotency_key` with the same body returns the same job; without one, a fresh key
        still makes a retried POST safe."""
        key = idempotency_key or uuid.uuid4().hex
        record = self.session.json("POST", "/v1/jobs", json=jobs.request_body(spec, overrides),
                                   headers={"Idempotency-Key": key})
        return Job(self.session, record)

    def job(self, job_id: str) -> Job:
        """The job with this id, fetched (ApiError 404 when it does not exist for you)."""
        job = Job(self.session, {"id": job_id})
        job.refresh()
        return job

    def jobs(self, status: str | None = None, page_size: int = 50) -> Iterator[Job]:
        """Your jobs, newest first (only `status` ones when given), page after page following the cursor; each
        holds the listing's summary (`refresh()` for its request and network)."""
        for record in self.session.pages("/v1/jobs", "jobs", {"status": status, "limit": page_size}):
            yield Job(self.session, record)

    def sweep(self, spec: dict | str | Path) -> Sweep:
        """Queue a sweep: a sweep request (dict) or the `.json` file holding one."""
        return Sweep(self.session, self.session.json("POST", "/v1/sweeps", json=sweeps.request_body(spec)))

    def get_sweep(self, sweep_id: str) -> Sweep:
        """The sweep with this id, fetched."""
        sweep = Sweep(self.session, {"id": sweep_id})
        sweep.refresh()
        return sweep

    def sweeps(self, page_size: int = 50) -> Iterator[Sweep]:
        """Your sweeps, newest first, page after page (summaries: `refresh()` one for its variants and table)."""
        for record in self.session.pages("/v1/sweeps", "sweeps", {"limit": page_size}):
            yield Sweep(self.session, record)

    def search(self, spec: dict | str | Path) -> Search:
        """Queue an architecture search: a search request (dict) or the `.json` file holding one, read as a
        sweep's is."""
        return Search(self.session, self.session.json("POST", Search.collection, json=sweeps.request_body(spec)))

    def get_search(self, search_id: str) -> Search:
        """The search with this id, fetched (ApiError 404 when it does not exist for you)."""
        search = Search(self.session, {"id": search_id})
        search.refresh()
        return search

    def searches(self, page_size: int = 50) -> Iterator[Search]:
        """Your searches, newest first, page after page (summaries: a trial's details fetch the whole search)."""
        for record in self.session.pages(Search.collection, "searches", {"limit": page_size}):
            yield Search(self.session, record)

    def upload_dataset(self, paths: str | Path | Sequence[str | Path], name: str, *, title: str | None = None,
                       width: int | None = None, height: int | None = None, depth: int | None = None,
                       class_names: Sequence[str] | str | None = None) -> Dataset:
        """Upload a dataset under `name` (replacing yours of that name): a `.zip` of class folders
        (train/<class>/*.png, optional test/<class>/), an `.npz`, or a list of up to 4 IDX files named as MNIST
        ships them (plain or .gz). `width` and `height` (together) resize the images, `depth` 1 or 3 makes them
        grey or colour, `class_names` names an npz's or IDX's classes. Streamed from the files."""
        form = upload_form(paths, name, title=title, width=width, height=height, depth=depth,
                           class_names=class_names)
        record = self.session.json("POST", Dataset.collection, data=form, headers={"Content-Type": form.content_type})
        return Dataset(self.session, record)

    def datasets(self) -> list[Dataset]:
        """The datasets jobs can train on: the built-in ones first, then your uploads."""
        return [Dataset(self.session, record) for record in self.session.json("GET", Dataset.collection)["datasets"]]

    def dataset(self, name: str) -> Dataset:
        """The dataset of this name, fetched (ApiError 404 when it is neither built in nor yours)."""
        dataset = Dataset(self.session, {"name": name})
        dataset.refresh()
        return dataset
