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
    def __init__(self, client: redis.Redis) -> None:
        self.client = client

    def create(self, user: WxUser) -> str:
        token = "wxs_" + secrets.token_urlsafe(32)
        self.client.set(_key(token), json.dumps({"o": user.openid, "k": user.session_key}), ex=SESSION_TTL_S)
        return token

    def get(self, token: str) -> WxUser | None:
        raw = self.client.get(_key(token))
        if raw is None:
            return None
        data = json.loads(raw)
        return WxUser(data["o"], data["k"])


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
