"""Our own sessions for mini-program users.

A login exchanges WeChat's `js_code` for the user's openid and `session_key`; the
shopper gets an opaque token of ours. The server keeps, under the token's SHA-256, the
openid and the session_key (needed later to decrypt data the user shares): neither ever
leaves the server, and a leaked store of hashes yields no usable token.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import threading
import time
from dataclasses import dataclass
from typing import Any

import redis

SESSION_TTL_S = 30 * 86_400


@dataclass(frozen=True, slots=True)
class WxUser:
    openid: str
    session_key: str

    def __repr__(self) -> str:  # never print the session_key
        return f"WxUser(openid={self.openid[:4]}…)"


def _key(token: str) -> str:
    return "wx:sess:" + hashlib.sha256(token.encode()).hexdigest()


class RedisSessions:
    """Sessions in Redis, shared by every worker; each worker also keeps the ones it saw in
    the last minute, so a verify costs no extra round trip for the session."""

    LOCAL_S = 60.0

    def __init__(self, client: redis.Redis) -> None:
        self.client = client
        self._local: dict[str, tuple[float, WxUser]] = {}

    def create(self, user: WxUser) -> str:
        token = "wxs_" + secrets.token_urlsafe(32)
        self.client.set(_key(token), json.dumps({"o": user.openid, "k": user.session_key}), ex=SESSION_TTL_S)
        return token

    def get(self, token: str) -> WxUser | None:
        key = _key(token)
        hit = self._local.get(key)
        if hit is not None and hit[0] > time.monotonic():
            return hit[1]
        raw = self.client.get(key)
        if not isinstance(raw, (bytes, str)):
            return None
        data = json.loads(raw)
        user = WxUser(data["o"], data["k"])
        if len(self._local) > 100_000:
            self._local.clear()
        self._local[key] = (time.monotonic() + self.LOCAL_S, user)
        return user


class MemorySessions:
    """The embedded default's twin (one process)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._data: dict[str, tuple[float, WxUser]] = {}

    def create(self, user: WxUser) -> str:
        token = "wxs_" + secrets.token_urlsafe(32)
        with self._lock:
            self._data[_key(token)] = (time.monotonic() + SESSION_TTL_S, user)
        return token

    def get(self, token: str) -> WxUser | None:
        with self._lock:
            found: Any = self._data.get(_key(token))
        if found is None or found[0] < time.monotonic():
            return None
        return found[1]
