"""The one exception hierarchy: each kind answers its status, and what a tenant reads has no server paths."""

from __future__ import annotations

import pytest

from service import errors
from service.spec.datasets import DatasetUnavailable
from service.spec.netspec import InvalidSpec, SpecError
from service.store.jobs import JobNotFound
from service.store.predictions import NoPredictor
from service.store.sweeps import SweepNotFound


@pytest.mark.parametrize(("error", "status"), [
    (errors.BadRequest("x"), 400), (errors.Unauthorized("x"), 401), (errors.NotFound("x"), 404),
    (errors.Conflict("x"), 409), (errors.UnsupportedMediaType("x"), 415), (errors.Invalid("x"), 422),
    (errors.OverQuota("active_jobs", "x", 30), 429), (errors.Unavailable("x"), 503),
    (InvalidSpec([SpecError("layers[1].sx", "bad")]), 422), (JobNotFound("0123abcd"), 404),
    (SweepNotFound("0123abcd"), 404), (NoPredictor(10), 503), (DatasetUnavailable("gone"), 503),
])
def test_every_kind_is_a_convtrain_error_with_its_status(error, status):
    assert isinstance(error, errors.ConvtrainError) and error.status == status and error.title


def test_field_errors_and_headers_travel_with_the_error():
    e = errors.BadRequest.field("query.limit", "limit must be a whole number")
    assert e.field_errors() == [{"path": "query.limit", "message": "limit must be a whole number"}]
    assert errors.OverQuota("active_jobs", "too many", 30).headers == {"Retry-After": "30"}
    assert InvalidSpec([SpecError("x", "m", line=3)]).field_errors() == [{"path": "x", "message": "m", "line": 3}]


@pytest.mark.parametrize(("exc", "shown"), [
    (FileNotFoundError(2, "No such file or directory", "/srv/convtrain/artifacts/ab12/checkpoint-1.pt"),
     "FileNotFoundError: [Errno 2] No such file or directory: 'checkpoint-1.pt'"),
    (RuntimeError("cannot open /home/someone/.convtrain/data/mnist/train.gz: bad"),
     "RuntimeError: cannot open train.gz: bad"),
    (ValueError("no path here"), "ValueError: no path here"),
])
def test_a_public_message_shows_no_server_path(exc, shown):
    assert errors.public_message(exc) == shown
