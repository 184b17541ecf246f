"""The verify lane: POST /api/v1/verify and GET /api/v1/codes/{code} served as plain WSGI,
in front of Flask.

These two are nearly all of the service's traffic, and Flask's per-request machinery
(request context, URL matching, six app-wide hooks, a Response object and its header
bookkeeping) cost more CPU than the verify itself: measured in process with rate limits on,
each request its own IP, Flask's part of a verify was ~570 µs of ~1,400 (hooks ~290, the
rest its dispatch and response), the verify service ~650 (`bench/verify_budget.py`). The
lane does the same work with the same functions (verify_api.public's `verify_body` and
`code_lookup`, the rate limits' `checks_for`/`admit`/`count_unused`, the presenter, the
problem documents, the root's request stamp), so an answer is the same whichever lane made
it; it only skips what these two requests never need (sessions, CSRF, the dashboard's
sign-in cookie, templates).

Anything the lane is not sure of goes to Flask untouched: another method or path, a code
holding `/`, a body without a Content-Length or past the public 16 KB bound, a media type
other than `application/json`, a body orjson cannot read (a BOM, UTF-16: Flask's parser
reads those). The lane reads the body only when it will answer, or hands Flask a copy.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Callable, Iterable
from typing import Any

import orjson
from werkzeug.http import HTTP_STATUS_CODES

from domain.errors import DomainError, TooManyRequests
from domain.verdicts import pick_language
from services.catalog import Services
from verify_api.limits import (
    IN_SCAN,
    PUBLIC_UPLOAD,
    SHARED_WINDOWS,
    Refusal,
    WindowCounter,
    admit,
    checks_for,
    count_unused,
    ip_of,
    key_of,
)
from verify_api.presenter import answer_json
from verify_api.problems import PROBLEM_TYPE, UNEXPECTED, UNEXPECTED_LOG, domain_problem, problem_json
from verify_api.public import ANSWER_HEADERS, MAX_PUBLIC_BODY_BYTES, code_lookup, verify_body
from verify_api.request_input import MAX_DEPTH

log = logging.getLogger(__name__)

VERIFY_PATH = "/api/v1/verify"
CODES_PREFIX = "/api/v1/codes/"
# The Flask routes' templates, for the access log (the route, never the path).
VERIFY_ROUTE = VERIFY_PATH
CODES_ROUTE = CODES_PREFIX + "<path:code>"
_STATUS = {200: "200 OK", 400: "400 BAD REQUEST", 429: "429 TOO MANY REQUESTS"}
_ANSWER_HEADERS = [("Content-Type", "application/json"), *ANSWER_HEADERS.items()]

Finish = Callable[[dict[str, Any], str, str | None, int], str]
StartResponse = Callable[..., Any]


class VerifyLane:
    """WSGI middleware: the two verify requests it is sure of, else `app` (Flask)."""

    def __init__(
        self,
        app: Callable[[dict[str, Any], StartResponse], Iterable[bytes]],
        services: Services,
        limits: WindowCounter | None,
        *,
        finish: Finish,
        headers: list[tuple[str, str]],
    ) -> None:
        self.app = app
        self.services = services
        # None: rate limits are off (RATE_LIMITS=off).
        self.limits = limits
        # The root's stamp: request id, access log line, 5xx count; and the headers every
        # answer carries (the security headers).
        self.finish = finish
        self.headers = headers

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        method = environ.get("REQUEST_METHOD")
        path = environ.get("PATH_INFO", "")
        if method == "POST" and path == VERIFY_PATH:
            body = self._json(environ)
            if body is not _FLASK:
                return self._serve(environ, start_response, VERIFY_ROUTE, "public.verify", body, path)
        elif method == "GET" and path.startswith(CODES_PREFIX) and not _has_body(environ):
            # A GET with a body is Flask's: its size bound, and the client id it may carry
            # for the rate limits. A newline matches no route of Flask's: a 404 there.
            code = _decoded(path)[len(CODES_PREFIX) :]
            if code and "/" not in code and "\n" not in code:
                return self._serve(environ, start_response, CODES_ROUTE, "public.get_code", code, path)
        return self.app(environ, start_response)

    @staticmethod
    def _json(environ: dict[str, Any]) -> Any:
        """The request's JSON body, or _FLASK: let Flask serve it (and say what is wrong)."""
        mimetype = environ.get("CONTENT_TYPE", "").partition(";")[0].strip().lower()
        length = environ.get("CONTENT_LENGTH", "")
        if mimetype != "application/json" or not (length.isascii() and length.isdigit()):
            return _FLASK
        size = int(length)
        if size > MAX_PUBLIC_BODY_BYTES:
            return _FLASK  # Flask's 413 problem
        data = environ["wsgi.input"].read(size) if size else b""
        try:
            body = orjson.loads(data)
        except orjson.JSONDecodeError:
            body = _FLASK
        # Deep nesting is refused by Flask's reader (request_input.MAX_DEPTH): counted in C,
        # as there, and handed over when it might apply.
        if body is _FLASK or data.count(b"[") + data.count(b"{") > MAX_DEPTH:
            environ["wsgi.input"] = io.BytesIO(data)
            return _FLASK
        return body

    def _serve(
        self,
        environ: dict[str, Any],
        start_response: StartResponse,
        route: str,
        endpoint: str,
        given: Any,
        path: str,
    ) -> Iterable[bytes]:
        ip = environ.get("REMOTE_ADDR")
        windows = None
        status, headers = 200, _ANSWER_HEADERS
        try:
            if self.limits is not None:
                windows = self._admit(endpoint, ip, given)
            verify = self.services.verify.verify
            if endpoint == "public.verify":
                answer = verify_body(given, verify, ip, windows)
            else:
                answer = code_lookup(given, verify, ip, windows)
            out = orjson.dumps(answer_json(answer, pick_language(environ.get("HTTP_ACCEPT_LANGUAGE"))))
        except DomainError as exc:
            extra_headers, extra = domain_problem(exc)
            status, out = exc.status, problem_json(exc.status, exc.code, exc.detail, _decoded(path), **extra)
            headers = [("Content-Type", PROBLEM_TYPE), *extra_headers.items()]
        except Exception:
            log.exception(UNEXPECTED_LOG)
            status, out = 500, problem_json(500, *UNEXPECTED, _decoded(path))
            headers = [("Content-Type", PROBLEM_TYPE)]
        if self.limits is not None:
            try:
                count_unused(self.limits, windows)
            except Exception:  # as in Flask's after_request: the answer stands
                log.exception("counting unused rate-limit windows failed")
        rid = self.finish(environ, environ["REQUEST_METHOD"], route, status)
        start_response(
            _STATUS.get(status) or f"{status} {HTTP_STATUS_CODES.get(status, 'UNKNOWN').upper()}",
            [*headers, ("Content-Length", str(len(out))), ("X-Request-Id", rid), *self.headers],
        )
        return [out]

    def _admit(self, endpoint: str, ip: str | None, given: Any) -> Any:
        """The rate limits' hook for the lane (verify_api.limits.init_limits does the same
        for Flask's routes): windows handed to the verify, or a 429 problem raised."""
        client = given.get("client") if isinstance(given, dict) else None
        ip_text = ip_of(ip)
        assert self.limits is not None
        checks = checks_for(
            SHARED_WINDOWS.get(endpoint, endpoint), ip_text, key_of(client, ip_text), PUBLIC_UPLOAD
        )
        got = admit(self.limits, checks, in_scan=endpoint in IN_SCAN)
        if isinstance(got, Refusal):
            raise TooManyRequests(got.detail, code="rate_limited", retry_after_s=got.retry_after)
        return got


_FLASK = object()


def _decoded(path: str) -> str:
    # WSGI gives the path as latin-1 characters of its bytes; Flask decodes it as UTF-8
    # (werkzeug's decoding dance), for routing and for a problem's `instance`: as here.
    return path.encode("latin-1").decode("utf-8", "replace")


def _has_body(environ: dict[str, Any]) -> bool:
    return environ.get("CONTENT_LENGTH", "") not in ("", "0") or "HTTP_TRANSFER_ENCODING" in environ
