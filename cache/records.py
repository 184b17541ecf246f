"""The tiered record reader: a code to its record, label group and current status.

The verify service's `domain.ports.RecordReader` (and the admin service's
`RecordCache`), implemented over the ports of the shared cache, the generations, the
filter of issued codes and the registry. Key names come from cache.keys.


Three tiers: this worker's memory, the shared cache (Redis), the registry (SQL).
Immutable records (code → group) are cached for long; mutable status (certificate,
order void, batch activation, group details) is cached under the "status" generation,
and imports bump the "codes" generation. Each worker reads both generations at most
every `refresh_s`; a changed generation drops the matching local tier, and shared
status keys carry the generation in their name, so one admin change reaches every
answer within a second without deleting millions of keys.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import date, datetime
from typing import Any, TypeVar

import msgpack

from cache import keys
from cache.projection import COMPLETE, MISSING, OFF, WRITING, decode
from domain import metrics
from domain.certificates import CertificateKind, CertificateStatus
from domain.codes import CodeKind, ParsedCode
from domain.errors import Unavailable
from domain.ports import (
    CodeProjection,
    FilterStore,
    Generations,
    MembershipFilter,
    RegistryReader,
    Resolution,
    SharedCache,
)
from domain.records import (
    BatchGroup,
    BatchState,
    CertificateState,
    CodeRecord,
    LabelGroup,
    OrderState,
)
from domain.scans import StorePlace

log = logging.getLogger(__name__)
T = TypeVar("T")
_MISSING = object()
_ABSENT = b""  # a cached "does not exist"
OFF_RETRY_S = 30.0  # how often a process that finds the projection off asks for a rebuild


class _Tier:
    """A bounded dict; past `limit` the oldest half goes (insertion order is age)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.data: dict[Any, Any] = {}
        self.loaded_at: dict[Any, float] = {}
        # Moved by every clear: a value read before a clear is not put after it (`_through`).
        self.epoch = 0

    def get(self, key: Any, max_age: float | None) -> Any:
        value = self.data.get(key, _MISSING)
        if value is not _MISSING and max_age is not None and time.monotonic() - self.loaded_at[key] > max_age:
            return _MISSING
        return value

    def put(self, key: Any, value: Any) -> None:
        if len(self.data) >= self.limit:
            for old in list(self.data)[: self.limit // 2]:
                del self.data[old]
                del self.loaded_at[old]
        self.data[key] = value
        self.loaded_at[key] = time.monotonic()

    def clear(self) -> None:
        self.epoch += 1
        self.data.clear()
        self.loaded_at.clear()


# -- serialization of cached values (msgpack: ~4x smaller than JSON for these tuples) ----


def _pack_record(rec: CodeRecord | None) -> bytes:
    if rec is None:
        return _ABSENT
    issued = rec.issued_on.toordinal() if rec.issued_on else 0
    packed: bytes = msgpack.packb([rec.group_id, issued, rec.identity_code, rec.bq_role])
    return packed


def _unpack_record(code: str, kind: CodeKind, raw: bytes) -> CodeRecord | None:
    if raw == _ABSENT:
        return None
    group_id, issued, identity, role = msgpack.unpackb(raw)
    return CodeRecord(code, kind, group_id, date.fromordinal(issued) if issued else None, identity, role)


def _pack_dataclass(obj: Any) -> bytes:
    if obj is None:
        return _ABSENT
    fields = []
    for name in obj.__slots__:
        value = getattr(obj, name)
        if isinstance(value, date):
            value = ["d" if type(value) is date else "t", value.isoformat()]
        fields.append(value)
    packed: bytes = msgpack.packb(fields, use_bin_type=True)
    return packed


def _unpack_value(value: Any) -> Any:
    if isinstance(value, list) and len(value) == 2 and value[0] in ("d", "t"):
        return date.fromisoformat(value[1]) if value[0] == "d" else datetime.fromisoformat(value[1])
    return value


def _unpack_dataclass(cls: type[T], raw: bytes) -> T | None:
    if raw == _ABSENT:
        return None
    values = [_unpack_value(v) for v in msgpack.unpackb(raw, raw=False)]
    obj = cls(*values)
    if isinstance(obj, CertificateState):
        object.__setattr__(obj, "kind", CertificateKind(obj.kind))
        object.__setattr__(obj, "status", CertificateStatus(obj.status))
    if isinstance(obj, LabelGroup):
        # msgpack reads tuples back as lists: a group must stay hashable (the scan ledger
        # memoizes per group) and its ranges comparable as tuples (bisect).
        object.__setattr__(obj, "segments", tuple(tuple(x) for x in obj.segments))
        object.__setattr__(obj, "in_use", tuple(tuple(x) for x in obj.in_use))
    return obj


class RecordResolver:
    def __init__(
        self,
        registry: RegistryReader,
        shared: SharedCache,
        generations: Generations,
        filters: FilterStore | None,
        *,
        refresh_s: float = 0.2,
        record_ttl_s: int = 86_400,
        absent_ttl_s: int = 60,
        status_ttl_s: int = 3_600,
        local_limit: int = 200_000,
        lock_ms: int = 200,
        wait_for_refill_s: float = 0.1,
        projection: CodeProjection | None = None,
    ) -> None:
        self.registry = registry
        # Every issued code in the key store (cache.projection): when complete, a code is
        # resolved by one read of it, and a miss is "never issued" without the database.
        self.projection = projection
        self._projection_state: str | None = None
        self.shared = shared
        self.generations = generations
        self.filters = filters
        self.refresh_s = refresh_s
        self.record_ttl_s = record_ttl_s
        self.absent_ttl_s = absent_ttl_s
        self.status_ttl_s = status_ttl_s
        self.lock_ms = lock_ms
        self.wait_for_refill_s = wait_for_refill_s
        self.records = _Tier(local_limit)
        self.status = _Tier(50_000)
        self._gens: dict[str, int] | None = None
        self._gens_ok = False
        self._importing = False  # an import is in flight (the generations say so)
        self._checked_at = 0.0
        self._filter: MembershipFilter | None = None
        self._bodies: frozenset[str] | None = None
        self._lock = threading.Lock()
        # Called (at most every `OFF_RETRY_S`) while the projection is off: a serving
        # process sets it to start a rebuild (webapp: Container.warm), so a Redis that came
        # back empty, or a writer's lapsed mark, does not leave every miss on the database
        # until the next worker starts.
        self.on_projection_off: Callable[[], object] | None = None
        # Set by the root when the scan store is the projection's own Redis server: a
        # code's (bucket key, field) there, so the scan script resolves it (`place_of`).
        self.in_store: Callable[[str, CodeKind], tuple[str, str]] | None = None
        self._off_called_at = -OFF_RETRY_S

    # -- generations ------------------------------------------------------------------------

    def refresh(self, *, force: bool = False) -> None:
        """Read the generations at most every `refresh_s`; drop what they say changed."""
        now = time.monotonic()
        if not force and now - self._checked_at < self.refresh_s:
            return
        with self._lock:
            if not force and now - self._checked_at < self.refresh_s:
                return
            self._checked_at = now
            if self.projection is not None:
                self._projection_state = self.projection.state()
                if (
                    self._projection_state == OFF
                    and self.on_projection_off is not None
                    and now - self._off_called_at >= OFF_RETRY_S
                ):
                    self._off_called_at = now
                    try:
                        self.on_projection_off()
                    except Exception:  # a rebuild is an optimization: the database answers
                        log.exception("could not start the code projection's rebuild")
            gens = self.generations.current()
            if gens is None:
                # Cannot see other workers' changes: short local lifetimes, and the filter's
                # "never issued" is not believed (see find_record).
                self._gens_ok = False
                return
            old = self._gens
            # Back after generations could not be read: an import may have saved codes and
            # failed to move the generation meanwhile (Redis was away), so reload as if it had.
            recovered = old is not None and not self._gens_ok
            importing = gens.get("imports", 0) > 0
            started_or_ended = importing != self._importing
            self._gens, self._gens_ok, self._importing = gens, True, importing
            if old is None or old.get("status") != gens.get("status"):
                self.status.clear()
                self._bodies = None
            if old is None or old.get("codes") != gens.get("codes") or recovered or started_or_ended:
                self.records.clear()
                self._load_filter()
                if old is not None and self.projection is not None:
                    # An in-process projection cannot see another process's writes (a Redis
                    # one is written by every writer): it rebuilds (see MemoryProjection).
                    codes_changed = getattr(self.projection, "codes_changed", None)
                    if codes_changed is not None:
                        codes_changed()

    def _load_filter(self) -> None:
        if self.filters is None:
            return
        try:
            self._filter = self.filters.load()
        except Exception:  # a filter is an optimization; without it the database answers
            log.exception("could not load the code filter")
            self._filter = None

    def generation_key(self) -> tuple[int, int] | None:
        """The generations this worker last saw (None while they cannot be read)."""
        if not self._gens_ok or self._gens is None:
            return None
        return self._gens.get("status", 0), self._gens.get("codes", 0)

    @property
    def _max_age(self) -> float | None:
        # Healthy generations: entries live until a change. Otherwise, or while an import
        # lands codes chunk by chunk, one second (CONTRACT: 1 s).
        return None if self._gens_ok and not self._importing else 1.0

    def known_bodies(self) -> frozenset[str] | None:
        self.refresh()
        if self._bodies is None:
            try:
                self._bodies = self.registry.body_codes()
            except Unavailable:
                return None
        return self._bodies

    # -- tiers ------------------------------------------------------------------------------

    def _seen(self, name: str) -> int | None:
        """A generation as this worker last read it; None while it cannot read them."""
        if not self._gens_ok or self._gens is None:
            return None
        return self._gens.get(name, 0)

    def _through(
        self,
        tier: _Tier,
        local_key: Any,
        shared_key: str,
        ttl_s: int,
        absent_ttl_s: int,
        load: Callable[[], Any],
        pack: Callable[[Any], bytes],
        unpack: Callable[[bytes], Any],
        *,
        lock: bool,
    ) -> Any:
        value = tier.get(local_key, self._max_age)
        if value is not _MISSING:
            return value
        epoch = tier.epoch
        if lock:
            raw, may_refill = self.shared.get_or_lock(shared_key, self.lock_ms)
        else:
            raw, may_refill = self.shared.get(shared_key), True
        if raw is None and not may_refill:
            # Someone else is refilling this key: wait briefly for it rather than stampede the database.
            deadline = time.monotonic() + self.wait_for_refill_s
            while raw is None and time.monotonic() < deadline:
                time.sleep(0.005)
                raw = self.shared.get(shared_key)
        if raw is not None:
            value = unpack(raw)
        else:
            metrics.incr("db_reads")
            value = load()
            self.shared.set(shared_key, pack(value), absent_ttl_s if value is None else ttl_s, unlock=lock)
        if tier.epoch == epoch:
            # Not when another thread's refresh cleared the tier meanwhile (a status change):
            # the value read may be the old one, and it would outlive the change here, and in
            # the verdict facts this worker writes for every worker (anomaly.state).
            tier.put(local_key, value)
        return value

    def find_record(self, parsed: ParsedCode) -> CodeRecord | None:
        assert parsed.kind is not None
        kind, code = parsed.kind, parsed.code
        cached: CodeRecord | None = self.records.get(code, self._max_age)
        if cached is not _MISSING:
            return cached
        # The filter first: a never-issued code (a guess, a typo) is told in this process,
        # ~3 µs, where the projection costs a round trip. Its negatives are believed on the
        # same terms as a projection miss (see _never_issued). Not kept in the local tier:
        # guessed codes rarely repeat, and they would push out the records that do.
        if self._never_issued(code):
            metrics.incr("filter_negatives")
            return None
        projected = self._projected(code, kind)
        if projected is not MISSING:
            self.records.put(code, projected)
            return projected
        # While the generations cannot be seen or codes are landing, a record (as an absence)
        # lives a second: what a writer saves moves the generation only when it is done.
        # While they cannot be seen, under a name of its own (see keys.code_record).
        # The name and both lifetimes from one reading of the generation: another thread's
        # refresh may change it meanwhile, and an "x" entry must never live long.
        seen = self._seen("codes")
        short = seen is None or self._importing
        found: CodeRecord | None = self._through(
            self.records,
            code,
            keys.code_record(seen, code),
            1 if short else self.record_ttl_s,
            1 if short else self.absent_ttl_s,
            lambda: self.registry.find_code(code, kind),
            _pack_record,
            lambda raw: _unpack_record(code, kind, raw),
            lock=True,
        )
        return found

    def _projected(self, code: str, kind: CodeKind) -> CodeRecord | None:
        """The projection's answer, or MISSING when it cannot give one this worker may
        believe: not built or off, the store failed, or a miss while writers are in flight
        (their codes may be saved and not yet projected) or generations cannot be read."""
        state = self._projection_state
        if self.projection is None or state not in (COMPLETE, WRITING):
            return MISSING  # type: ignore[no-any-return]
        record = self.projection.get(code, kind)
        if record is MISSING:
            return MISSING  # type: ignore[no-any-return]
        if record is None and (state != COMPLETE or self._importing or not self._gens_ok):
            metrics.incr("projection_misses_asked")
            return MISSING  # type: ignore[no-any-return]
        metrics.incr("projection_reads")
        return record  # type: ignore[no-any-return]

    def _never_issued(self, code: str) -> bool:
        """The filter says the code was never issued, and this worker may believe it.

        Its copy of the filter is as old as the last codes generation it saw. While the
        generations cannot be read it cannot tell whether codes were saved since (an import
        whose Redis went away could not move the generation): the database answers. While
        an import is in flight, its codes are in the shared bits before they are saved, so
        a negative here is asked again of the shared bits (one round trip), and if they
        cannot tell, of the database. So a saved code is never answered "never issued".
        """
        if self._filter is None or not self._gens_ok or self._filter.might_contain(code):
            return False
        if not self._importing:
            return True
        return self.filters is not None and self.filters.might_contain(code) is False

    def _status_item(self, kind: str, key: Any, load: Callable[[], Any], cls: type) -> Any:
        # Held here already: nothing to name (three of these a verify, all but never missed).
        value = self.status.get((kind, key), self._max_age)
        if value is not _MISSING:
            return value
        # Kept a second while the generations cannot be read (see keys.status_record); an
        # absence also while codes land. Name and lifetimes from one reading (see find_record).
        seen = self._seen("status")
        return self._through(
            self.status,
            (kind, key),
            keys.status_record(seen, kind, key),
            1 if seen is None else self.status_ttl_s,
            1 if seen is None or self._importing else self.absent_ttl_s,
            load,
            _pack_dataclass,
            lambda raw: _unpack_dataclass(cls, raw),
            lock=False,
        )

    def place_of(self, parsed: ParsedCode, today: date) -> StorePlace | None:
        """Where the scan store may read this code's record itself, in the verify's own
        round trip; None: `resolve` it here. Only for a code this worker does not hold and
        its filter does not call never issued, while the projection is complete and the
        generations are read (the terms on which a projection read is believed at all)."""
        self.refresh()
        gens = self._gens
        if (
            self.in_store is None
            or self._projection_state != COMPLETE
            or self._importing
            or not self._gens_ok
            or gens is None
            or parsed.kind is None
        ):
            return None
        code = parsed.code
        if self.records.get(code, self._max_age) is not _MISSING or self._never_issued(code):
            return None
        bucket, field = self.in_store(code, parsed.kind)
        facts = keys.PREFIX + keys.verdict_facts(gens.get("status", 0), today.toordinal())
        return StorePlace(bucket, field, facts, "b" if parsed.kind is CodeKind.BQ else "g")

    def resolution_of(self, parsed: ParsedCode, value: str) -> Resolution:
        """A code's resolution from its projection value, as the scan store read it."""
        assert parsed.kind is not None
        record = decode(parsed.code, parsed.kind, value)
        metrics.incr("projection_reads")
        self.records.put(parsed.code, record)
        return self._resolution(record)

    def resolve(self, parsed: ParsedCode) -> Resolution:
        self.refresh()
        record = self.find_record(parsed)
        if record is None:
            return Resolution(None)
        return self._resolution(record)

    def _resolution(self, record: CodeRecord) -> Resolution:
        if record.kind is CodeKind.BQ:
            batch = self._status_item(
                "batch", record.group_id, lambda: self.registry.batch_group(record.group_id), BatchGroup
            )
            state = None
            if batch is not None:
                state = self._status_item(
                    "bstate", batch.number, lambda: self.registry.batch_state(batch.number), BatchState
                )
            return Resolution(record, batch=batch, batch_state=state)
        group = self._status_item(
            "group", record.group_id, lambda: self.registry.label_group(record.group_id), LabelGroup
        )
        if group is None:
            return Resolution(record)
        cert = self._status_item(
            "cert",
            group.certificate_number,
            lambda: self.registry.certificate(group.certificate_number),
            CertificateState,
        )
        order = None
        if group.order_number:
            order = self._status_item(
                "order", group.order_number, lambda: self.registry.order(group.order_number or ""), OrderState
            )
        return Resolution(record, group=group, certificate=cert, order=order)
