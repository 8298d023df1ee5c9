"""Errors as application/problem+json (RFC 9457), from one place."""

from __future__ import annotations

import json

import redis
from flask import Flask, Response, current_app, request
from werkzeug.exceptions import HTTPException

from service.spec.netspec import InvalidSpec

PROBLEM = "application/problem+json"


class Problem(Exception):
    """An error response: status, title, detail, and optional field errors and headers."""

    def __init__(self, status: int, title: str, detail: str = "", *, errors=None, headers=None, **extra):
        super().__init__(detail or title)
        self.status, self.title, self.detail = status, title, detail
        self.errors, self.headers, self.extra = errors, headers or {}, extra


def problem_response(status: int, title: str, detail: str = "", *, errors=None, headers=None, **extra) -> Response:
    body = {"type": "about:blank", "title": title, "status": status}
    if detail:
        body["detail"] = detail
    if errors is not None:
        body["errors"] = errors
    body.update(extra)
    if request:
        body["instance"] = request.path
    response = Response(json.dumps(body), status=status, mimetype=PROBLEM)
    for k, v in (headers or {}).items():
        response.headers[k] = v
    return response


def register(app: Flask) -> None:
    @app.errorhandler(Problem)
    def _problem(e: Problem):
        return problem_response(e.status, e.title, e.detail, errors=e.errors, headers=e.headers, **e.extra)

    @app.errorhandler(InvalidSpec)
    def _invalid(e: InvalidSpec):
        return problem_response(422, "Invalid job request", f"{len(e.errors)} problem(s) found",
                                errors=[x.as_dict() for x in e.errors])

    @app.errorhandler(HTTPException)
    def _http(e: HTTPException):
        headers = {}
        if e.code == 405 and e.valid_methods:
            headers["Allow"] = ", ".join(e.valid_methods)
        detail = e.description or ""
        if e.code == 413:
            limit = request.max_content_length or current_app.config["MAX_CONTENT_LENGTH"]
            detail = f"the body is larger than the limit of {limit} bytes"
        return problem_response(e.code or 500, e.name, detail, headers=headers)

    @app.errorhandler(redis.exceptions.ConnectionError)
    @app.errorhandler(redis.exceptions.TimeoutError)
    @app.errorhandler(redis.exceptions.BusyLoadingError)
    def _redis_down(e):
        current_app.logger.warning("redis unavailable: %s", e)
        return problem_response(503, "Service Unavailable", "the job store (Redis) is unreachable; try again shortly",
                                headers={"Retry-After": "5"})

    @app.errorhandler(Exception)
    def _internal(e: Exception):
        current_app.logger.exception("unhandled error")
        return problem_response(500, "Internal Server Error", "an unexpected error; it has been logged")
