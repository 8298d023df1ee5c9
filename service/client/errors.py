"""The one exception type the client raises: `ApiError`, with the problem+json the service answered.

A script catches `ApiError` and reads `status`, `title`, `detail` and `errors` (each ``{"path",
"message"}``, the field at fault); the two kinds below it only say why no answer came (`Unreachable`)
or why a wait gave up (`WaitTimeout`, also a `TimeoutError`), so that one `except ApiError` covers all.
"""

from __future__ import annotations

from typing import Any

import requests


class ApiError(Exception):
    """A refusal by the service (status, title, detail, field errors, the whole problem `body`), or a request
    that could not be made at all (status None)."""

    def __init__(self, detail: str = "", *, status: int | None = None, title: str | None = None,
                 errors: list[dict] | None = None, body: Any = None):
        self.status, self.title, self.detail = status, title, detail
        self.errors = errors or []
        self.body = body
        super().__init__(f"{title}: {detail}" if title and detail else title or detail)

    @classmethod
    def from_response(cls, response: requests.Response) -> ApiError:
        """An error response: application/problem+json as the API sends it, or whatever else a proxy said."""
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            lines = (response.text or "").strip().splitlines()
            return cls(lines[0][:200] if lines else "", status=response.status_code,
                       title=f"{response.status_code} {response.reason}", body=response.text)
        errors = [e if isinstance(e, dict) else {"path": None, "message": str(e)} for e in body.get("errors") or []]
        return cls(body.get("detail") or "", status=response.status_code,
                   title=body.get("title") or f"{response.status_code} {response.reason}", errors=errors, body=body)


class Unreachable(ApiError):
    """No answer: the service could not be connected to, or did not answer in time."""


class WaitTimeout(ApiError, TimeoutError):
    """`wait(timeout=...)` gave up before the job or sweep ended; it goes on in the service."""
