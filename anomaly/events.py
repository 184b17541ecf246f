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
from dataclasses import dataclass
from datetime import UTC, datetime

import orjson


def hash_client(secret: bytes, raw: str | None, *, kind: str = "c") -> str | None:
    """`kind` + the first 23 hex digits (92 bits) of HMAC-SHA256(secret, kind:raw); None for
    no id. `kind` ("c" client, "i" IP) keeps an IP from ever equalling a client id."""
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

    def __post_init__(self) -> None:
        # Naive datetimes would be read as the server's local time: refuse them at the edge.
        if self.at.tzinfo is None:
            raise ValueError("ScanEvent.at must be timezone-aware (UTC)")

    @property
    def at_ms(self) -> int:
        return int(self.at.timestamp() * 1000)

    def to_json(self) -> str:
        """The event as one compact JSON string (a stream entry's single field)."""
        return orjson.dumps(
            {
                "id": self.event_id,
                "c": self.code,
                "t": self.at_ms,
                "ch": self.channel,
                "v": self.verdict,
                "s": self.client,
                "i": self.ip_hash,
                "la": self.lat,
                "ln": self.lng,
                "ci": self.city,
                "p": self.province,
            }
        ).decode()

    @classmethod
    def from_json(cls, raw: str | bytes) -> ScanEvent:
        d = orjson.loads(raw)
        return cls(
            event_id=d["id"],
            code=d["c"],
            at=datetime.fromtimestamp(d["t"] / 1000, UTC),
            channel=d["ch"],
            verdict=d["v"],
            client=d["s"],
            ip_hash=d["i"],
            lat=d["la"],
            lng=d["ln"],
            city=d["ci"],
            province=d["p"],
        )
