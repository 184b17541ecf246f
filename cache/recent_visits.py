"""Whether a web visitor opened a code's page within the last few minutes: a reload (or
the phone reopening a tab) is then the same check, not a new scan.

One `SET key 1 NX EX window` per page view on the scan store's Redis (the key names a
keyed hash of visitor and code, never the raw id), or an in-process map in the embedded
deployment. Redis failing is an answer too: the view counts as a first visit (a genuine
first check is never lost; during an outage a reload may count twice).
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable
from typing import Any

import redis

from domain.ports import RecentVisits

WINDOW_S = 600  # ten minutes: a reload, a tab reopened, a back-and-forth to the home page


def visit_key(secret: bytes, visitor: str, code: str) -> str:
    digest = hashlib.blake2b(f"{visitor}\0{code}".encode(), key=secret[:64], digest_size=16)
    return digest.hexdigest()


class RedisRecentVisits:
    def __init__(
        self, client: Any, secret: bytes, *, prefix: str = "w:seen:", window_s: int = WINDOW_S
    ) -> None:
        self.client = client
        self.secret = secret
        self.prefix = prefix
        self.window_s = window_s

    def first_visit(self, visitor: str, code: str) -> bool:
        """True when this visitor has not opened this code within the window (and marks it)."""
        try:
            return bool(
                self.client.set(
                    self.prefix + visit_key(self.secret, visitor, code), b"1", nx=True, ex=self.window_s
                )
            )
        except redis.RedisError:
            return True


class MemoryRecentVisits:
    """The embedded deployment's twin; `clock` is injectable for tests (monotonic seconds)."""

    MAX_ENTRIES = 100_000

    def __init__(
        self, secret: bytes, *, window_s: int = WINDOW_S, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.secret = secret
        self.window_s = window_s
        self.clock = clock
        self._until: dict[str, float] = {}
        self._lock = threading.Lock()

    def first_visit(self, visitor: str, code: str) -> bool:
        key = visit_key(self.secret, visitor, code)
        now = self.clock()
        with self._lock:
            if self._until.get(key, 0.0) > now:
                return False
            if len(self._until) >= self.MAX_ENTRIES:
                self._until = {k: t for k, t in self._until.items() if t > now}
                if len(self._until) >= self.MAX_ENTRIES:  # all live: forget the oldest half
                    self._until = dict(
                        sorted(self._until.items(), key=lambda kv: kv[1])[self.MAX_ENTRIES // 2 :]
                    )
            self._until[key] = now + self.window_s
            return True


def build_recent_visits(scan_redis: Any, secret: bytes) -> RecentVisits:
    return RedisRecentVisits(scan_redis, secret) if scan_redis is not None else MemoryRecentVisits(secret)
