"""The WeChat protocol layer: wechatpy where it serves, a thin documented extension where
it falls short (NOTES.md: wechatpy 1.8.18 is from 2021).

    WeChatError(errcode, errmsg)          every failure; `.code` (problem code), `.http_status`
    ├── InvalidCode         40029         the js_code is not valid           400
    ├── CodeUsed            40163         the js_code was already used       400
    ├── RateLimited         45011         WeChat's per-user frequency limit  429
    ├── SystemBusy          -1            WeChat asks to retry later         503
    ├── TokenExpired        40001/42001/40014 still after one refresh        502
    └── WeChatUnavailable                 network error, timeout, 5xx        503

What wechatpy does here: mini-program login (`wxa.code_to_session`), request plumbing
and errcode parsing. (Its data decryption, `WeChatWxaCrypto`, needs the user's
`session_key`, which we do not keep while no feature decrypts anything.) What this layer adds: every URL
under a configurable `api_base` (tests use a local fake), the access token from the
stable-token call (`POST /cgi-bin/stable_token`, which does not invalidate the token other
workers hold) shared through a `TokenStore` and refreshed under a lock, exactly one retry
with a fresh token when WeChat says the token expired, and the current content checks
(`msg_sec_check` version 2; `img_sec_check` for an uploaded photo, synchronous).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import requests
from wechatpy.client import WeChatClient as _WechatpyClient
from wechatpy.exceptions import WeChatClientException

from domain.ports import TokenStore

log = logging.getLogger(__name__)
TOKEN_ERRORS = frozenset({40001, 42001, 40014})


class WeChatError(Exception):
    code = "wechat_error"
    http_status = 502

    def __init__(self, errcode: int | None, errmsg: str = "") -> None:
        super().__init__(f"WeChat errcode {errcode}: {errmsg}")
        self.errcode = errcode
        self.errmsg = errmsg


class InvalidCode(WeChatError):
    code, http_status = "wechat_invalid_code", 400


class CodeUsed(WeChatError):
    code, http_status = "wechat_code_used", 400


class RateLimited(WeChatError):
    code, http_status = "wechat_rate_limited", 429


class SystemBusy(WeChatError):
    code, http_status = "wechat_busy", 503


class TokenExpired(WeChatError):
    code, http_status = "wechat_token_expired", 502


class WeChatUnavailable(WeChatError):
    code, http_status = "wechat_unavailable", 503


_BY_ERRCODE: dict[int, type[WeChatError]] = {
    40029: InvalidCode,
    40163: CodeUsed,
    45011: RateLimited,
    -1: SystemBusy,
}


def _error(errcode: int | None, errmsg: str) -> WeChatError:
    if errcode in TOKEN_ERRORS:
        return TokenExpired(errcode, errmsg)
    return (
        _BY_ERRCODE.get(errcode, WeChatError)(errcode, errmsg)
        if errcode is not None
        else WeChatUnavailable(None, errmsg)
    )


@dataclass(frozen=True)
class WxSession:
    """What a login yields. WeChat's `session_key` is dropped here: nothing reads it."""

    openid: str
    unionid: str | None


class _Api(_WechatpyClient):
    """wechatpy's client with its token reads routed through our shared store."""

    def __init__(self, owner: WeChatClient, appid: str, secret: str, timeout: float) -> None:
        super().__init__(appid, secret, timeout=timeout, auto_retry=False)
        self._owner = owner

    @property
    def access_token(self) -> str:
        return self._owner.access_token()


class WeChatClient:
    def __init__(
        self, appid: str, secret: str, api_base: str, token_store: TokenStore, timeout_s: float = 3.0
    ) -> None:
        self.appid = appid
        self._secret = secret
        self.api_base = api_base.rstrip("/") + "/"
        self.tokens = token_store
        self.timeout_s = timeout_s
        self.api = _Api(self, appid, secret, timeout_s)
        self.api.API_BASE_URL = self.api_base + "cgi-bin/"
        self.api.wxa.API_BASE_URL = self.api_base
        self._http = requests.Session()

    # -- the access token -----------------------------------------------------------------

    def _fetch_stable_token(self, force: bool) -> tuple[str, int]:
        try:
            resp = self._http.post(
                self.api_base + "cgi-bin/stable_token",
                json={
                    "grant_type": "client_credential",
                    "appid": self.appid,
                    "secret": self._secret,
                    "force_refresh": force,
                },
                timeout=self.timeout_s,
            )
            resp.raise_for_status()
            data = resp.json()
        except (requests.RequestException, ValueError) as exc:
            raise WeChatUnavailable(None, type(exc).__name__) from exc
        if data.get("errcode"):
            raise _error(int(data["errcode"]), str(data.get("errmsg", "")))
        return str(data["access_token"]), int(data.get("expires_in", 7200))

    def access_token(self, *, rejected: str | None = None) -> str:
        """The shared token; `rejected` is one WeChat just refused (refresh past it, once)."""
        current = self.tokens.get()
        if current is not None and current != rejected:
            return current
        return self.tokens.refresh(
            lambda: self._fetch_stable_token(force=rejected is not None), rejected=rejected
        )

    def _call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        """Call wechatpy; on an expired token, exactly one retry with a fresh one."""
        for attempt in (1, 2):
            token = self.access_token()
            try:
                return fn(*args, **kwargs)
            except WeChatClientException as exc:
                errcode = int(exc.errcode) if exc.errcode is not None else None
                if attempt == 1 and errcode in TOKEN_ERRORS:
                    log.info("WeChat rejected the access token (errcode %s); refreshing once", errcode)
                    self.access_token(rejected=token)
                    continue
                raise _error(errcode, str(exc.errmsg)) from None
            except requests.RequestException as exc:
                raise WeChatUnavailable(None, type(exc).__name__) from None
        raise AssertionError("unreachable")

    # -- calls ------------------------------------------------------------------------------

    def code_to_session(self, js_code: str) -> WxSession:
        data = self._call(self.api.wxa.code_to_session, js_code)
        return WxSession(openid=data["openid"], unionid=data.get("unionid"))

    def check_text(self, openid: str, content: str) -> bool:
        """msg_sec_check v2: True when WeChat's suggestion is "pass"."""
        data = self._call(
            self.api.post,
            "wxa/msg_sec_check",
            api_base_url=self.api_base,
            data={"openid": openid, "scene": 2, "version": 2, "content": content},
        )
        return (data.get("result") or {}).get("suggest", "pass") == "pass"

    def check_image(self, data: bytes, content_type: str) -> bool:
        """img_sec_check on the uploaded bytes: errcode 87014 means risky content."""
        try:
            self._call(
                self.api.post,
                "wxa/img_sec_check",
                api_base_url=self.api_base,
                files={"media": ("photo", data, content_type)},
            )
        except WeChatError as exc:
            if exc.errcode == 87014:
                return False
            raise
        return True
