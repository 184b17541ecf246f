"""The scan ledger as the verify service sees it (domain.ports.ScanLedger): turns a
ScanInput into a minimized ScanEvent (hashed ids, rounded coordinates, coarse place) and
its scan store's outcome into the shopper's scan summary and open flags.

A scan store on Redis sits behind a breaker like the shared cache's: after a failed call
(a 50 ms timeout, no retry) the store is skipped for a second without touching Redis,
then one caller tries again. A stalled scan store then costs each worker one timeout a
second instead of one per verify (issue 14: a 5 s `CLIENT PAUSE` cut verify throughput
from ~950 to ~40 req/s on two workers); verifies are answered without scan history
meanwhile (`scan_store_errors`), failed calls count as `scan_store_redis_errors` and
skipped ones as `scan_store_skipped` at /metrics."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any, TypeVar

from anomaly.events import ScanEvent, hash_client, new_event_id
from anomaly.geo import locate, locate_ip
from anomaly.rules import ProductContext, RuleConfig
from anomaly.state import (
    InStore,
    MemoryScanStore,
    RedisScanStore,
    ScanOutcome,
    ScanStateStore,
    ScanStoreUnavailable,
)
from cache.redis_cache import Breaker
from domain import metrics
from domain.errors import Unavailable
from domain.records import LabelGroup, parse_package_kg
from domain.scans import (
    SCAN_STORE_UNAVAILABLE,
    Flag,
    LabelFacts,
    OpenFlag,
    ScanInput,
    ScanResult,
    ScanSummary,
    StorePlace,
)

T = TypeVar("T")
BACKOFF_S = 1.0  # as the shared cache's: an outage costs a worker one timeout a second


class ScanLedgerAdapter:
    """The scan ledger (domain.ports.ScanLedger) of a deployment over its scan store
    (`RedisScanStore` or `MemoryScanStore`): minimizes each ScanInput into a ScanEvent,
    guards a networked store with a breaker, and answers ScanResults."""

    def __init__(
        self,
        secret: bytes,
        store: ScanStateStore,
        *,
        ip_db: str | None = None,
        backoff_s: float = BACKOFF_S,
    ) -> None:
        self.secret = secret
        self.store = store
        self.ip_db = ip_db
        # Only a store behind a network can stall; the in-process one needs no breaker.
        self.breaker = (
            Breaker(backoff_s, metric="scan_store_redis_errors", name="scan store")
            if isinstance(store, RedisScanStore)
            else None
        )
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

    def _call(self, fn: Callable[[], T], *, must_try: bool = False) -> T:
        """`fn` against the store through the breaker; Unavailable when the store failed or
        is being skipped. `must_try`: a caller that must land or be told (imports, admin
        flag reviews) tries even while the breaker is open."""
        breaker = self.breaker
        if breaker is not None and not breaker.allow() and not must_try:
            metrics.incr("scan_store_skipped")
            raise Unavailable("the scan store is unavailable", code=SCAN_STORE_UNAVAILABLE)
        try:
            result = fn()
        except ScanStoreUnavailable as exc:
            if breaker is not None:
                breaker.failed(exc)
            raise Unavailable("the scan store is unavailable", code=SCAN_STORE_UNAVAILABLE) from exc
        if breaker is not None:
            breaker.succeeded()
        return result

    def record(self, scan: ScanInput) -> ScanResult:
        # Imported events carry their own ids; their flags must be listed when the call returns.
        imported = scan.event_id is not None
        resolve = None
        if scan.place is not None and scan.resolve_with is not None:
            given = scan.resolve_with

            def facts(value: str) -> tuple[str, ProductContext | None, LabelFacts | None]:
                verdict, group, label = given(value)
                return verdict, self._product(group), label

            resolve = InStore(scan.place, facts)
        outcome = self._call(
            lambda: self.store.record(
                self.event(scan),
                sync_flags=imported,
                dedupe=imported,
                product=self._product(scan.group),
                label=scan.label,
                windows=scan.windows,
                resolve=resolve,
            ),
            must_try=imported,
        )
        return self._result(outcome, known_client=scan.client is not None)

    @staticmethod
    @functools.lru_cache(maxsize=4096)
    def _product(group: LabelGroup | None) -> ProductContext | None:
        if group is None or not group.product_id:
            return None
        return ProductContext(
            str(group.product_id), parse_package_kg(group.package), group.certified_tonnes, group.regions()
        )

    def peek(
        self, code: str, client: str | None, windows: str = "", place: StorePlace | None = None
    ) -> ScanResult:
        resolve = InStore(place) if place is not None else None
        outcome = self._call(
            lambda: self.store.peek(
                code, self._hash(client), at=datetime.now(UTC), windows=windows, resolve=resolve
            )
        )
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
        return ScanResult(summary, flags, outcome.throttled, outcome.limited_s, outcome.resolved)

    def restore(self, events: Iterable[ScanEvent], flags: Iterable[tuple[str, str, str, int, str]]) -> int:
        if isinstance(self.store, MemoryScanStore):
            return self.store.restore(events, flags)
        return 0

    def set_flag_status(self, code: str, rule: str, status: str) -> None:
        self._call(lambda: self.store.set_flag_status(code, rule, status), must_try=True)


def build_scan_ledger(
    secret: bytes,
    redis_client: Any,
    rules: dict[str, Any],
    *,
    flag_sink: Callable[[str, Flag], None] | None = None,
    event_sink: Callable[[list[ScanEvent]], None] | None = None,
    ip_db: str | None = None,
    key_prefix: str = "s:",
    register_script: Callable[[str], Any] | None = None,
) -> ScanLedgerAdapter:
    """The scan ledger for a deployment: on Redis when a client is given, else in process.
    `ip_db`: an ip2region `.xdb` file to use instead of the one the `ip-region` package
    ships; `key_prefix`: where the Redis keys and streams live."""
    config = RuleConfig.from_mapping(rules)
    if redis_client is not None:
        store: ScanStateStore = RedisScanStore(
            redis_client, config, key_prefix, flag_sink=flag_sink, register_script=register_script
        )
    else:
        store = MemoryScanStore(config, flag_sink=flag_sink, event_sink=event_sink)
    return ScanLedgerAdapter(secret, store, ip_db=ip_db)
