"""The mini-program's adapters: the WeChat client (its access token kept in Redis, or in
process when embedded) and the shoppers' session store. Built on first use: a CLI
command never makes them."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from cache import keys
from cache.wechat_sessions import MemorySessions, RedisSessions
from domain.errors import Unavailable
from domain.ports import ShopperSessions
from miniprogram_backend.wechat import WeChatClient, WeChatError
from webapp.lazy import lazy
from webapp.settings import Settings


class WeChatAdapters:
    """What miniprogram_backend.blueprint.WeChat describes, for one app."""

    def __init__(self, settings: Settings, redis: Callable[[], Any]) -> None:
        self._settings = settings
        self._redis = redis  # the app's Redis client (None embedded), asked on first use
        self._lock = threading.RLock()

    @lazy
    def client(self) -> WeChatClient:
        from cache.wechat_tokens import MemoryTokenStore, RedisTokenStore

        s, redis = self._settings, self._redis()
        tokens = RedisTokenStore(redis, keys.WECHAT_TOKEN) if redis is not None else MemoryTokenStore()
        return WeChatClient(s.wechat_appid or "", s.wechat_secret or "", s.wechat_api_base, tokens)

    @lazy
    def sessions(self) -> ShopperSessions:
        redis = self._redis()
        return RedisSessions(redis) if redis is not None else MemorySessions()

    def check_image(self, photo: bytes, kind: str) -> bool:
        """img_sec_check; WeChat failing is a 503 for the asker, not a pass."""
        try:
            return self.client.check_image(photo, kind)
        except WeChatError as exc:
            raise Unavailable(
                "the photo check is unavailable; try again later",
                code="content_check_unavailable",
                retry_after_s=60,
            ) from exc
