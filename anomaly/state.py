"""The scan hot path: one Redis round trip per verify records the scan, appends the event
to a stream and returns the code's state, on which the rules run in the same request.
`RedisScanStore` runs it (the script is anomaly/scan.lua, its KEYS, ARGV and reply named
in anomaly/scripts.py); `MemoryScanStore` is its in-process twin.

Keys (prefix `s:` by default); the per-code ones share the hash tag `{code}`:

    s:{C}:h   hash   n (count), f (first ms), fc / fp (first city / province); while the
                     code has been scanned once, that scan's history entry (e1) and
                     identity (n1) too: the four keys below are made at its second scan
    s:{C}:u   hash   scanner → "first_ms,count" (at most scanners_max scanners)
    s:{C}:z   zset   scanner → last ms (distinct scanners in a window: one ZCOUNT)
    s:{C}:n   zset   identity (network or verified session) → last ms, likewise
    s:{C}:r   list   the last recent_max scans
                     "ms|scanner|city|province|lat|lng|~<source><identity>|event_id"
    s:{C}:fl  hash   rule → "severity|raised_ms|status" (open, confirmed, dismissed)
    s:{C}:ev  set    ids of imported events (idempotent imports; live ids are 128 random bits)
    s:e:{S}   set    never-issued codes looked up by scanner S in its current hour
    s:e:{I}   set    the same per IP hash I (a guesser rotating client ids)
    s:stream  stream every event (one JSON field "e"), drained into the database by the worker
    s:flags   stream every raised or escalated flag (one JSON field "flag"), likewise

The scanner is the keyed hash of the client id, else of the IP (the caller decides).

On one server a live scan of a code the worker does not hold comes with no verdict: the
script reads the code's record from the projection (cache.projection's bucket) and its
group's verdict facts (cache.keys.verdict_facts) first, and returns before doing anything
when either is missing (`InStore`, `_write_facts`): one round trip for a first scan.

Enumeration is keyed to the client first: a client id with more than
`enumeration_per_hour` never-issued codes is refused (429) whatever it asks; its further
guesses do not spend its IP's budget. The IP's budget (`enumeration_ip_per_hour`, sized
for carrier NAT) is spent by never-issued codes from clients not yet refused and from
requests without a client id; past it that IP's never-issued lookups are refused, while
its lookups of issued codes are answered and recorded but never become a code's first
scan. A refused lookup records nothing (no count, no event). Read-only lookups of
never-issued codes (channel `peek`) count toward both budgets and record nothing.

The public "first queried on … in …" comes from the first scan; its city only when that
scan's place is not a client's claim (an IP's city, or a verified session's GPS):
coordinates sent in a public request never name the code's first place.
On one server the script touches all of these in its one call. On a Redis Cluster a
script may touch one slot only, so the keys are placed by slot (cache.projection's slot
groups) and a scan takes a round trip per slot it needs, each to the node holding it:

    s:{g<G>}:<C>:h, …  the code's keys, tagged by its slot group G (64 groups)
    s:{g<G>}:stream    the group's events; s:{g<G>}:flags its flags (the worker reads
                       every group's streams, per node)
    s:e:{S}, s:e:{I}   the client's and the IP's sets, each in its own slot
    s:q:{P}            the product's tally, in its own slot

First the gate (anomaly/gate.lua on the client's set, then on the IP's: their slots
differ, and the IP's count depends on the client's verdict; one pipelined round trip of
two SCARDs when nothing is counted, i.e. for issued codes), then scan.lua on the code's
slot with the gate's verdict, then, only at a code's first genuine scan of a counted
product, the tally (one round trip). The request's rate-limit windows, when the limits
live on the same cluster, are counted in the gate's round trip (INCR and EXPIRE NX each,
pipelined to their nodes); over any, nothing else is counted or recorded, as on one
server. For a never-issued code the gate's scripts then follow in their own round trips,
so that a refused request spends no enumeration budget either.

Flags are evaluated in Python on the returned state. Only when one is new or escalates is
there a second, rare call (an atomic upsert that never downgrades a flag and keeps a
review's "confirmed"); every later verify sees it in its single round trip.

`MemoryScanStore` runs the same logic in process for the embedded default.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import redis

from anomaly.events import ScanEvent
from anomaly.rules import (
    CODE_RULE_NAMES,
    DAY_MS,
    HOUR_MS,
    CodeScanState,
    ProductContext,
    RecentScan,
    RuleConfig,
    evaluate,
    label_rules,
    product_rules,
)
from anomaly.scripts import (
    FlagArgs,
    FlagKeys,
    FlagReply,
    ScanArgs,
    ScanKeys,
    ScanReply,
    flag_script,
    gate_script,
    scan_script,
)
from cache.projection import SLOT_GROUPS, group_tag, slot_group
from cache.redis_cache import REDIS_ERRORS, LazyCluster
from domain import metrics
from domain.errors import DomainError
from domain.scans import (
    ACTIVE_STATUSES,
    LOOKUP_CHANNEL,
    SEVERITY_RANK,
    Flag,
    FlagRule,
    FlagStatus,
    LabelFacts,
    PlaceSource,
    Severity,
    StorePlace,
)

log = logging.getLogger(__name__)

DEFAULT_PREFIX = "s:"
STREAM = DEFAULT_PREFIX + "stream"
FLAG_STREAM = DEFAULT_PREFIX + "flags"
NOT_FOUND_TTL_MS = DAY_MS  # state of never-issued codes is not worth keeping long
# A day's verdict facts (cache.keys.verdict_facts) are read that day only; kept past its end
# in any time zone, then gone.
FACTS_TTL_MS = 2 * DAY_MS
FLAG_STREAM_MAXLEN = 100_000

# The script's history gate (anomaly/scan.lua) names each rule: a new rule needs its own
# test there.
_GATED = {FlagRule.DISTINCT_SCANNERS, FlagRule.VELOCITY, FlagRule.IMPOSSIBLE_TRAVEL, FlagRule.PROVINCE_SPREAD}
if set(CODE_RULE_NAMES) != _GATED:
    raise RuntimeError(f"the scan script's history gate does not know every rule: {CODE_RULE_NAMES}")


@dataclass(frozen=True, slots=True)
class ScanOutcome:
    """A code's scan state as the answer shows it, this scan included.

    `flags` are the open and confirmed flags (dismissed ones are left out); `you_*` are
    None when the event had no scanner; `throttled`: the scanner or its IP is guessing
    codes; `duplicate`: an imported event id already recorded (nothing was changed)."""

    count: int
    first_at: datetime | None
    first_city: str | None
    distinct_scanners: int
    you_count: int | None
    you_first_at: datetime | None
    flags: tuple[Flag, ...]
    throttled: bool = False
    duplicate: bool = False
    limited_s: int = 0  # over a rate-limit window: nothing was recorded (seconds to wait)
    # Resolved in the script (`InStore`): the code's projection value; "" when it could
    # not be resolved there (nothing was counted or recorded).
    resolved: str | None = None


# A scan whose code the store could not resolve (`InStore`): nothing counted or recorded.
_UNRESOLVED = ScanOutcome(0, None, None, 0, None, None, (), resolved="")


@dataclass(frozen=True, slots=True)
class InStore:
    """A scan whose code the script resolves in the same round trip (one server): where
    its record lies, and what the verify makes of a projection value there: (verdict,
    product, label). The script records the verdict the facts give for the code's group;
    the caller writes the facts when its group has none yet (`_write_facts`)."""

    place: StorePlace
    # None for a read (a GET records nothing, so needs no verdict, product or label).
    facts: Callable[[str], tuple[str, ProductContext | None, LabelFacts | None]] | None = None


class ScanStoreUnavailable(Exception):
    """Redis failed or timed out: the caller answers without scans and counts it."""


FlagSink = Callable[[str, Flag], None]
StoredFlags = dict[str, tuple[str, int, str]]  # rule -> (severity, raised ms, status)


def stream_names(prefix: str = DEFAULT_PREFIX, *, cluster: bool = False) -> tuple[list[str], list[str]]:
    """(event streams, flag streams) of a scan store: one of each on one server, one per
    slot group on a cluster."""
    if not cluster:
        return [prefix + "stream"], [prefix + "flags"]
    tags = [group_tag(g) for g in range(SLOT_GROUPS)]
    return [f"{prefix}{t}:stream" for t in tags], [f"{prefix}{t}:flags" for t in tags]


def _ms_dt(ms: int | None) -> datetime | None:
    return datetime.fromtimestamp(ms / 1000, UTC) if ms else None


def _num(text: str) -> float | None:
    return float(text) if text else None


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


_SOURCES = {"w": PlaceSource.WECHAT, "g": PlaceSource.GPS, "i": PlaceSource.IP}
_SOURCE_CHARS: dict[str, str] = {v: k for k, v in _SOURCES.items()}


def _trust(event: ScanEvent) -> str:
    """The history entry's trust field: "~", the place's source and the identity."""
    return "~" + _SOURCE_CHARS.get(event.place_source or "", "-") + (event.identity or "")


def _recent(entries: list[str]) -> tuple[RecentScan, ...]:
    out = []
    for entry in entries:
        parts = entry.split("|", 7)
        identity = source = None
        if len(parts) == 8 and parts[6].startswith("~"):
            trust = parts.pop(6)
            source, identity = _SOURCES.get(trust[1:2]), trust[2:] or None
        else:  # recorded before identities were kept
            parts = entry.split("|", 6)
        at, scanner, city, prov, lat, lng, event_id = parts
        out.append(
            RecentScan(
                int(at),
                scanner or None,
                city or None,
                prov or None,
                _num(lat),
                _num(lng),
                event_id,
                identity,
                source,
            )
        )
    out.sort(key=lambda s: s.at_ms, reverse=True)
    return tuple(out)


def _kg(product: ProductContext | None) -> str:
    """The package weight the script counts a product's code under; "" for no count."""
    return repr(product.package_kg) if product is not None and product.counts_codes else ""


def _seen(pairs: list[Any]) -> dict[float, int]:
    return {float(_text(kg)): int(n) for kg, n in zip(pairs[::2], pairs[1::2], strict=True)}


def _stored_flags(pairs: list[str]) -> StoredFlags:
    flags = {}
    for rule, value in zip(pairs[::2], pairs[1::2], strict=True):
        severity, raised, status = value.split("|", 2)
        flags[rule] = (severity, int(raised), status)
    return flags


def _changed_flags(raised: list[Flag], stored: StoredFlags) -> list[Flag]:
    """Flags to write: new rules, and escalations from warn to suspicious. A dismissed flag
    stays dismissed unless it escalates; a confirmed one keeps its status."""
    return [
        flag
        for flag in raised
        if flag.rule not in stored
        or SEVERITY_RANK[flag.severity] > SEVERITY_RANK.get(stored[flag.rule][0], 0)
    ]


def _apply(stored: StoredFlags, flag: Flag) -> None:
    old_status = stored[flag.rule][2] if flag.rule in stored else ""
    status = FlagStatus.CONFIRMED if old_status == FlagStatus.CONFIRMED else FlagStatus.OPEN
    stored[flag.rule] = (flag.severity, _ms(flag.raised_at), status)


def _settled(stored: StoredFlags) -> frozenset[str]:
    return frozenset(
        rule for rule, (severity, _at, _status) in stored.items() if severity == Severity.SUSPICIOUS
    )


def _active(stored: StoredFlags) -> tuple[Flag, ...]:
    return tuple(
        Flag(rule, sev, _ms_dt(raised) or datetime.now(UTC), {})
        for rule, (sev, raised, status) in sorted(stored.items())
        if status in ACTIVE_STATUSES  # the flags a verify answers with
    )


def _ms(at: datetime) -> int:
    return int(at.timestamp() * 1000)


def _probe(code: str, client: str | None, at: datetime | None) -> ScanEvent:
    return ScanEvent(
        "", code, at or datetime.now(UTC), LOOKUP_CHANNEL, "", client, None, None, None, None, None
    )


class ScanStateStore(Protocol):
    """The live scan state and rules behind the scan ledger: `RedisScanStore` (shared by
    every worker) or `MemoryScanStore` (in process). Both take a minimized ScanEvent and
    answer a ScanOutcome; the property test in tests/integration/test_anomaly_redis.py
    holds them to the same answers."""

    def record(
        self,
        event: ScanEvent,
        *,
        record_scan: bool = ...,
        sync_flags: bool = ...,
        dedupe: bool = ...,
        product: ProductContext | None = ...,
        label: LabelFacts | None = ...,
        windows: str = ...,
        resolve: InStore | None = ...,
    ) -> ScanOutcome: ...
    def peek(
        self,
        code: str,
        client: str | None,
        *,
        at: datetime | None = ...,
        windows: str = ...,
        resolve: InStore | None = ...,
    ) -> ScanOutcome: ...
    def set_flag_status(self, code: str, rule: str, status: str) -> None: ...


class RedisScanStore:
    """The scan state in Redis: one scan.lua call per verify (see the module docstring),
    the rules run here on its reply, and a flags.lua call only when a flag is new or
    escalates. Raises ScanStoreUnavailable when Redis fails or times out."""

    def __init__(
        self,
        client: redis.Redis,
        config: RuleConfig,
        key_prefix: str = DEFAULT_PREFIX,
        *,
        flag_sink: FlagSink | None = None,
        stream_maxlen: int = 1_000_000,
        register_script: Callable[[str], Any] | None = None,
    ) -> None:
        """`register_script`: how the scan and flag scripts are called (redis-py's by
        default; the root passes cache.redis_cache.DirectCalls.script on one server, ~30 µs
        of CPU less per call)."""
        self.client = client
        self.config = config
        self.prefix = key_prefix
        self.stream = key_prefix + "stream"
        self.flag_stream = key_prefix + "flags"
        self.flag_sink = flag_sink
        self.stream_maxlen = stream_maxlen
        register = register_script or client.register_script
        self.script = register(scan_script())
        # A copy campaign raises or escalates a flag on about one scan in four (the bench's
        # hot set): that call takes the same short path.
        self.flag_script = register(flag_script())
        # On a cluster the keys are placed by slot and a scan spans several (module docstring).
        self.cluster = isinstance(client, LazyCluster)
        self.gate_script = client.register_script(gate_script()) if self.cluster else None

    def _code_base(self, code: str) -> str:
        """The prefix of a code's keys: `s:{C}` on one server, `s:{g<G>}:C` on a cluster."""
        if self.cluster:
            return f"{self.prefix}{group_tag(slot_group(code))}:{code}"
        return f"{self.prefix}{{{code}}}"

    def guess_keys(self, scanner: str | None, ip_hash: str | None) -> tuple[str, str]:
        """The client's and the IP's sets of never-issued codes (the same set when the
        scanner is the IP); each its own slot on a cluster."""
        p = self.prefix
        if self.cluster:
            return f"{p}e:{{{scanner or '-'}}}", f"{p}e:{{{ip_hash or scanner or '-'}}}"
        return f"{p}e:{scanner or '-'}", f"{p}e:{ip_hash or scanner or '-'}"

    def product_key(self, product: str | None) -> str:
        return f"{self.prefix}q:{{{product or '-'}}}" if self.cluster else f"{self.prefix}q:{product or '-'}"

    def keys(
        self, code: str, scanner: str | None, ip_hash: str | None = None, product: str | None = None
    ) -> ScanKeys:
        p, base = self.prefix, self._code_base(code)
        if self.cluster:
            # One slot per call: the sets and the tally are counted by their own calls, and
            # the state key stands in for them (the script does not touch them here).
            state = base + ":h"
            return ScanKeys(
                state=state,
                scanners=base + ":u",
                recent=base + ":r",
                flags=base + ":fl",
                event_ids=base + ":ev",
                client_guesses=state,
                stream=f"{p}{group_tag(slot_group(code))}:stream",
                scanner_last=base + ":z",
                ip_guesses=state,
                product_codes=state,
                identities=base + ":n",
                bucket=state,
                facts=state,
            )
        tag = base[len(p) :]
        return ScanKeys(
            state=f"{p}{tag}:h",
            scanners=f"{p}{tag}:u",
            recent=f"{p}{tag}:r",
            flags=f"{p}{tag}:fl",
            event_ids=f"{p}{tag}:ev",
            client_guesses=f"{p}e:{scanner or '-'}",
            stream=self.stream,
            scanner_last=f"{p}{tag}:z",
            ip_guesses=f"{p}e:{ip_hash or scanner or '-'}",
            product_codes=f"{p}q:{product or '-'}",
            identities=f"{p}{tag}:n",
        )

    def flags_key(self, code: str) -> str:
        return self._code_base(code) + ":fl"

    def flag_stream_of(self, code: str) -> str:
        if self.cluster:
            return f"{self.prefix}{group_tag(slot_group(code))}:flags"
        return self.flag_stream

    def _gate(self, event: ScanEvent, counting: bool, windows: str) -> str | int:
        """The rate-limit windows and the enumeration sets counted in their own slots (a
        cluster): scan.lua's A_GATE, or the seconds to wait when a window is exceeded."""
        cfg = self.config
        scanner, ip = event.client or "", event.ip_hash or ""
        client_key, ip_key = self.guess_keys(event.client, event.ip_hash)
        by_ip = bool(ip) and client_key == ip_key  # no client id: the scanner is the IP
        ask_client = bool(scanner) and not by_ip
        # The limits library's fixed windows, as scan.lua counts them on one server.
        lines = [line.rsplit(" ", 2) for line in windows.split("\n")] if windows else []
        pipe = self.client.pipeline(transaction=False)
        for key, expiry, _limit in lines:
            pipe.incrby(key, 1)
            pipe.expire(key, int(expiry), nx=True)
        reads = not counting  # nothing is added: the sets are read in the same round trip
        if reads and ask_client:
            pipe.scard(client_key)
        if reads and ip:
            pipe.scard(ip_key)
        replies = pipe.execute() if lines or (reads and (ask_client or ip)) else []
        over = [key for (key, _e, limit), n in zip(lines, replies[0::2], strict=False) if int(n) > int(limit)]
        if over:
            # Refused: the longest exceeded window's reset (a rare second round trip).
            ttls = [int(self.client.ttl(key)) for key in over]
            return max(1, *ttls)
        cards = replies[2 * len(lines) :]
        if reads:
            client_over = ask_client and int(cards[0]) > cfg.enumeration_per_hour
            ip_over = bool(ip) and int(cards[-1]) > cfg.enumeration_ip_per_hour
        else:
            assert self.gate_script is not None
            client_over = ask_client and bool(
                self.gate_script(keys=[client_key], args=["1", cfg.enumeration_per_hour, event.code])
            )
            # A refused client's guesses do not spend its neighbours' budget.
            ip_over = bool(ip) and bool(
                self.gate_script(
                    keys=[ip_key],
                    args=["0" if client_over else "1", cfg.enumeration_ip_per_hour, event.code],
                )
            )
        return f"{int(client_over)}{int(ip_over)}"

    def _count_product(self, product: ProductContext, reply: ScanReply) -> ScanReply:
        """The product's tally in its own slot (a cluster), after the code's first genuine scan."""
        key = self.product_key(product.key)
        pipe = self.client.pipeline(transaction=False)
        pipe.hincrby(key, _kg(product), 1)
        pipe.pexpire(key, self.config.retention_days * DAY_MS)
        pipe.hgetall(key)
        seen = pipe.execute()[2]
        return reply._replace(product_codes=[x for kv in seen.items() for x in kv])

    def record(
        self,
        event: ScanEvent,
        *,
        record_scan: bool = True,
        sync_flags: bool = False,
        dedupe: bool = False,
        product: ProductContext | None = None,
        label: LabelFacts | None = None,
        windows: str = "",
        resolve: InStore | None = None,
    ) -> ScanOutcome:
        """Record one scan (or, with record_scan=False, only read) in one round trip and
        evaluate the rules on the result. `sync_flags`: also hand raised flags to
        `flag_sink` before returning (imports, whose callers read the flag list next); live
        scans leave that to the worker. `dedupe`: the event id came from outside and may be
        seen again (imports). `resolve`: a live scan's code is resolved by the script
        (event.verdict ""; `product` and `label` come from `resolve.facts`), or a read's
        (record_scan=False, no facts: only its projection value is read), on one server."""
        if resolve is not None and (self.cluster or event.verdict or (record_scan and resolve.facts is None)):
            raise ValueError(
                "only a live scan or a read with no verdict is resolved by the script, on one server"
            )
        cfg = self.config
        # A read-only lookup of a never-issued code: counted toward enumeration, not recorded.
        lookup = record_scan and event.channel == LOOKUP_CHANNEL
        if lookup:
            record_scan = False
        source = event.place_source
        ttl = NOT_FOUND_TTL_MS if event.verdict == "not_found" else cfg.retention_days * DAY_MS
        genuine = event.verdict == "genuine"
        args = ScanArgs(
            now=event.at_ms,
            scanner=event.client or "",
            city=event.city or "",
            province=event.province or "",
            lat="" if event.lat is None else event.lat,
            lng="" if event.lng is None else event.lng,
            verdict=event.verdict,
            record="1" if record_scan else "0",
            event_id=event.event_id if record_scan else "",
            distinct_window_ms=cfg.distinct_window_days * DAY_MS,
            recent_max=cfg.recent_max,
            scanners_max=cfg.scanners_max,
            enumeration_per_hour=cfg.enumeration_per_hour,
            ttl_ms=ttl,
            stream_maxlen=self.stream_maxlen,
            dedupe="1" if record_scan and dedupe else "0",
            event_json=event.to_json() if record_scan else "",
            ip_hash=event.ip_hash or "",
            code=event.code,
            enumeration_ip_per_hour=cfg.enumeration_ip_per_hour,
            has_coordinates="" if event.lng is None else "1",
            provinces=cfg.provinces,
            distinct_warn=cfg.distinct_warn,
            distinct_suspicious=cfg.distinct_suspicious,
            velocity_min=min(cfg.velocity_hour, cfg.velocity_day),
            # On a cluster the tally lies in its own slot: counted after the script (`_count_product`).
            package_kg=_kg(product) if record_scan and genuine and not self.cluster else "",
            identity=event.identity or "",
            place_shown="0" if source == PlaceSource.GPS else "1",  # a place the first scan may show
            lookup="1" if lookup else "0",
            trust=_trust(event),
            wechat_place="1" if source == PlaceSource.WECHAT else "0",
            gate="",
            windows=windows,
            field=resolve.place.field if resolve is not None else "",
            facts_prefix=resolve.place.facts_prefix if resolve is not None else "",
            product_prefix=f"{self.prefix}q:",
        )
        try:
            keys = self.keys(event.code, event.client, event.ip_hash, product.key if product else None)
            if resolve is not None:
                keys = keys._replace(bucket=resolve.place.bucket, facts=resolve.place.facts)
            if self.cluster:
                counting = (record_scan or lookup) and event.verdict == "not_found"
                gate = self._gate(event, counting, windows)
                if isinstance(gate, int):
                    return ScanOutcome(0, None, None, 0, None, None, (), limited_s=gate)
                args = args._replace(gate=gate, windows="")
            reply = ScanReply._make(self.script(keys=keys, args=args))
            made = None  # what the caller made of the code, when asked already
            if resolve is not None and _text(reply.need) == "facts":
                # The first scan of the group's codes under this generation and day: its
                # facts are written, and the script asked again (nothing was done yet).
                try:
                    made = self._write_facts(resolve, _text(reply.resolved))
                except DomainError:
                    # The group's status could not be read (the database away): nothing
                    # was counted or recorded yet, so the caller resolves the code itself
                    # and answers what that gives (a 503), its windows counted once.
                    return _UNRESOLVED
                reply = ScanReply._make(self.script(keys=keys, args=args))
            if (
                self.cluster
                and reply.first_genuine
                and record_scan
                and genuine
                and product is not None
                and product.counts_codes
            ):
                reply = self._count_product(product, reply)
        except REDIS_ERRORS as exc:
            raise ScanStoreUnavailable(str(exc)) from exc
        if resolve is None:
            if reply.limited:
                return ScanOutcome(0, None, None, 0, None, None, (), limited_s=int(reply.limited))
            return self._outcome(event, reply, record_scan, sync_flags, product, label)
        if _text(reply.need):  # not in the projection (or its facts raced away): the caller's
            metrics.incr("in_store_misses")
            return _UNRESOLVED
        value = _text(reply.resolved)
        if reply.limited:
            return ScanOutcome(0, None, None, 0, None, None, (), limited_s=int(reply.limited), resolved=value)
        if not record_scan:  # a read: the caller builds the answer from the value
            return self._outcome(event, reply, False, sync_flags, None, None, resolved=value)
        assert resolve.facts is not None
        _verdict, product, label = made or resolve.facts(value)
        event = event.with_verdict(_text(reply.verdict))
        return self._outcome(event, reply, record_scan, sync_flags, product, label, resolved=value)

    def _write_facts(
        self, resolve: InStore, value: str
    ) -> tuple[str, ProductContext | None, LabelFacts | None]:
        """The verdict facts of the group a projection value names, as the script reads them
        ("verdict|package kg|product"; the kg only for a genuine code, as `record` counts);
        returns what the caller made of the value."""
        assert resolve.facts is not None
        made = resolve.facts(value)
        verdict, product, _label = made
        kg = _kg(product) if verdict == "genuine" else ""
        place = resolve.place
        pipe = self.client.pipeline(transaction=False)
        facts = f"{verdict}|{kg}|{product.key if product else '-'}"
        pipe.hset(place.facts, place.facts_prefix + value.split(",", 1)[0], facts)
        pipe.pexpire(place.facts, FACTS_TTL_MS)
        pipe.execute()
        metrics.incr("verdict_facts_written")
        return made

    def peek(
        self,
        code: str,
        client: str | None,
        *,
        at: datetime | None = None,
        windows: str = "",
        resolve: InStore | None = None,
    ) -> ScanOutcome:
        """The same answer without recording anything (GET of a code); `resolve`: the
        script reads the code's projection value too (`resolved` in the outcome)."""
        return self.record(_probe(code, client, at), record_scan=False, windows=windows, resolve=resolve)

    def _outcome(
        self,
        event: ScanEvent,
        reply: ScanReply,
        recorded: bool,
        sync_flags: bool,
        product: ProductContext | None,
        label: LabelFacts | None = None,
        *,
        resolved: str | None = None,
    ) -> ScanOutcome:
        city = _text(reply.first_city) or None
        you_count = you_first = None
        if event.client:
            you_count = 0
            if reply.you:
                you_first_ms, count = _text(reply.you).split(",")
                you_count, you_first = int(count), _ms_dt(int(you_first_ms))
        stored = _stored_flags([_text(x) for x in reply.flags]) if reply.flags else {}
        raised: list[Flag] = []
        if recorded and not reply.duplicate and reply.recent:
            raised = self.code_rules(event, reply, stored)
        genuine_scan = (
            recorded and not reply.duplicate and not reply.throttled and event.verdict != "not_found"
        )
        if genuine_scan and (product is not None or label is not None):
            scan = RecentScan.of(event)  # once: its identity and place source are worked out
            if product is not None:
                raised += product_rules(product, scan, _seen(reply.product_codes), event.at)
            if label is not None:
                raised += label_rules(label, scan, event.verdict == "genuine", event.at)
        if raised and (changed := _changed_flags(raised, stored)):
            stored = self._raise(event.code, changed, sync=sync_flags)
        return ScanOutcome(
            reply.scans,
            _ms_dt(reply.first_ms),
            city,
            reply.distinct,
            you_count,
            you_first,
            _active(stored) if stored else (),
            bool(reply.throttled),
            bool(reply.duplicate),
            resolved=resolved,
        )

    def code_rules(self, event: ScanEvent, reply: ScanReply, stored: StoredFlags) -> list[Flag]:
        """The per-code rules on the state the script returned for `event` (a scan it
        recorded), skipping the rules `stored` already holds at their highest severity."""
        state = CodeScanState(
            code=event.code,
            now_ms=event.at_ms,
            count=reply.scans,
            first_at_ms=reply.first_ms or None,
            first_city=_text(reply.first_city) or None,
            distinct_scanners=reply.distinct,
            recent=_recent([_text(x) for x in reply.recent]),
            distinct_networks=reply.identities,
        )
        return evaluate(state, self.config, _settled(stored))

    def _raise(self, code: str, flags: list[Flag], *, sync: bool) -> StoredFlags:
        args: list[Any] = list(
            FlagArgs(stream_maxlen=FLAG_STREAM_MAXLEN, ttl_ms=self.config.retention_days * DAY_MS)
        )
        by_rule = {flag.rule: flag for flag in flags}
        for flag in flags:
            args += [flag.rule, flag.severity, _ms(flag.raised_at), flag_payload(code, flag)]
        try:
            keys = FlagKeys(flags=self.flags_key(code), flag_stream=self.flag_stream_of(code))
            reply = FlagReply._make(self.flag_script(keys=keys, args=args))
        except REDIS_ERRORS as exc:
            raise ScanStoreUnavailable(str(exc)) from exc
        if sync and self.flag_sink is not None:
            for rule in reply.written:
                try:
                    self.flag_sink(code, by_rule[_text(rule)])
                except Exception:  # the flags stream still carries it to the worker
                    log.exception("flag not written to the database now; the worker will")
        return _stored_flags([_text(x) for x in reply.flags])

    def set_flag_status(self, code: str, rule: str, status: str) -> None:
        """A review (confirmed, dismissed, reopened) as the next verify must see it."""
        key = self.flags_key(code)
        try:
            current = self.client.hget(key, rule)
            severity, raised = _text(current).split("|")[:2] if current else (Severity.WARN, "0")
            self.client.hset(key, rule, f"{severity}|{raised}|{status}")
        except REDIS_ERRORS as exc:
            raise ScanStoreUnavailable(str(exc)) from exc


def flag_payload(code: str, flag: Flag) -> str:
    """A flag as one JSON stream field, read back by `anomaly.worker`."""
    return json.dumps(
        {
            "code": code,
            "rule": flag.rule,
            "severity": flag.severity,
            "raised_at": flag.raised_at.isoformat(),
            "evidence": flag.evidence,
        },
        ensure_ascii=False,
    )


@dataclass
class _CodeState:
    n: int = 0
    first_ms: int | None = None
    first_city: str | None = None
    scanners: dict[str, tuple[int, int, int]] = field(default_factory=dict)  # (first, last, count)
    idents: dict[str, int] = field(default_factory=dict)  # identity -> last ms
    recent: list[RecentScan] = field(default_factory=list)  # newest first
    flags: StoredFlags = field(default_factory=dict)
    event_ids: set[str] = field(default_factory=set)


class MemoryScanStore:
    """The same state and rules in process (embedded default: one machine, no Redis).
    Thread-safe. Events go straight to `event_sink` (the SQL store) instead of a stream,
    and flags to `flag_sink` at once: there is no worker in this deployment."""

    def __init__(
        self,
        config: RuleConfig,
        *,
        flag_sink: FlagSink | None = None,
        event_sink: Callable[[list[ScanEvent]], None] | None = None,
    ) -> None:
        self.config = config
        self.flag_sink = flag_sink
        self.event_sink = event_sink
        self._lock = threading.Lock()
        self.codes: dict[str, _CodeState] = {}
        self.enum: dict[str, tuple[int, set[str]]] = {}  # scanner or IP -> (window start, codes)
        # Certificate product -> its distinct scanned codes (over-quantity). Not rebuilt by
        # `restore`: stored events do not carry their product.
        self.products: dict[str, dict[float, int]] = {}  # product -> package kg -> codes

    def _state(self, code: str) -> _CodeState:
        st = self.codes.get(code)
        if st is None:
            st = self.codes[code] = _CodeState()
        return st

    def _guessing(self, key: str, event: ScanEvent, limit: int, counting: bool) -> bool:
        start, codes = self.enum.get(key, (event.at_ms, set()))
        if event.at_ms - start >= HOUR_MS:
            start, codes = event.at_ms, set()
        if counting and len(codes) <= limit:
            codes.add(event.code)
        if codes:
            self.enum[key] = (start, codes)
        if len(self.enum) > 100_000:
            # Forget closed windows rather than grow with every client ever seen.
            self.enum = {k: v for k, v in self.enum.items() if event.at_ms - v[0] < HOUR_MS}
        return len(codes) > limit

    def record(
        self,
        event: ScanEvent,
        *,
        record_scan: bool = True,
        sync_flags: bool = True,
        dedupe: bool = True,
        product: ProductContext | None = None,
        label: LabelFacts | None = None,
        windows: str = "",
        resolve: InStore | None = None,
    ) -> ScanOutcome:
        """As `RedisScanStore.record`; flags always reach `flag_sink` before returning
        and every event id is deduplicated (`sync_flags`/`dedupe` are accepted for a
        common signature). No windows are ever handed to it: in process, rate limits are
        counted in process before the verify (webapp.limits). Nor does it resolve codes
        (`resolve`: answered unresolved, nothing done; the caller resolves them)."""
        del sync_flags, dedupe
        if resolve is not None:
            return _UNRESOLVED
        if windows:
            raise ValueError("the in-process scan store counts no rate-limit windows")
        cfg = self.config
        lookup = record_scan and event.channel == LOOKUP_CHANNEL
        if lookup:
            record_scan = False
        with self._lock:
            st = self._state(event.code)
            duplicate = False
            if record_scan and event.event_id in st.event_ids:
                duplicate, record_scan = True, False
            if record_scan:
                st.event_ids.add(event.event_id)
            scanner = event.client
            found = event.verdict != "not_found"
            # Enumeration keyed to the client first (see the module docstring).
            counting = (record_scan or lookup) and not found
            by_ip = bool(event.ip_hash) and event.ip_hash == scanner
            client_over = ip_over = False
            if scanner and not by_ip:
                client_over = self._guessing(scanner, event, cfg.enumeration_per_hour, counting)
            if event.ip_hash:
                limit = cfg.enumeration_ip_per_hour
                ip_over = self._guessing(event.ip_hash, event, limit, counting and not client_over)
            throttled = client_over or (ip_over and not found)
            if throttled:
                record_scan = False  # a refused lookup records nothing
            seen: dict[float, int] = {}
            if record_scan:
                st.n += 1
                if found:
                    counted = product is not None and product.counts_codes and event.verdict == "genuine"
                    if not ip_over and st.first_ms is None and counted:
                        assert product is not None and product.package_kg is not None
                        counts = self.products.setdefault(product.key, {})
                        counts[product.package_kg] = counts.get(product.package_kg, 0) + 1
                        seen = dict(counts)
                    if not ip_over and (st.first_ms is None or event.at_ms < st.first_ms):
                        # A place the client only claimed does not name the first place.
                        city = event.city if event.place_source != "gps" else None
                        st.first_ms, st.first_city = event.at_ms, city
                    # The identity is taken at the scanner's first scan (see the script).
                    ident = event.identity
                    if scanner and ident:
                        if ident in st.idents:
                            st.idents[ident] = max(st.idents[ident], event.at_ms)
                        elif scanner not in st.scanners and len(st.idents) < cfg.scanners_max:
                            st.idents[ident] = event.at_ms
                    if scanner:
                        if scanner in st.scanners:
                            first, last, count = st.scanners[scanner]
                            at = event.at_ms
                            st.scanners[scanner] = (min(first, at), max(last, at), count + 1)
                        elif len(st.scanners) < cfg.scanners_max:
                            st.scanners[scanner] = (event.at_ms, event.at_ms, 1)
                    st.recent.insert(0, RecentScan.of(event))
                    del st.recent[cfg.recent_max :]
            since = event.at_ms - cfg.distinct_window_days * DAY_MS
            distinct = sum(1 for _f, last, _c in st.scanners.values() if last >= since)
            idents = min(distinct, sum(1 for last in st.idents.values() if last >= since))
            you = st.scanners.get(scanner) if scanner else None
            raised: list[Flag] = []
            if record_scan and found and distinct >= 2:
                state = CodeScanState(
                    event.code,
                    event.at_ms,
                    st.n,
                    st.first_ms,
                    st.first_city,
                    distinct,
                    tuple(sorted(st.recent, key=lambda s: s.at_ms, reverse=True)),
                    idents,
                )
                raised = evaluate(state, cfg, _settled(st.flags))
            if record_scan and found and not throttled and product is not None:
                raised += product_rules(product, RecentScan.of(event), seen, event.at)
            if record_scan and found and not throttled and label is not None:
                raised += label_rules(label, RecentScan.of(event), event.verdict == "genuine", event.at)
            if raised:
                raised = _changed_flags(raised, st.flags)
                for flag in raised:
                    _apply(st.flags, flag)
            outcome = ScanOutcome(
                st.n,
                _ms_dt(st.first_ms),
                st.first_city,
                distinct,
                (you[2] if you else 0) if scanner else None,
                _ms_dt(you[0]) if you else None,
                _active(st.flags),
                throttled,
                duplicate,
            )
            if not st.n and not st.flags:
                del self.codes[event.code]  # a peek at a never-scanned code leaves nothing
        if record_scan and self.event_sink is not None:
            self.event_sink([event])
        if self.flag_sink is not None:
            for flag in raised:
                self.flag_sink(event.code, flag)
        return outcome

    def peek(
        self,
        code: str,
        client: str | None,
        *,
        at: datetime | None = None,
        windows: str = "",
        resolve: InStore | None = None,
    ) -> ScanOutcome:
        return self.record(_probe(code, client, at), record_scan=False, windows=windows, resolve=resolve)

    def restore(self, events: Iterable[ScanEvent], flags: Iterable[tuple[str, str, str, int, str]]) -> int:
        """Rebuild the in-process state after a restart from the stored events (oldest first)
        and the stored flags' reviews (code, rule, severity, raised ms, status)."""
        sinks = self.event_sink, self.flag_sink
        self.event_sink = self.flag_sink = None
        n = 0
        try:
            for event in events:
                self.record(event)
                n += 1
        finally:
            self.event_sink, self.flag_sink = sinks
        with self._lock:
            for code, rule, severity, raised_ms, status in flags:
                self._state(code).flags[rule] = (severity, raised_ms, status)
        return n

    def set_flag_status(self, code: str, rule: str, status: str) -> None:
        with self._lock:
            st = self.codes.get(code)
            if st is not None and rule in st.flags:
                severity, raised, _ = st.flags[rule]
                st.flags[rule] = (severity, raised, status)
