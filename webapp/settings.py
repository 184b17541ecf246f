"""All configuration, read from the environment once, into one frozen object (the app,
the CLI and gunicorn.conf.py read the same one)."""

from __future__ import annotations

import logging
import os
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

_ROOT = Path(__file__).resolve().parent.parent
EMBEDDED_DATABASE_URL = f"sqlite:///{_ROOT / 'instance' / 'verify.sqlite3'}"


class SettingsError(ValueError):
    pass


def _bool(value: str | None, default: bool) -> bool:
    if value is None or value == "":
        return default
    return value.strip().lower() in ("1", "true", "yes", "on")


@dataclass(frozen=True)
class Settings:
    database_url: str = EMBEDDED_DATABASE_URL
    redis_url: str | None = None
    # The scan store (per-code scan state, streams): a single Redis primary, since its
    # script spans keys of several slots. Defaults to REDIS_URL; required apart when
    # REDIS_URL is a Redis Cluster.
    scan_redis_url: str | None = None
    host: str = "127.0.0.1"
    port: int = 8000
    secret_key: str = ""
    # Keys SECRET_KEY replaced: what was sealed with them (webhook secrets) stays readable.
    previous_secret_keys: tuple[str, ...] = ()
    admin_bootstrap_token: str | None = None
    wechat_appid: str | None = None
    wechat_secret: str | None = None
    wechat_api_base: str = "https://api.weixin.qq.com"
    rate_limits: bool = True
    demo: bool = False
    redis_timeout_ms: int = 50
    generation_refresh_s: float = 0.2
    expected_codes: int = 2_000_000
    max_upload_bytes: int = 8 * 1024 * 1024
    scan_time_budget_ms: int = 2500
    max_admin_upload_bytes: int = 64 * 1024 * 1024
    proxy_count: int = 0
    # Webhooks may point at loopback and private addresses (tests, a receiver on the same
    # network); off in production, where a webhook URL must not reach the internal network.
    webhook_allow_private: bool = False
    # Mark the dashboard's session cookie Secure on every answer (TLS ended by a proxy that
    # does not say so); it is Secure on any request that came over https anyway.
    secure_cookies: bool = False
    rules: Mapping[str, Any] = field(default_factory=dict)

    @property
    def embedded(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def scan_store_url(self) -> str | None:
        return self.scan_redis_url or self.redis_url

    def with_(self, **changes: Any) -> Settings:
        return replace(self, **changes)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        database_url = env.get("DATABASE_URL") or EMBEDDED_DATABASE_URL
        embedded = database_url.startswith("sqlite")
        secret = env.get("SECRET_KEY", "")
        if not secret:
            if not embedded:
                raise SettingsError("SECRET_KEY is required outside the embedded default")
            secret = _embedded_key(database_url)
        try:
            port = int(env.get("PORT", "8000"))
            timeout = int(env.get("REDIS_TIMEOUT_MS", "50"))
            expected = int(env.get("EXPECTED_CODES", "2000000"))
            proxies = int(env.get("PROXY_COUNT", "0"))
            scan_budget = int(env.get("SCAN_TIME_BUDGET_MS", "2500"))
        except ValueError as exc:
            raise SettingsError(f"a numeric setting is not a number: {exc}") from exc
        previous = env.get("SECRET_KEY_PREVIOUS", "")
        rules = {k[len("RULE_") :].lower(): v for k, v in env.items() if k.startswith("RULE_")}
        return cls(
            database_url=database_url,
            redis_url=env.get("REDIS_URL") or None,
            scan_redis_url=env.get("SCAN_REDIS_URL") or None,
            host=env.get("HOST") or "127.0.0.1",
            port=port,
            secret_key=secret,
            previous_secret_keys=tuple(filter(None, (k.strip() for k in previous.split(",")))),
            admin_bootstrap_token=env.get("ADMIN_BOOTSTRAP_TOKEN") or None,
            wechat_appid=env.get("WECHAT_APPID") or None,
            wechat_secret=env.get("WECHAT_SECRET") or None,
            wechat_api_base=(env.get("WECHAT_API_BASE") or "https://api.weixin.qq.com").rstrip("/"),
            rate_limits=env.get("RATE_LIMITS", "on").strip().lower() not in ("off", "0", "false", "no"),
            demo=_bool(env.get("DEMO"), False),
            redis_timeout_ms=timeout,
            expected_codes=expected,
            proxy_count=proxies,
            webhook_allow_private=_bool(env.get("WEBHOOK_ALLOW_PRIVATE"), False),
            secure_cookies=_bool(env.get("SECURE_COOKIES"), False),
            scan_time_budget_ms=scan_budget,
            rules=rules,
        )


def _embedded_key(database_url: str) -> str:
    """The embedded default's key, made on its first start and kept beside its database
    (owner-only): what it sealed (webhook secrets) and signed (dashboard sessions, scanner
    hashes) stays readable across restarts. An in-memory database gets a key per process."""
    path = database_url.removeprefix("sqlite:///")
    if not path or path.startswith(":memory:") or path == database_url:
        return secrets.token_hex(32)
    key_file = Path(path).with_name(Path(path).name + ".secret-key")
    for _attempt in range(50):
        try:
            key_file.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            try:
                key = key_file.read_text().strip()
            except OSError as exc:
                return _key_per_process(key_file, exc)
            if key:
                return key
            time.sleep(0.02)  # another process is writing it
            continue
        except OSError as exc:
            return _key_per_process(key_file, exc)
        key = secrets.token_hex(32)
        with os.fdopen(fd, "w") as fh:
            fh.write(key)
        return key
    raise SettingsError(f"{key_file} stays empty: remove it")


def _key_per_process(key_file: Path, exc: OSError) -> str:
    # Serving still works; what this process seals or signs is lost at its restart.
    logging.getLogger(__name__).warning(
        "cannot keep the embedded key in %s (%s): a key for this process only", key_file, exc
    )
    return secrets.token_hex(32)
