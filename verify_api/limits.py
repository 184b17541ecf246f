"""Rate limits on the public endpoints: fixed windows of the `limits` library (its
storage, keys and increment script), Redis-backed, failing open.

Per IP and per client id, a minute and an hour each. Shoppers behind one carrier NAT
share an IP (thousands of phones on one address), so the IP limit is sized for that and a
request without a client id counts in the IP's windows only (not in a per-client window
keyed by its IP, which would make every id-less shopper behind the NAT one client); the
per-client limit is tighter; a client guessing codes is throttled for the hour by the
scan script as well. The read-only lookups of a code (`GET /api/v1/codes/<code>`, the
result page `GET /c/<code>`) count in the verify's own windows: spreading guesses over
the three paths buys nothing. `RATE_LIMITS=off` disables all of it (black-box test
runs, benchmarks).

Every window a request counts goes to Redis in one pipelined round trip. Flask-Limiter,
used before, made one round trip per window (four per verify) and spent as much CPU
again on its per-request bookkeeping: with it a verify as deployed served 0.56 × the
same verify unlimited (`make bench`, run (i)). What it did for us is the few lines of
glue below; the counting is still the `limits` library's.

A verify and a GET of a code (IN_SCAN) do better: when the scan store is the limits' Redis
(one server), the hook leaves their windows to the verify, and the scan script counts them
first in the verify's own round trip (same keys, same INCRBY-then-EXPIRE, every window
counted, refusals too); over a window, the script records nothing and the verify answers
429 `rate_limited` with the longest exceeded window's TTL as `Retry-After`. A verify that
never reaches the script (an invalid code, the scan store away) counts them on its own
first (`count_now`); a request refused before its verify takes them (a bad body, a code too
long, the database away) counts them before its answer (`counted_if_refused`), so one over
its windows is answered 429 whatever its body, as where the windows are counted first.

Redis failing or slow (50 ms): this worker counts in its own memory for a few seconds and
then tries Redis again, so an outage neither refuses verifies nor lifts every limit (the
storage and that fallback are built by the composition root: webapp/limits.py).
No X-RateLimit-* headers (each would cost a read per answer); a refused request says when
to come back: `Retry-After` of the longest window it exceeded, read only on refusal.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, NamedTuple, Protocol

from flask import Blueprint, Flask, Response, request
from limits import RateLimitItem, parse_many
from werkzeug.exceptions import HTTPException

from domain.errors import DomainError
from verify_api.problems import problem
from verify_api.request_input import WINDOWS, bearer_token, json_body_or_none

# Sized for carrier NAT: one address in front of thousands of shoppers (issue 14).
IP_LIMIT = "1200/minute;30000/hour"
CLIENT_LIMIT = "60/minute;1000/hour"
UPLOAD_LIMIT = "20/minute;300/hour"
KEY_PREFIX = "rl"
# Read-only lookups of a code share the verify's windows (and its enumeration budget).
SHARED_WINDOWS = {
    "public.get_code": "public.verify",
    "web.result": "public.verify",
    "web.search": "public.verify",
    "web.empty_code": "public.verify",
    "web.report": "web.report",  # the web page's report form: the upload limit, per IP
}


def _ip() -> str:
    return ip_of(request.remote_addr)


def ip_of(remote_addr: str | None) -> str:
    return remote_addr or "-"


def client_key() -> str:
    # Parsed once for the request: the view reads the same body next.
    body = json_body_or_none()
    client = body.get("client") if isinstance(body, dict) else None
    if (
        not isinstance(client, str) or not client
    ) and request.mimetype == "application/x-www-form-urlencoded":
        # Never multipart: parsing a photo upload here would happen before the upload's
        # own size limit is set (the view sets it); uploads are limited per IP.
        client = request.form.get("client") or ""
    return key_of(client, _ip())


def key_of(client: Any, ip: str) -> str:
    """A request's rate-limit key: its client id, else (none, or not a string) its IP."""
    # Without a client id the request is limited by its IP alone.
    return f"c:{client[:128]}" if isinstance(client, str) and client else f"ip:{ip}"


def bearer_key() -> str:
    """A session's own key: a hash of its bearer token (the token itself is a secret and
    never becomes a Redis key), else the IP."""
    token = bearer_token()
    if token is None:
        return f"ip:{_ip()}"
    return "b:" + hashlib.blake2b(token.encode(), digest_size=12).hexdigest()


Check = tuple[RateLimitItem, str, str]  # (window, scope, key)


class WindowCounter(Protocol):
    """Counts a request in its windows (webapp.limits.RateLimits, built by the root)."""

    def hit(self, checks: Sequence[Check]) -> tuple[list[Check], Any]: ...
    def retry_after(self, exceeded: Sequence[Check], limiter: Any) -> int: ...
    # The windows left to the verify's scan script (domain.ports.RateWindows with a `used`
    # flag), or None: count them now.
    def windows(self, checks: Sequence[Check]) -> Any: ...


# The public API's photo upload: limited per IP with the upload limit (webapp.app).
PUBLIC_UPLOAD = "public.scan_photo"
# Endpoints whose windows the verify's scan script counts, in the verify's own round trip
# (when the scan store is the limits' Redis): the request hands them on (WINDOWS).
IN_SCAN = frozenset({"public.verify", "public.get_code"})


# The limits parsed once per spelling (read at call time: tests tighten them).
_parsed = functools.lru_cache(maxsize=16)(parse_many)


def checks_for(endpoint: str, ip: str, key: str, upload_endpoint: str) -> list[Check]:
    """The windows a request to `endpoint` (its shared name, SHARED_WINDOWS) counts in: per
    IP, and per client `key` when it has one (`key` is `ip:<ip>` without); an upload per IP
    with the upload limit."""
    ip_key = "ip:" + ip
    if endpoint == upload_endpoint:
        return [(item, endpoint, ip_key) for item in _parsed(UPLOAD_LIMIT)]
    checks = [(item, endpoint, ip_key) for item in _parsed(IP_LIMIT)]
    if key != ip_key:  # without a client id, the IP's windows alone
        client_scope = endpoint + ":client"
        checks += [(item, client_scope, key) for item in _parsed(CLIENT_LIMIT)]
    return checks


class Refusal(NamedTuple):
    """A request over one of its windows: the 429's detail and Retry-After."""

    detail: str
    retry_after: int


def admit(limits: WindowCounter, checks: Sequence[Check], *, in_scan: bool) -> Any:
    """The request's windows handed on to the verify's scan script (`in_scan`, and the
    store takes them: domain.ports.RateWindows), else counted now: a Refusal when one is
    exceeded, else None."""
    if in_scan:
        windows = limits.windows(checks)
        if windows is not None:
            return windows
    exceeded, limiter = limits.hit(checks)
    if not exceeded:
        return None
    detail = f"too many requests: {'; '.join(str(c[0]) for c in exceeded)}"
    return Refusal(detail, limits.retry_after(exceeded, limiter))


@contextmanager
def counted_if_refused(windows: Any) -> Iterator[None]:
    """Around a verify's work, whichever lane serves it: a refusal (a problem answer) raised
    before the verify took the windows handed on to it counts them now, before the answer
    is made, and becomes 429 `rate_limited` when one is exceeded. Otherwise a client over
    its windows would be told 400 for ever: `count_unused` counts after the answer and
    never refuses. Counted once: `count_now` marks them used."""
    try:
        yield
    except (DomainError, HTTPException):
        if windows is not None and not windows.used:
            windows.count_now()  # raises TooManyRequests over a window
        raise


def count_unused(limits: WindowCounter, windows: Any) -> None:
    """Windows handed on to a verify that never took them nor was refused with a problem
    (an unexpected error: its 500 stands, logged): counted now; the answer stands."""
    if windows is not None and not windows.used:
        limits.hit(windows.checks)


def init_limits(
    app: Flask,
    limits: WindowCounter,
    blueprints: Sequence[tuple[Blueprint, Callable[[], str], str]],
) -> None:
    """Limit each blueprint per IP and per the key its function gives; its upload endpoint
    (the third item) per IP with the upload limit instead."""
    app.extensions["verify_limits"] = limits

    def limited(
        scope: str, client_of: Callable[[], str], upload_endpoint: str, *, only_shared: bool = False
    ) -> Callable[[], Response | None]:
        def check() -> Response | None:
            # Each endpoint has its own windows (as Flask-Limiter scoped them): a shopper's
            # verify does not spend their history lookups.
            endpoint = request.endpoint or scope
            if only_shared and endpoint not in SHARED_WINDOWS:
                return None
            endpoint = SHARED_WINDOWS.get(endpoint, endpoint)
            ip = _ip()
            key = "" if endpoint == upload_endpoint else client_of()
            got = admit(
                limits, checks_for(endpoint, ip, key, upload_endpoint), in_scan=request.endpoint in IN_SCAN
            )
            if isinstance(got, Refusal):
                return problem(429, "rate_limited", got.detail, headers={"Retry-After": str(got.retry_after)})
            if got is not None:
                request.environ[WINDOWS] = got
            return None

        return check

    @app.after_request
    def _count_unused(response: Response) -> Response:
        count_unused(limits, request.environ.get(WINDOWS))
        return response

    for bp, client_of, upload_endpoint in blueprints:
        # First among the blueprint's hooks: a request refused by its own checks (a bad
        # session token) is still counted.
        app.before_request_funcs.setdefault(bp.name, []).insert(
            0, limited(bp.name, client_of, upload_endpoint)
        )
    if "web" in app.blueprints:
        # The result page: only its lookup of a code is limited (the home page is not).
        app.before_request_funcs.setdefault("web", []).insert(
            0, limited("web", client_key, "web.report", only_shared=True)
        )
