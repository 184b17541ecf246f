"""WeChat access-token storage shared by every worker, refreshed by one holder at a time.

Each refresh invalidates the previous token at WeChat (the plain /cgi-bin/token call), so
workers fetching on their own knock each other out (errcode 40001). Here a token lives
in Redis with its expiry; a worker that finds it missing, stale or rejected takes a
Redis lock, re-reads (someone may have just refreshed it) and only then fetches.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Protocol

import redis

Fetch = Callable[[], tuple[str, int]]  # () -> (token, expires_in seconds)
MARGIN_S = 300  # refresh five minutes before WeChat's expiry


class TokenStore(Protocol):
    def get(self) -> str | None: ...
    def refresh(self, fetch: Fetch, *, rejected: str | None = None) -> str: ...


class RedisTokenStore:
    def __init__(self, client: redis.Redis, prefix: str = "wx:token:") -> None:
        self.client = client
        self.key = prefix + "value"
        self.lock_key = prefix + "lock"

    def get(self) -> str | None:
        value = self.client.get(self.key)
        return value.decode() if isinstance(value, bytes) else None

    def refresh(self, fetch: Fetch, *, rejected: str | None = None) -> str:
        """A token other than `rejected`: someone else's fresh one, or one fetched under the lock."""
        with self.client.lock(self.lock_key, timeout=15, blocking_timeout=10):
            current = self.get()
            if current is not None and current != rejected:
                return current
            token, expires_in = fetch()
            self.client.set(self.key, token, ex=max(60, expires_in - MARGIN_S))
            return token


class MemoryTokenStore:
    """The embedded default's twin: one process, a thread lock."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._token: str | None = None
        self._until = 0.0

    def get(self) -> str | None:
        return self._token if self._token and time.monotonic() < self._until else None

    def refresh(self, fetch: Fetch, *, rejected: str | None = None) -> str:
        with self._lock:
            current = self.get()
            if current is not None and current != rejected:
                return current
            token, expires_in = fetch()
            self._token, self._until = token, time.monotonic() + max(60, expires_in - MARGIN_S)
            return token
