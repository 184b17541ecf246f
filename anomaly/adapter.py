"""The scan store as the verify service sees it (domain.ports.ScanRecorder): turns a
ScanInput into a minimized ScanEvent (hashed ids, rounded coordinates, coarse place) and
the recorder's outcome into the shopper's scan summary and open flags."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

from anomaly.events import ScanEvent, hash_client, new_event_id
from anomaly.geo import locate
from anomaly.rules import Flag, RuleConfig
from anomaly.state import MemoryScanRecorder, RedisScanRecorder, ScanOutcome, ScanStoreUnavailable
from domain.errors import Unavailable
from domain.records import OpenFlag, ScanInput, ScanResult, ScanSummary


class ScanStore:
    def __init__(self, secret: bytes, recorder: RedisScanRecorder | MemoryScanRecorder) -> None:
        self.secret = secret
        self.recorder = recorder

    def event(self, scan: ScanInput) -> ScanEvent:
        lat = round(scan.lat, 2) if scan.lat is not None else None
        lng = round(scan.lng, 2) if scan.lng is not None else None
        city, province = locate(lat, lng)
        ip_hash = hash_client(self.secret, scan.ip, kind="i")
        at = scan.at if scan.at.tzinfo else scan.at.replace(tzinfo=UTC)
        return ScanEvent(
            event_id=scan.event_id or new_event_id(),
            code=scan.code,
            at=at.astimezone(UTC),
            channel=scan.channel,
            verdict=scan.verdict,
            # The scanner: the client when known, else the IP (shoppers behind one NAT then
            # look like one scanner, which errs towards fewer flags, never more).
            client=hash_client(self.secret, scan.client) or ip_hash,
            ip_hash=ip_hash,
            lat=lat,
            lng=lng,
            city=city,
            province=province,
        )

    def record(self, scan: ScanInput) -> ScanResult:
        # Imported events carry their own ids; their flags must be listed when the call returns.
        imported = scan.event_id is not None
        outcome = self._call(self.event(scan), record=True, sync_flags=imported, dedupe=imported)
        return self._result(outcome, known_client=scan.client is not None)

    def peek(self, code: str, client: str | None) -> ScanResult:
        probe = ScanInput(
            code=code, kind=None, at=datetime.now(UTC), channel="api", verdict="", client=client
        )
        return self._result(self._call(self.event(probe), record=False), known_client=client is not None)

    def _call(
        self, event: ScanEvent, *, record: bool, sync_flags: bool = False, dedupe: bool = False
    ) -> ScanOutcome:
        try:
            return self.recorder.record(event, record=record, sync_flags=sync_flags, dedupe=dedupe)
        except ScanStoreUnavailable as exc:
            raise Unavailable("the scan store is unavailable", code="scan_store_unavailable") from exc

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
) -> ScanStore:
    config = RuleConfig.from_mapping(rules)
    if redis_client is not None:
        return ScanStore(secret, RedisScanRecorder(redis_client, config, flag_sink=flag_sink))
    return ScanStore(secret, MemoryScanRecorder(config, flag_sink=flag_sink, event_sink=event_sink))
