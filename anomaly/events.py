"""Scan events: every verify on every channel, with personal data minimized.

The client id (WeChat openid, device id) and the IP are kept only as keyed hashes
(HMAC-SHA256 with the server's SECRET_KEY, truncated): enough to tell one scanner from
another and recognize a shopper's own repeat checks, useless to anyone without the key.
Coordinates are rounded to 0.01° (about 1 km) before they are stored.

What a stranger can fake cheaply and what costs them (issue 14, see anomaly/rules.py):
client ids and coordinates sent in a public request are claims; the IP's *network* (its
/24 for IPv4, /48 for IPv6) and a WeChat-verified session are costly. An IP's hash
therefore carries its network's hash in its first half (`network_of`), so the rules can
count networks without any address being kept, and `ScanEvent.verified` marks a scan
from a verified session.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import ipaddress
import os
import socket
from dataclasses import dataclass, fields
from datetime import UTC, datetime

import orjson

from anomaly.geo import locate
from domain.scans import VERIFIED_CHANNEL_PREFIX


def _hmac(secret: bytes, text: str) -> str:
    # A copy of the keyed HMAC, not a new one: the key schedule (and OpenSSL's lookup of
    # the digest) is done once per key, the same digest at half the CPU (three per first
    # scan, ~8 -> ~4 µs each).
    mac = _keyed(secret).copy()
    mac.update(text.encode())
    return mac.hexdigest()


@functools.lru_cache(maxsize=8)
def _keyed(secret: bytes) -> hmac.HMAC:
    return hmac.new(secret, digestmod=hashlib.sha256)


def network(ip: str) -> str:
    """The network an address belongs to for counting distinct networks: its /24 (IPv4,
    also IPv4-mapped IPv6) or /48 (IPv6). Something that is not an address is its own."""
    # Most verifies come from a plain dotted IPv4 address, each from its own address (the
    # hash memo rarely hits): read by inet_pton and written back, ~1 µs instead of the
    # ipaddress module's ~8; anything not in that exact form goes the general way.
    try:
        b = socket.inet_pton(socket.AF_INET, ip)
    except (OSError, ValueError):
        b = None
    if b is not None and f"{b[0]}.{b[1]}.{b[2]}.{b[3]}" == ip:
        return f"{b[0]}.{b[1]}.{b[2]}.0/24"
    return _network_by_ipaddress(ip)


def _network_by_ipaddress(ip: str) -> str:
    """`network` for any form, by the ipaddress module (the names stored hashes were made of)."""
    try:
        addr = ipaddress.ip_address(ip.strip())
    except ValueError:
        return ip
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    prefix = 24 if addr.version == 4 else 48
    return str(ipaddress.ip_network(f"{addr}/{prefix}", strict=False))


IP_HASH_LEN = 24  # "i" + 12 hex digits of the network + 11 of the address


def hash_client(secret: bytes, raw: str | None, *, kind: str = "c") -> str | None:
    """`kind` + 23 hex digits (92 bits) of HMAC-SHA256 with the server's key; None for no id.
    `kind` ("c" client, "i" IP) keeps an IP from ever equalling a client id. An IP's hash is
    its network's (48 bits) followed by its own (44 bits): scans from one /24 share a prefix
    that `network_of` reads, while the whole still tells addresses apart."""
    if not raw:
        return None
    if kind == "i":
        return f"i{_hmac(secret, f'n:{network(raw)}')[:12]}{_hmac(secret, f'i:{raw}')[:11]}"
    return f"{kind}{_hmac(secret, f'{kind}:{raw}')[:23]}"


def network_of(ip_hash: str | None) -> str | None:
    """The network part of an IP's hash ("n" + 12 hex digits). A hash from before networks
    were kept (a restored old event) is its own network: one address, one network."""
    if not ip_hash:
        return None
    if ip_hash.startswith("i") and len(ip_hash) == IP_HASH_LEN:
        return "n" + ip_hash[1:13]
    return ip_hash


def new_event_id() -> str:
    # 128 bits from the OS, as hex: what uuid4().hex gave (122 of them) without building a
    # UUID object (1.6 -> 0.3 µs a verify). Unpredictable on purpose: an import may bring
    # ids of its own, and a stored id is never stored twice (INSERT IGNORE), so an id one
    # could foretell is a live scan one could hide.
    return os.urandom(16).hex()


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
    verified: bool = False  # the scanner is a WeChat-verified session (a costly identity)

    def __post_init__(self) -> None:
        # Naive datetimes would be read as the server's local time: refuse them at the edge.
        if self.at.tzinfo is None:
            raise ValueError("ScanEvent.at must be timezone-aware (UTC)")
        if self.channel.startswith(VERIFIED_CHANNEL_PREFIX):
            # The verify service marks a verified session's scan on its channel (the scan
            # store hands the channel through as it is); kept here as a field of its own.
            object.__setattr__(self, "channel", self.channel[len(VERIFIED_CHANNEL_PREFIX) :])
            object.__setattr__(self, "verified", True)

    def with_verdict(self, verdict: str) -> ScanEvent:
        """This event with another verdict (the one the scan script resolved), its fields
        copied as they are: `dataclasses.replace` runs __init__ through the fields' list,
        twice the cost of a verify's scan event (`bench/verify_budget.py --profile`)."""
        new = object.__new__(ScanEvent)
        for name in _EVENT_FIELDS:
            object.__setattr__(new, name, getattr(self, name))
        object.__setattr__(new, "verdict", verdict)
        return new

    @property
    def at_ms(self) -> int:
        return int(self.at.timestamp() * 1000)

    @property
    def identity(self) -> str | None:
        """What this scan weighs as toward `suspicious`: a verified session is itself; any
        other scanner is its network (made-up client ids from one network are one identity);
        an event with no IP (an import) is its scanner."""
        if self.verified and self.client:
            return "v" + self.client
        return network_of(self.ip_hash) or self.client

    @property
    def place_source(self) -> str | None:
        """Where the scan's place came from: "wechat" (coordinates from a verified session),
        "gps" (coordinates claimed in the request), "ip" (the IP's city); None for no place."""
        if self.province is None:
            return None
        if self.lat is not None and self.lng is not None and locate(self.lat, self.lng)[1] is not None:
            return "wechat" if self.verified else "gps"
        return "ip"

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
                "vf": self.verified,
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
            verified=bool(d.get("vf")),
        )


_EVENT_FIELDS = tuple(f.name for f in fields(ScanEvent))
