"""Our own sessions for mini-program users (domain.ports.ShopperSessions): in Redis, or in
process when embedded.

A login exchanges WeChat's `js_code` for the user's openid; the shopper gets an opaque
token of ours. The server keeps, under the token's SHA-256, the openid alone: it never
leaves the server, and a leaked store of hashes yields no usable token. WeChat's
`session_key` is not kept anywhere: nothing here decrypts data a user shares, and a key
kept for no reader is only a liability (issue 14). A feature that needs it should keep it
as long as that feature needs it, and erase it with the rest.

Erasing a shopper's history (`DELETE /wx/v1/me/history`) also ends every session of
theirs: each user has an index of their sessions' keys, so no record of the openid
outlives the erasure. A worker that saw a session in the last minute may still accept its
token for the rest of that minute (`LOCAL_S`); nothing is recorded under it afterwards
that the erasure missed, since the history is keyed by the openid's hash, not the token.

When Redis is away (down, or stalled past the verify path's 50 ms timeout) a session can
be neither stored nor read, and that is said, not hidden: `SessionStoreUnavailable`, a 503
problem `session_store_unavailable` with Retry-After, never a 500, and never a 401 (the
shopper's token is not wrong). A login answers 503: a session we cannot store is one no
other worker could honour. A token this worker saw in the last minute is still served
from its memo, outage or not; the memo is not stretched past its minute during an outage,
because that minute is all an erasure (or an expiry) promises to leave (see above). The
store sits behind a breaker like the shared cache's and the scan store's: a failed call
skips Redis for a second, so a stalled Redis costs a worker one timeout per second, not
one per request (`session_store_redis_errors` and `session_store_skipped` at /metrics).
"""

from __future__ import annotations

import hashlib
import json
import secrets
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from cache import keys
from cache.redis_cache import REDIS_ERRORS, Breaker
from domain import metrics
from domain.errors import Unavailable
from domain.ports import WxUser

SESSION_TTL_S = 30 * 86_400
BACKOFF_S = 1.0  # as the shared cache's and the scan store's
RETRY_AFTER_S = 5  # as the service's other 503s: an outage lasts longer than one backoff
T = TypeVar("T")


class SessionStoreUnavailable(Unavailable):
    """Sessions can be neither stored nor read now (their Redis is away): 503."""

    code = "session_store_unavailable"

    def __init__(self) -> None:
        super().__init__("the session store is unavailable; try again shortly", retry_after_s=RETRY_AFTER_S)


def _key(token: str) -> str:
    return keys.WECHAT_SESSION + hashlib.sha256(token.encode()).hexdigest()


def _record(user: WxUser) -> str:
    # "k" stays, empty, only so a worker of the previous release (which reads it) can
    # read new sessions during a rolling upgrade; drop it in the release after.
    return json.dumps({"o": user.openid, "k": ""})


def _index_key(openid: str) -> str:
    return keys.WECHAT_USER_SESSIONS + hashlib.sha256(openid.encode()).hexdigest()


class RedisSessions:
    """Sessions in Redis, shared by every worker; each worker also keeps the ones it saw in
    the last minute, so a verify costs no extra round trip for the session."""

    LOCAL_S = 60.0

    def __init__(
        self, client: Any, *, backoff_s: float = BACKOFF_S, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.client = client
        self.clock = clock  # the memo's clock; tests use a fake one, as for the breaker
        self.breaker = Breaker(
            backoff_s, metric="session_store_redis_errors", name="session store", clock=clock
        )
        self._local: dict[str, tuple[float, WxUser]] = {}

    def check_available(self) -> None:
        """Raises SessionStoreUnavailable while the breaker skips Redis: a login asks first,
        so it does not spend the shopper's js_code at WeChat on a session it cannot store."""
        if not self.breaker.healthy:
            metrics.incr("session_store_skipped")
            raise SessionStoreUnavailable()

    def _call(self, fn: Callable[[], T], *, must_try: bool = False) -> T:
        """`fn` against Redis through the breaker. `must_try`: an erasure must land or be
        told, so it tries even while the breaker is open."""
        if not self.breaker.allow() and not must_try:
            metrics.incr("session_store_skipped")
            raise SessionStoreUnavailable()
        try:
            result = fn()
        except REDIS_ERRORS as exc:
            self.breaker.failed(exc)
            raise SessionStoreUnavailable() from exc
        self.breaker.succeeded()
        return result

    def _remember(self, key: str, user: WxUser) -> None:
        if len(self._local) > 100_000:
            self._local.clear()
        self._local[key] = (self.clock() + self.LOCAL_S, user)

    def create(self, user: WxUser) -> str:
        token = "wxs_" + secrets.token_urlsafe(32)
        key, index = _key(token), _index_key(user.openid)
        # Separate commands, not a transaction: on a Redis Cluster the two keys lie in two
        # slots. An index entry without its session is harmless (erase deletes nothing).
        pipe = self.client.pipeline(transaction=False)
        pipe.sadd(index, key)
        pipe.expire(index, SESSION_TTL_S)
        pipe.set(key, _record(user), ex=SESSION_TTL_S)
        self._call(pipe.execute)
        # Stored: this worker may answer the shopper's next call without reading it back.
        self._remember(key, user)
        return token

    def get(self, token: str) -> WxUser | None:
        key = _key(token)
        hit = self._local.get(key)
        if hit is not None and hit[0] > self.clock():
            return hit[1]
        raw = self._call(lambda: self.client.get(key))
        if not isinstance(raw, (bytes, str)):
            return None
        data = json.loads(raw)
        user = WxUser(data["o"])
        if data.get("k"):
            # Written by an earlier release, with WeChat's session_key: rewritten without
            # it (same expiry) and indexed, so erasure finds it.
            pipe = self.client.pipeline(transaction=False)
            pipe.set(key, _record(user), keepttl=True, xx=True)
            pipe.sadd(_index_key(user.openid), key)
            pipe.expire(_index_key(user.openid), SESSION_TTL_S)
            self._call(pipe.execute)
        self._remember(key, user)
        return user

    def end_all(self, openid: str) -> int:
        """End every session of this user; how many there were."""
        index = _index_key(openid)
        members = self._call(lambda: self.client.smembers(index), must_try=True)
        session_keys = [k.decode() if isinstance(k, bytes) else k for k in members]
        pipe = self.client.pipeline(transaction=False)
        for key in session_keys:
            pipe.delete(key)  # one key per command: they span a cluster's slots
        pipe.delete(index)
        ended = sum(self._call(pipe.execute, must_try=True)[:-1])
        for key in session_keys:
            self._local.pop(key, None)
        return int(ended)


class MemorySessions:
    """The embedded default's twin (one process)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._data: dict[str, tuple[float, WxUser]] = {}

    def check_available(self) -> None:
        """In this process: never away."""

    def create(self, user: WxUser) -> str:
        token = "wxs_" + secrets.token_urlsafe(32)
        with self._lock:
            self._data[_key(token)] = (time.monotonic() + SESSION_TTL_S, user)
        return token

    def get(self, token: str) -> WxUser | None:
        with self._lock:
            found = self._data.get(_key(token))
        if found is None or found[0] < time.monotonic():
            return None
        return found[1]

    def end_all(self, openid: str) -> int:
        with self._lock:
            ended = [k for k, (_, user) in self._data.items() if user.openid == openid]
            for key in ended:
                del self._data[key]
        return len(ended)
