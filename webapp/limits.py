"""The rate-limit storage: the `limits` library's Redis storage (its increment script),
built here in the composition root, with an in-memory fallback while Redis fails. The
request-side glue (which windows a request counts in, the 429 answer) is
verify_api/limits.py; see its docstring for the limits themselves and why one round trip.

Redis failing or slow (50 ms): this worker counts in its own memory for a few seconds and
then tries Redis again, so an outage neither refuses verifies nor lifts every limit.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import time
from collections.abc import Sequence
from typing import Any

import redis
from limits import RateLimitItem, parse_many
from limits.storage import MemoryStorage, RedisClusterStorage, RedisStorage, storage_from_string
from limits.strategies import FixedWindowRateLimiter
from redis.backoff import NoBackoff
from redis.retry import Retry

from cache.redis_cache import is_cluster
from domain import metrics
from domain.errors import TooManyRequests
from verify_api.limits import KEY_PREFIX, Check

log = logging.getLogger(__name__)

_SLOT = "\x00"  # stands for the request's key when a window's name is laid out (_layout)
_DOWN_FOR_S = 5.0  # after a Redis error, count in memory this long before trying again


class RateLimits:
    """Counts a request in every window that applies to it; `hit` returns the windows
    exceeded (every window is counted even past a refusal, so hammering on through a 429
    spends the hour too) and the limiter that counted them."""

    def __init__(self, redis_url: str | None, *, in_scan_store: bool = False) -> None:
        self.fallback = FixedWindowRateLimiter(MemoryStorage())
        self.url = redis_url
        # The scan store is this Redis: a verify's windows are counted by its scan script, in
        # the verify's own round trip (one server), or in the round trip of its gate (a
        # cluster: anomaly.state), not on their own (see `windows`).
        self.in_scan_store = in_scan_store
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

    def windows(self, checks: Sequence[Check]) -> Windows | None:
        """The checks as the scan script counts them (domain.ports.RateWindows), or None
        when they must be counted now: the scan store is elsewhere, or this worker is
        counting in memory after a Redis error."""
        if not self.in_scan_store or time.monotonic() < self._down_until:
            return None
        try:
            found = self._redis()
        except Exception:
            return None
        if found is None:
            return None
        storage = found[0]
        lines = []
        for item, scope, key in checks:
            if "\n" in key:  # the script reads one window per line
                return None
            head, tail = self._layout(storage, item, scope)
            lines.append(f"{head}{key}{tail}")
        return Windows("\n".join(lines), self, checks)

    @staticmethod
    @functools.lru_cache(maxsize=256)
    def _layout(storage: RedisStorage, item: RateLimitItem, scope: str) -> tuple[str, str]:
        """A window's line for the scan script around its key: the storage's key name
        (the library's own `key_for` and prefix, asked once per window and scope) before it;
        after it, the rest of the name, the window's expiry and its amount."""
        name = storage.prefixed_key(item.key_for(KEY_PREFIX, scope, _SLOT))
        head, _, rest = name.partition(_SLOT)
        return head, f"{rest} {item.get_expiry()} {item.amount}"

    def count_now(self, checks: Sequence[Check]) -> None:
        """Count the checks on their own; TooManyRequests when one is exceeded."""
        exceeded, limiter = self.hit(checks)
        if exceeded:
            raise TooManyRequests(
                f"too many requests: {'; '.join(str(c[0]) for c in exceeded)}",
                code="rate_limited",
                retry_after_s=self.retry_after(exceeded, limiter),
            )

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


class Windows:
    """A request's windows left to the verify's scan script (domain.ports.RateWindows).
    `used`: the verify took them (its scan script counted them, or it called `count_now`);
    otherwise the entrypoint counts them after the answer (verify_api.limits)."""

    def __init__(self, payload: str, limits: RateLimits, checks: Sequence[Check]) -> None:
        self._payload = payload
        self.limits = limits
        self.checks = checks
        self.used = False

    @property
    def payload(self) -> str:
        self.used = True
        return self._payload

    def count_now(self) -> None:
        self.used = True
        self.limits.count_now(self.checks)

    def release(self) -> None:
        self.used = False


class SignInThrottle:
    """Failed dashboard sign-ins, counted per account and per IP in fixed windows of the
    `limits` library (Redis when there is one, else this process; Redis failing counts in
    this process for a few seconds, as RateLimits does). Only failures are counted; a
    sign-in is refused while any of its windows is full, whatever the password. Always on,
    even with RATE_LIMITS=off: that switch is for the public API's black-box runs."""

    ACCOUNT = "5/minute;20/hour"
    IP = "30/minute;200/hour"

    def __init__(self, redis_url: str | None) -> None:
        self.limits = RateLimits(redis_url)
        self.items = {"account": parse_many(self.ACCOUNT), "ip": parse_many(self.IP)}

    def _checks(self, account: str, ip: str) -> list[Check]:
        keys = {"account": account, "ip": ip}
        return [
            (item, f"signin:{kind}", hashlib.blake2b(keys[kind].encode(), digest_size=12).hexdigest())
            for kind, items in self.items.items()
            for item in items
        ]

    def _limiter(self) -> FixedWindowRateLimiter:
        try:
            found = self.limits._redis()
        except Exception:
            found = None
        return found[1] if found is not None else self.limits.fallback

    def retry_after(self, account: str, ip: str) -> int | None:
        """Seconds until a sign-in for this account from this IP may be tried; None: now."""
        checks = self._checks(account, ip)
        try:
            limiter = self._limiter()
            full = [c for c in checks if not limiter.test(c[0], KEY_PREFIX, c[1], c[2])]
        except Exception:
            metrics.incr("rate_limit_storage_errors")
            self.limits._down_until = time.monotonic() + _DOWN_FOR_S
            limiter = self.limits.fallback
            full = [c for c in checks if not limiter.test(c[0], KEY_PREFIX, c[1], c[2])]
        return self.limits.retry_after(full, limiter) if full else None

    def failed(self, account: str, ip: str) -> None:
        self.limits.hit(self._checks(account, ip))
