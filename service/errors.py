"""One exception hierarchy for everything convtrain refuses or cannot do.

Every failure a caller can act on is a `ConvtrainError`: it carries the HTTP status and title
it is answered with, a detail sentence, and field errors (each a path into the request and a
message). The API turns any of them into application/problem+json in one handler
(service/api/problems.py); the command line prints them; views raise them and never build
error responses themselves.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

# An absolute path in an exception's message: the server's folders, which a tenant must not read.
_PATH = re.compile(r"(?:/[^\s/'\"]+)+/([^\s/'\"]+)")


@dataclass(frozen=True)
class FieldError:
    """One problem with one field: where it is (``layers[3].sx``, ``query.limit``) and what is wrong."""

    path: str
    message: str

    def as_dict(self) -> dict:
        return {"path": self.path, "message": self.message}


class ConvtrainError(Exception):
    """A refusal or failure with its HTTP status, title, detail, field errors, headers and extra members."""

    status = 500
    title = "Internal Server Error"

    def __init__(self, detail: str = "", *, errors: list[FieldError] | None = None,
                 headers: dict[str, str] | None = None, title: str | None = None, status: int | None = None,
                 **extra: Any):
        super().__init__(detail or title or self.title)
        if status is not None:  # an error whose kind is only known at run time (gunicorn's, a worker's answer)
            self.status = status
        self.detail = detail
        self.errors = list(errors) if errors is not None else None
        self.headers = headers or {}
        if title is not None:
            self.title = title
        self.extra = extra

    def field_errors(self) -> list[dict] | None:
        """The field errors as JSON objects (None: the error is about no field in particular)."""
        if self.errors is None:
            return None
        return [e.as_dict() if hasattr(e, "as_dict") else dict(e) for e in self.errors]


class BadRequest(ConvtrainError):
    """A query parameter, header or body that cannot be read at all."""

    status, title = 400, "Bad Request"

    @classmethod
    def field(cls, path: str, message: str, detail: str | None = None) -> "BadRequest":
        return cls(detail or message, errors=[FieldError(path, message)])


class Unauthorized(ConvtrainError):
    status, title = 401, "Unauthorized"


class NotFound(ConvtrainError):
    """A resource that does not exist, or not for this caller (someone else's job does not exist, for you)."""

    status, title = 404, "Not Found"


class Conflict(ConvtrainError):
    """A request the resource's current state does not allow (cancel a finished job, delete a running one)."""

    status, title = 409, "Conflict"


class UnsupportedMediaType(ConvtrainError):
    status, title = 415, "Unsupported Media Type"


class Invalid(ConvtrainError):
    """A request that was read but is not valid: every problem at once, each at its field."""

    status, title = 422, "Invalid request"


class UploadRefused(Invalid):
    """A dataset upload that is not one convtrain reads, or that breaks a limit: refused before decoding."""

    title = "Invalid dataset upload"


class OverQuota(ConvtrainError):
    """A quota that the request would exceed; `limit` names it and Retry-After says when to try again."""

    status, title = 429, "Too Many Requests"

    def __init__(self, limit: str, message: str, retry_after: int):
        super().__init__(message, headers={"Retry-After": str(retry_after)}, limit=limit)
        self.limit, self.message, self.retry_after = limit, message, retry_after


class Unavailable(ConvtrainError):
    """Something the request needs is down for now (Redis, every worker); Retry-After says when to retry."""

    status, title = 503, "Service Unavailable"

    def __init__(self, detail: str, retry_after: int = 5, **extra: Any):
        super().__init__(detail, headers={"Retry-After": str(retry_after)}, **extra)


def public_message(exc: BaseException) -> str:
    """An unexpected error as a tenant may read it: its type and message, every absolute path cut to its last
    part (`No such file: '/srv/artifacts/j1/ckpt.pt'` becomes `No such file: 'ckpt.pt'`)."""
    message = _PATH.sub(r"\1", str(exc))
    return f"{type(exc).__name__}: {message}"
