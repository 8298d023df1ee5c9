"""Every error the API answers, as application/problem+json (RFC 9457), from one handler per kind."""

from __future__ import annotations

import json

import redis
from flask import Flask, Response, current_app, request
from werkzeug.exceptions import HTTPException

from service.errors import ConvtrainError, Unavailable

PROBLEM = "application/problem+json"


def problem_response(error: ConvtrainError) -> Response:
    """The error as a problem+json response, with its headers."""
    body = {"type": "about:blank", "title": error.title, "status": error.status}
    if error.detail:
        body["detail"] = error.detail
    fields = error.field_errors()
    if fields is not None:
        body["errors"] = fields
    body.update(error.extra)
    if request:
        body["instance"] = request.path
    response = Response(json.dumps(body), status=error.status, mimetype=PROBLEM)
    for k, v in error.headers.items():
        response.headers[k] = v
    return response


def register(app: Flask) -> None:
    @app.errorhandler(ConvtrainError)
    def _convtrain(e: ConvtrainError):
        return problem_response(e)

    @app.errorhandler(HTTPException)
    def _http(e: HTTPException):
        headers = {}
        if e.code == 405 and e.valid_methods:
            headers["Allow"] = ", ".join(e.valid_methods)
        detail = e.description or ""
        if e.code == 413:
            limit = request.max_content_length or current_app.config["MAX_CONTENT_LENGTH"]
            detail = f"the body is larger than the limit of {limit} bytes"
        return problem_response(ConvtrainError(detail, headers=headers, title=e.name, status=e.code or 500))

    @app.errorhandler(redis.exceptions.ConnectionError)
    @app.errorhandler(redis.exceptions.TimeoutError)
    @app.errorhandler(redis.exceptions.BusyLoadingError)
    def _redis_down(e):
        current_app.logger.warning("redis unavailable: %s", e)
        return problem_response(Unavailable("the job store (Redis) is unreachable; try again shortly"))

    @app.errorhandler(Exception)
    def _internal(e: Exception):
        current_app.logger.exception("unhandled error")
        return problem_response(ConvtrainError("an unexpected error; it has been logged"))
