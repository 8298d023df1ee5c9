"""The client's HTTP: one `requests` session with the token, timeouts, retries and problem+json as ApiError.

Retries: a `503` (Redis restarting, no worker for a prediction) says when to come back in `Retry-After`,
and the service did nothing, so any request is sent again after that long. A dropped connection or a
timeout may come after the service acted, so only requests that are safe to repeat are sent again: the
idempotent methods, and a POST that carries an `Idempotency-Key` (`Client.submit` always sends one).
"""

from __future__ import annotations

import email.utils
import os
import re
import time
from collections.abc import Iterator
from typing import Any

import requests

from service.client.errors import ApiError, Unreachable

DEFAULT_URL = "http://127.0.0.1:8000"
IDEMPOTENT = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})


def retry_delay(attempt: int, retry_after: str | None, backoff: float, cap: float) -> float:
    """Seconds to wait before retry number `attempt` (0 for the first): what `Retry-After` says (seconds or an
    HTTP date), else `backoff` doubled at each attempt; at most `cap`."""
    delay = backoff * 2 ** attempt
    if retry_after:
        value = retry_after.strip()
        if value.isdigit():
            delay = float(value)
        else:
            try:
                delay = email.utils.parsedate_to_datetime(value).timestamp() - time.time()
            except (TypeError, ValueError):
                pass  # not a date either: keep the backoff
    return min(cap, max(0.0, delay))


def _reason(exc: Exception) -> str:
    """The innermost reason of a connection error, e.g. `Connection refused`."""
    text = str(exc)
    match = re.search(r"\[Errno -?\d+\] ([^'\")\]]+)", text)
    return match.group(1).strip() if match else text


class Session:
    """Requests to one convtrain service; `url` and `token` default to CONVTRAIN_URL and CONVTRAIN_TOKEN."""

    def __init__(self, url: str | None = None, token: str | None = None, *, timeout: float = 30,
                 retries: int = 3, backoff: float = 0.5, max_wait: float = 30):
        self.base = (url or os.environ.get("CONVTRAIN_URL") or DEFAULT_URL).rstrip("/")
        self.timeout, self.retries, self.backoff, self.max_wait = timeout, retries, backoff, max_wait
        self.http = requests.Session()
        token = token or os.environ.get("CONVTRAIN_TOKEN")
        if token:
            self.http.headers["Authorization"] = f"Bearer {token}"

    def request(self, method: str, path: str, **kwargs) -> requests.Response:
        """Send `method path` (kwargs as `requests` takes them), retrying as the module says; a 4xx/5xx answer
        raises ApiError, no answer at all Unreachable."""
        kwargs.setdefault("timeout", self.timeout)
        repeatable = method.upper() in IDEMPOTENT or "Idempotency-Key" in (kwargs.get("headers") or {})
        attempt = 0
        while True:
            try:
                response = self.http.request(method, self.base + path, **kwargs)
            except requests.exceptions.RequestException as exc:
                if not repeatable or attempt >= self.retries or not isinstance(
                        exc, (requests.exceptions.ConnectionError, requests.exceptions.Timeout)):
                    raise self._unreachable(exc) from None
                time.sleep(retry_delay(attempt, None, self.backoff, self.max_wait))
            else:
                if response.status_code == 503 and attempt < self.retries:
                    response.close()
                    time.sleep(retry_delay(attempt, response.headers.get("Retry-After"), self.backoff, self.max_wait))
                elif response.status_code >= 400:
                    raise ApiError.from_response(response)
                else:
                    return response
            attempt += 1

    def _unreachable(self, exc: requests.exceptions.RequestException) -> Unreachable:
        if isinstance(exc, requests.exceptions.Timeout):
            return Unreachable(f"the convtrain service at {self.base} did not answer within {self.timeout} s")
        if isinstance(exc, requests.exceptions.ConnectionError):
            return Unreachable(f"cannot connect to the convtrain service at {self.base} "
                               f"(is `convtrain serve` running there?): {_reason(exc)}")
        return Unreachable(f"request to {self.base} failed: {exc}")

    def json(self, method: str, path: str, **kwargs) -> Any:
        """The JSON body of a successful answer."""
        response = self.request(method, path, **kwargs)
        try:
            return response.json()
        except ValueError:
            raise ApiError(f"{method} {path}: the service answered {response.status_code} with a body that is "
                           f"not JSON", status=response.status_code) from None

    def pages(self, path: str, key: str, params: dict) -> Iterator[dict]:
        """Every item of a listing (`{key: [...], "next": cursor}`), page after page, following the cursor."""
        params = {k: v for k, v in params.items() if v is not None}
        while True:
            page = self.json("GET", path, params=params)
            yield from page[key]
            if not page.get("next"):
                return
            params["cursor"] = page["next"]
