"""Rate limits on the public endpoints (Flask-Limiter, Redis-backed, failing open).

Per IP and per client id. Shoppers behind one carrier NAT share an IP, so the IP limit
is generous; the per-client limit is tighter. A Redis outage must not turn into refused
verifies: errors are swallowed (fail open) and counted by the limiter's in-memory
fallback. `RATE_LIMITS=off` disables all of it (black-box test runs, benchmarks).

No X-RateLimit-* headers: computing them costs two more Redis round trips on every
answer (measured: with them, rate limits took 47 % of verify throughput). A refused
request still says when to come back: `Retry-After` from the longest window it exceeded.
"""

from __future__ import annotations

import hashlib
import logging
import time
from typing import Any, cast

from flask import Flask, Response, request
from flask_limiter import Limiter, RateLimitExceeded
from redis.backoff import NoBackoff
from redis.retry import Retry

from cache.redis_cache import is_cluster
from verify_api.problems import problem
from verify_api.settings import Settings

log = logging.getLogger(__name__)

IP_LIMIT = "300/minute;5000/hour"
CLIENT_LIMIT = "60/minute;1000/hour"
UPLOAD_LIMIT = "20/minute;300/hour"


def _ip() -> str:
    return request.remote_addr or "-"


def client_key() -> str:
    body = request.get_json(silent=True) if request.is_json else None
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
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return f"ip:{_ip()}"
    return "b:" + hashlib.blake2b(token.strip().encode(), digest_size=12).hexdigest()


def init_limiter(app: Flask, settings: Settings) -> Limiter:
    storage = settings.redis_url or "memory://"
    options: dict[str, Any] = (
        {"socket_timeout": 0.05, "socket_connect_timeout": 0.1} if settings.redis_url else {}
    )
    if is_cluster(settings.redis_url):
        # The cluster client's default is ten retries with backoff: ~0.6 s per hit on a
        # hung node. Fail fast (and open), as on one server.
        options["retry"] = Retry(NoBackoff(), 0)
    limiter = Limiter(
        _ip,
        app=app,
        storage_uri=storage,
        storage_options=cast(Any, options),
        strategy="fixed-window",
        swallow_errors=True,
        in_memory_fallback_enabled=bool(settings.redis_url),
        headers_enabled=False,
        key_prefix="rl",
        # Every window is counted even after one is exceeded, so the refusal names the
        # longest window exceeded (its Retry-After is when the client may really come
        # back) and hammering on through a refusal spends the longer windows too.
        fail_on_first_breach=False,
        enabled=settings.rate_limits,
    )
    app.extensions["verify_limiter"] = limiter

    @app.errorhandler(RateLimitExceeded)
    def _limited(exc: RateLimitExceeded) -> Response:
        return problem(
            429,
            "rate_limited",
            exc.description or "too many requests",
            headers={"Retry-After": _retry_after(limiter)},
        )

    return limiter


def _retry_after(limiter: Limiter) -> str:
    """Seconds until the longest window this request exceeded resets (with every window
    counted, that is the limiter's current limit; one storage read, only on a refusal); a
    minute when the storage cannot say."""
    try:
        current = limiter.current_limit
        if current is not None:
            return str(max(1, int(current.reset_at - time.time())))
    except Exception:  # the storage is down: the limiter fails open anyway
        log.warning("rate limit storage unreachable; Retry-After guessed", exc_info=True)
    return "60"
