"""Scan events: every verify on every channel, with personal data minimized.

The client id (WeChat openid, device id) and the IP are kept only as keyed hashes
(HMAC-SHA256 with the server's SECRET_KEY, truncated): enough to tell one scanner from
another and recognize a shopper's own repeat checks, useless to anyone without the key.
Coordinates are rounded to 0.01° (about 1 km) before they are stored.
"""

from __future__ import annotations

import hashlib
import hmac
import uuid
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any


def hash_client(secret: bytes, raw: str | None, *, kind: str = "c") -> str | None:
    if not raw:
        return None
    digest = hmac.new(secret, f"{kind}:{raw}".encode(), hashlib.sha256).hexdigest()
    return f"{kind}{digest[:23]}"


def new_event_id() -> str:
    return uuid.uuid4().hex


@dataclass(frozen=True, slots=True)
class ScanEvent:
    event_id: str
    code: str
    at: datetime
    channel: str
    verdict: str
    client: str | None  # keyed hash of the client id, else of the IP: the "scanner"
    ip_hash: str | None
    lat: float | None
    lng: float | None
    city: str | None
    province: str | None

    @property
    def at_ms(self) -> int:
        return int(self.at.timestamp() * 1000)

    def as_fields(self) -> dict[str, str]:
        """Flat string fields for a Redis stream entry."""
        out: dict[str, str] = {}
        for key, value in asdict(self).items():
            if value is None:
                continue
            out[key] = value.isoformat() if isinstance(value, datetime) else str(value)
        return out

    @classmethod
    def from_fields(cls, fields: dict[str, Any]) -> ScanEvent:
        def get(name: str) -> str | None:
            value = fields.get(name)
            if isinstance(value, bytes):
                value = value.decode()
            return value

        def num(name: str) -> float | None:
            value = get(name)
            return float(value) if value not in (None, "") else None

        at = datetime.fromisoformat(get("at") or "")
        return cls(
            event_id=get("event_id") or "",
            code=get("code") or "",
            at=at if at.tzinfo else at.replace(tzinfo=UTC),
            channel=get("channel") or "",
            verdict=get("verdict") or "",
            client=get("client"),
            ip_hash=get("ip_hash"),
            lat=num("lat"),
            lng=num("lng"),
            city=get("city"),
            province=get("province"),
        )
