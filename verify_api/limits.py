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

Redis failing or slow (50 ms): this worker counts in its own memory for a few seconds and
then tries Redis again, so an outage neither refuses verifies nor lifts every limit.
No X-RateLimit-* headers (each would cost a read per answer); a refused request says when
to come back: `Retry-After` of the longest window it exceeded, read only on refusal.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

import redis
from flask import Blueprint, Flask, Response, request
from limits import RateLimitItem, parse_many
from limits.storage import MemoryStorage, RedisClusterStorage, RedisStorage, storage_from_string
from limits.strategies import FixedWindowRateLimiter
from redis.backoff import NoBackoff
from redis.retry import Retry

from cache.redis_cache import is_cluster
from domain import metrics
from verify_api.problems import problem
from verify_api.request_input import bearer_token, json_body_or_none
from verify_api.settings import Settings

log = logging.getLogger(__name__)

# Sized for carrier NAT: one address in front of thousands of shoppers (issue 14).
IP_LIMIT = "1200/minute;30000/hour"
CLIENT_LIMIT = "60/minute;1000/hour"
UPLOAD_LIMIT = "20/minute;300/hour"
KEY_PREFIX = "rl"
_DOWN_FOR_S = 5.0  # after a Redis error, count in memory this long before trying again
# Read-only lookups of a code share the verify's windows (and its enumeration budget).
SHARED_WINDOWS = {"public.get_code": "public.verify", "web.result": "public.verify"}


def _ip() -> str:
    return request.remote_addr or "-"


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
    if not isinstance(client, str):
        client = ""
    # Without a client id the request is limited by its IP alone.
    return f"c:{client[:128]}" if client else f"ip:{_ip()}"


def bearer_key() -> str:
    """A session's own key: a hash of its bearer token (the token itself is a secret and
    never becomes a Redis key), else the IP."""
    token = bearer_token()
    if token is None:
        return f"ip:{_ip()}"
    return "b:" + hashlib.blake2b(token.encode(), digest_size=12).hexdigest()


Check = tuple[RateLimitItem, str, str]  # (window, scope, key)


class RateLimits:
    """Counts a request in every window that applies to it; `hit` returns the windows
    exceeded (every window is counted even past a refusal, so hammering on through a 429
    spends the hour too) and the limiter that counted them."""

    def __init__(self, settings: Settings) -> None:
        self.fallback = FixedWindowRateLimiter(MemoryStorage())
        self.url = settings.redis_url
        self.options: dict[str, Any] = {"socket_timeout": 0.05, "socket_connect_timeout": 0.1}
        if is_cluster(self.url):
            # The cluster client's default is ten retries with backoff: ~0.6 s per hit on a
            # hung node. Fail fast (and open), as on one server.
            self.options["retry"] = Retry(NoBackoff(), 0)
        # Built on first use: a cluster client contacts its nodes when it is made, and a
        # Redis that is away at start must not stop the app from starting.
        self._storage: RedisStorage | None = None
        self._down_until = 0.0

    def _redis(self) -> tuple[RedisStorage, FixedWindowRateLimiter] | None:
        if not self.url or time.monotonic() < self._down_until:
            return None
        if self._storage is None:
            storage = storage_from_string(self.url, **self.options)
            assert isinstance(storage, RedisStorage)
            self._storage = storage
            self._limiter = FixedWindowRateLimiter(storage)
        return self._storage, self._limiter

    def hit(self, checks: Sequence[Check]) -> tuple[list[Check], FixedWindowRateLimiter]:
        try:
            found = self._redis()
            if found is not None:
                storage, limiter = found
                if isinstance(storage, RedisClusterStorage):
                    # A cluster spreads the keys over nodes: each window is its own round trip.
                    exceeded = [c for c in checks if not limiter.hit(c[0], KEY_PREFIX, c[1], c[2])]
                else:
                    counts = self._incr(storage, checks)
                    exceeded = [c for c, n in zip(checks, counts, strict=True) if n > c[0].amount]
                return exceeded, limiter
        except Exception:  # whatever the storage raises, limits fail open
            metrics.incr("rate_limit_storage_errors")
            log.warning(
                "rate limit storage failed; counting in this worker for %ss", _DOWN_FOR_S, exc_info=True
            )
            self._down_until = time.monotonic() + _DOWN_FOR_S
        return [c for c in checks if not self.fallback.hit(c[0], KEY_PREFIX, c[1], c[2])], self.fallback

    @staticmethod
    def _incr(storage: RedisStorage, checks: Sequence[Check]) -> list[int]:
        client: Any = storage.get_connection()
        script = storage.lua_incr_expire
        for attempt in (1, 2):
            # EVALSHA queued by hand: redis-py's Script in a pipeline asks SCRIPT EXISTS first,
            # a round trip on every call.
            pipe = client.pipeline(transaction=False)
            for item, scope, key in checks:
                storage_key = storage.prefixed_key(item.key_for(KEY_PREFIX, scope, key))
                pipe.evalsha(script.sha, 1, storage_key, item.get_expiry(), 1)
            try:
                return [int(n) for n in pipe.execute()]
            except redis.exceptions.NoScriptError:
                # Redis restarted and lost its scripts; nothing was counted. Load and retry.
                if attempt == 2:
                    raise
                client.script_load(storage.SCRIPT_INCR_EXPIRE)
        raise AssertionError("unreachable")

    @staticmethod
    def retry_after(exceeded: Sequence[Check], limiter: FixedWindowRateLimiter) -> int:
        """Seconds until the longest exceeded window resets, read from the store that
        counted them; a minute when it cannot say."""
        try:
            reset = max(
                limiter.get_window_stats(item, KEY_PREFIX, scope, key).reset_time
                for item, scope, key in exceeded
            )
            return max(1, int(reset - time.time()))
        except Exception:  # the refusal stands; only its hint is a guess
            log.warning("rate limit storage unreachable; Retry-After guessed", exc_info=True)
            return 60


def init_limits(
    app: Flask,
    settings: Settings,
    blueprints: Sequence[tuple[Blueprint, Callable[[], str], str]],
) -> RateLimits | None:
    """Limit each blueprint per IP and per the key its function gives; its upload endpoint
    (the third item) per IP with the upload limit instead."""
    if not settings.rate_limits:
        return None
    limits = RateLimits(settings)
    app.extensions["verify_limits"] = limits
    ip_items, client_items, upload_items = (parse_many(x) for x in (IP_LIMIT, CLIENT_LIMIT, UPLOAD_LIMIT))

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
            ip = "ip:" + _ip()
            if endpoint == upload_endpoint:
                checks = [(item, endpoint, ip) for item in upload_items]
            else:
                key = client_of()
                checks = [(item, endpoint, ip) for item in ip_items]
                if key != ip:  # without a client id, the IP's windows alone
                    checks += [(item, endpoint + ":client", key) for item in client_items]
            exceeded, limiter = limits.hit(checks)
            if not exceeded:
                return None
            return problem(
                429,
                "rate_limited",
                f"too many requests: {'; '.join(str(c[0]) for c in exceeded)}",
                headers={"Retry-After": str(limits.retry_after(exceeded, limiter))},
            )

        return check

    for bp, client_of, upload_endpoint in blueprints:
        # First among the blueprint's hooks: a request refused by its own checks (a bad
        # session token) is still counted.
        app.before_request_funcs.setdefault(bp.name, []).insert(
            0, limited(bp.name, client_of, upload_endpoint)
        )
    if "web" in app.blueprints:
        # The result page: only its lookup of a code is limited (the home page is not).
        app.before_request_funcs.setdefault("web", []).insert(
            0, limited("web", client_key, "", only_shared=True)
        )
    return limits
