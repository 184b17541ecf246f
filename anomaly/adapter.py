"""The scan store as the verify service sees it (domain.ports.ScanRecorder): turns a
ScanInput into a minimized ScanEvent (hashed ids, rounded coordinates, coarse place) and
the recorder's outcome into the shopper's scan summary and open flags."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

from anomaly.events import ScanEvent, hash_client, new_event_id
from anomaly.geo import locate, locate_ip
from anomaly.rules import Flag, ProductContext, RuleConfig, parse_package_kg
from anomaly.state import MemoryScanRecorder, RedisScanRecorder, ScanOutcome, ScanStoreUnavailable
from domain.errors import Unavailable
from domain.records import LabelGroup, OpenFlag, ScanInput, ScanResult, ScanSummary


class ScanStore:
    def __init__(
        self,
        secret: bytes,
        recorder: RedisScanRecorder | MemoryScanRecorder,
        *,
        ip_db: str | None = None,
    ) -> None:
        self.secret = secret
        self.recorder = recorder
        self.ip_db = ip_db
        # One HMAC per client and IP, not per verify: shoppers and their addresses repeat.
        # The memo lives in this worker's memory only, like the request that brought the id.
        self._hash = functools.lru_cache(maxsize=65_536)(functools.partial(hash_client, secret))

    def event(self, scan: ScanInput) -> ScanEvent:
        lat = round(scan.lat, 2) if scan.lat is not None else None
        lng = round(scan.lng, 2) if scan.lng is not None else None
        city, province = locate(lat, lng)
        if province is None and scan.ip:
            # No usable coordinates: the IP's city, which is good enough for "first checked
            # in …" and the province spread, but gives no coordinates for impossible travel.
            city, province = locate_ip(scan.ip, self.ip_db)
        ip_hash = self._hash(scan.ip, kind="i")
        at = scan.at if scan.at.tzinfo else scan.at.replace(tzinfo=UTC)
        return ScanEvent(
            event_id=scan.event_id or new_event_id(),
            code=scan.code,
            at=at.astimezone(UTC),
            channel=scan.channel,
            verdict=scan.verdict,
            # The scanner: the client when known, else the IP (shoppers behind one NAT then
            # look like one scanner, which errs towards fewer flags, never more).
            client=self._hash(scan.client) or ip_hash,
            ip_hash=ip_hash,
            lat=lat,
            lng=lng,
            city=city,
            province=province,
        )

    def record(self, scan: ScanInput) -> ScanResult:
        # Imported events carry their own ids; their flags must be listed when the call returns.
        imported = scan.event_id is not None
        try:
            outcome = self.recorder.record(
                self.event(scan), sync_flags=imported, dedupe=imported, product=self._product(scan.group)
            )
        except ScanStoreUnavailable as exc:
            raise Unavailable("the scan store is unavailable", code="scan_store_unavailable") from exc
        return self._result(outcome, known_client=scan.client is not None)

    @staticmethod
    @functools.lru_cache(maxsize=4096)
    def _product(group: LabelGroup | None) -> ProductContext | None:
        if group is None or not group.product_id:
            return None
        return ProductContext(
            str(group.product_id), parse_package_kg(group.package), group.certified_tonnes, group.regions()
        )

    def peek(self, code: str, client: str | None) -> ScanResult:
        try:
            outcome = self.recorder.peek(code, self._hash(client), at=datetime.now(UTC))
        except ScanStoreUnavailable as exc:
            raise Unavailable("the scan store is unavailable", code="scan_store_unavailable") from exc
        return self._result(outcome, known_client=client is not None)

    @staticmethod
    def _result(outcome: ScanOutcome, *, known_client: bool) -> ScanResult:
        # Without a client id the scanner is the IP: good enough to count distinct scanners,
        # not to tell the asker "you checked this before" (CONTRACT: `you` null when unknown).
        you_count, you_first = (outcome.you_count, outcome.you_first_at) if known_client else (None, None)
        summary = ScanSummary(
            outcome.count,
            outcome.first_at,
            outcome.first_city,
            outcome.distinct_scanners,
            you_count,
            you_first,
        )
        flags = tuple(OpenFlag(f.rule, f.severity, f.raised_at) for f in outcome.flags)
        return ScanResult(summary, flags, outcome.throttled)

    def restore(self, events: Iterable[ScanEvent], flags: Iterable[tuple[str, str, str, int, str]]) -> int:
        if isinstance(self.recorder, MemoryScanRecorder):
            return self.recorder.restore(events, flags)
        return 0

    def set_flag_status(self, code: str, rule: str, status: str) -> None:
        try:
            self.recorder.set_flag_status(code, rule, status)
        except ScanStoreUnavailable as exc:
            raise Unavailable("the scan store is unavailable", code="scan_store_unavailable") from exc


def build_recorder(
    secret: bytes,
    redis_client: Any,
    rules: dict[str, Any],
    *,
    flag_sink: Callable[[str, Flag], None] | None = None,
    event_sink: Callable[[list[ScanEvent]], None] | None = None,
    ip_db: str | None = None,
    key_prefix: str = "s:",
) -> ScanStore:
    """The scan store for a deployment: on Redis when a client is given, else in process.
    `ip_db`: an ip2region `.xdb` file to use instead of the one the `ip-region` package
    ships; `key_prefix`: where the Redis keys and streams live."""
    config = RuleConfig.from_mapping(rules)
    if redis_client is not None:
        recorder: RedisScanRecorder | MemoryScanRecorder = RedisScanRecorder(
            redis_client, config, key_prefix, flag_sink=flag_sink
        )
    else:
        recorder = MemoryScanRecorder(config, flag_sink=flag_sink, event_sink=event_sink)
    return ScanStore(secret, recorder, ip_db=ip_db)
