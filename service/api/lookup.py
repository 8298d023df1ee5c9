"""The service objects of a request, and the job or sweep a URL names as the caller may see it."""

from __future__ import annotations

from flask import current_app

from service.api.security import owns
from service.ids import ID
from service.store.jobs import JobNotFound
from service.store.sweeps import SweepNotFound, SweepRecord


def services():
    """What every handler needs (service/api/__init__.py: Services)."""
    return current_app.extensions["convtrain"]


def visible_job(job_id: str) -> dict:
    """The job as the API shows it; JobNotFound (404) where it does not exist for this caller:
    someone else's job does not exist, for you."""
    if not ID.fullmatch(job_id):
        raise JobNotFound(job_id)
    job = services().store.get(job_id)
    if not owns(job["owner"]):
        raise JobNotFound(job_id)
    return job


def visible_sweep(sweep_id: str) -> SweepRecord:
    """The sweep's record; SweepNotFound (404) where it does not exist for this caller."""
    if not ID.fullmatch(sweep_id):
        raise SweepNotFound(sweep_id)
    record = services().sweeps.get(sweep_id)
    if not owns(record.owner):
        raise SweepNotFound(sweep_id)
    return record
