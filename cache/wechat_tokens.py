"""WeChat access-token storage shared by every worker, refreshed by one holder at a time.

Each refresh invalidates the previous token at WeChat (the plain /cgi-bin/token call), so
workers fetching on their own knock each other out (errcode 40001). Here a token lives
in Redis with its expiry; a worker that finds it missing, stale or rejected takes a
Redis lock, re-reads (someone may have just refreshed it) and only then fetches.

The lock is an optimization, not a guarantee: the token comes from the stable-token call,
which does not invalidate the one other workers hold, so a worker that cannot use the
lock (Redis away, the lock held past the wait, the lock key gone before release) fetches
or keeps its token anyway instead of failing the shopper's request.
"""

from __future__ import annotations

import logging
import threading
import time

import redis
from redis.exceptions import LockError, LockNotOwnedError

from cache import keys
from domain.ports import TokenFetch

log = logging.getLogger(__name__)

MARGIN_S = 300  # refresh five minutes before WeChat's expiry
LOCK_S = 15  # the lock expires on its own if its holder dies mid-fetch
WAIT_S = 10  # how long a worker waits for another's fetch before fetching itself


class RedisTokenStore:
    def __init__(self, client: redis.Redis, prefix: str = keys.WECHAT_TOKEN) -> None:
        self.client = client
        self.key = prefix + "value"
        self.lock_key = prefix + "lock"

    def get(self) -> str | None:
        try:
            value = self.client.get(self.key)
        except (redis.RedisError, OSError):
            return None  # Redis away: fetch a token (refresh) rather than fail the call
        return value.decode() if isinstance(value, bytes) else None

    def refresh(self, fetch: TokenFetch, *, rejected: str | None = None) -> str:
        """A token other than `rejected`: someone else's fresh one, or one fetched under the lock."""
        lock = self.client.lock(self.lock_key, timeout=LOCK_S, blocking_timeout=WAIT_S)
        try:
            locked = lock.acquire()
        except (redis.RedisError, OSError):
            log.warning("wechat token lock unavailable; fetching without it")
            return self._fetch(fetch, store=False)
        if not locked:  # another worker held it past WAIT_S: use its token, or fetch our own
            current = self.get()
            return current if current is not None and current != rejected else self._fetch(fetch)
        try:
            current = self.get()
            if current is not None and current != rejected:
                return current
            return self._fetch(fetch)
        finally:
            try:
                lock.release()
            except LockNotOwnedError:
                # The key expired (a fetch slower than LOCK_S) or was deleted meanwhile: a
                # vanished lock is a released one, and the token we stored is good.
                log.warning("wechat token lock was gone at release")
            except (LockError, redis.RedisError, OSError):
                log.warning("wechat token lock not released; it expires in %ss", LOCK_S)

    def _fetch(self, fetch: TokenFetch, *, store: bool = True) -> str:
        token, expires_in = fetch()
        if store:
            try:
                self.client.set(self.key, token, ex=max(60, expires_in - MARGIN_S))
            except (redis.RedisError, OSError):
                log.warning("wechat token not shared: Redis refused it")
        return token


class MemoryTokenStore:
    """The embedded default's twin: one process, a thread lock."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._token: str | None = None
        self._until = 0.0

    def get(self) -> str | None:
        return self._token if self._token and time.monotonic() < self._until else None

    def refresh(self, fetch: TokenFetch, *, rejected: str | None = None) -> str:
        with self._lock:
            current = self.get()
            if current is not None and current != rejected:
                return current
            token, expires_in = fetch()
            self._token, self._until = token, time.monotonic() + max(60, expires_in - MARGIN_S)
            return token
