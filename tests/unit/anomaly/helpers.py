"""Builders for anomaly tests: scans at known places and times, events from them.

Unless a test says otherwise (`verified=False`), scans come from WeChat-verified sessions:
each scanner is its own identity and its GPS place is trusted, so a rule's full severity
can be reached; the tests of cheap claims (made-up clients, one IP) say so explicitly."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from anomaly.events import ScanEvent
from anomaly.geo import locate
from anomaly.rules import CodeScanState, RecentScan

NOW = datetime(2026, 9, 1, 12, 0, tzinfo=UTC)
NOW_MS = int(NOW.timestamp() * 1000)
CODE = "012326100000000001"

HANGZHOU = (30.27, 120.15)
BEIJING = (39.90, 116.40)
GUANGZHOU = (23.13, 113.26)
SHANGHAI = (31.23, 121.47)
SUZHOU = (31.30, 120.62)  # ~80 km from Shanghai
CHENGDU = (30.57, 104.07)


def scan(
    i: int,
    scanner: str | None,
    ago: timedelta,
    where: tuple[float, float] | None = HANGZHOU,
    *,
    verified: bool = True,
    network: str | None = None,
) -> RecentScan:
    lat, lng = where if where else (None, None)
    city, province = locate(lat, lng)
    at = NOW_MS - int(ago.total_seconds() * 1000)
    identity = ("v" + scanner if scanner else None) if verified else (network or scanner)
    source = ("wechat" if verified else "gps") if province else None
    return RecentScan(at, scanner, city, province, lat, lng, f"e{i}", identity, source)


def state(scans: list[RecentScan], distinct: int | None = None) -> CodeScanState:
    scanners = {s.scanner for s in scans if s.scanner}
    return CodeScanState(
        CODE,
        NOW_MS,
        len(scans),
        min(s.at_ms for s in scans),
        min(scans, key=lambda s: s.at_ms).city,
        len(scanners) if distinct is None else distinct,
        tuple(sorted(scans, key=lambda s: s.at_ms, reverse=True)),
    )


def event(
    i: int | str,
    scanner: str | None,
    at: datetime,
    where: tuple[float, float] | None = HANGZHOU,
    *,
    code: str = CODE,
    verdict: str = "genuine",
    ip_hash: str | None = None,
    verified: bool = True,
) -> ScanEvent:
    lat, lng = where if where else (None, None)
    city, province = locate(lat, lng)
    return ScanEvent(
        str(i), code, at, "qr", verdict, scanner, ip_hash, lat, lng, city, province, verified=verified
    )
