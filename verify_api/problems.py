"""RFC 9457 problem details: every error this service answers, in one shape, mapped in one place."""

from __future__ import annotations

import logging
from typing import Any

import orjson
from flask import Flask, Response, request
from werkzeug.exceptions import HTTPException

from domain.errors import DomainError, TooManyRequests, Unavailable

log = logging.getLogger(__name__)

_TITLES = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    413: "Content Too Large",
    415: "Unsupported Media Type",
    422: "Unprocessable Content",
    429: "Too Many Requests",
    500: "Internal Server Error",
    501: "Not Implemented",
    502: "Bad Gateway",
    503: "Service Unavailable",
}


PROBLEM_TYPE = "application/problem+json"
# What an unexpected error answers (its code and detail), and logs with its traceback.
UNEXPECTED = ("internal_error", "an unexpected error occurred; it has been logged")
UNEXPECTED_LOG = "unhandled error"


def problem_json(status: int, code: str, detail: str, instance: str, **extra: Any) -> bytes:
    """The problem document itself (the Flask answer below and verify_api.lane send it)."""
    body = {
        "type": f"https://organic-verify.example/problems/{code}",
        "title": _TITLES.get(status, "Error"),
        "status": status,
        "code": code,
        "detail": detail,
        "instance": instance,
        **extra,
    }
    return orjson.dumps(body)


def problem(
    status: int, code: str, detail: str, *, headers: dict[str, str] | None = None, **extra: Any
) -> Response:
    resp = Response(
        problem_json(status, code, detail, request.path, **extra), status=status, mimetype=PROBLEM_TYPE
    )
    for name, value in (headers or {}).items():
        resp.headers[name] = value
    return resp


_STANDARD = frozenset({"type", "title", "status", "code", "detail", "instance", "headers"})


def domain_problem(exc: DomainError) -> tuple[dict[str, str], dict[str, Any]]:
    """A domain error's problem: its headers (Retry-After, WWW-Authenticate) and the
    members it adds to the document."""
    headers = {}
    if isinstance(exc, Unavailable):
        headers["Retry-After"] = str(exc.retry_after_s)
    if exc.status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="api"'
    if isinstance(exc, TooManyRequests):
        headers["Retry-After"] = str(exc.retry_after_s)
    return headers, {k: v for k, v in exc.members.items() if k not in _STANDARD}


def register(app: Flask) -> None:
    @app.errorhandler(DomainError)
    def _domain(exc: DomainError) -> Response:
        headers, extra = domain_problem(exc)
        return problem(exc.status, exc.code, exc.detail, headers=headers, **extra)

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException) -> Response:
        status = exc.code or 500
        code = (exc.name or "error").lower().replace(" ", "_")
        headers = {}
        if status == 405 and exc.valid_methods:  # type: ignore[attr-defined]
            headers["Allow"] = ", ".join(exc.valid_methods)  # type: ignore[attr-defined]
        if status == 429:
            headers["Retry-After"] = "60"
            code = "rate_limited"
        return problem(status, code, exc.description or exc.name, headers=headers)

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Response:
        log.exception(UNEXPECTED_LOG)
        return problem(500, *UNEXPECTED)
