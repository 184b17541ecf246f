"""The scan hot path: one Redis round trip per verify records the scan, appends the event
to a stream and returns the code's state, on which the rules run in the same request.

Keys (prefix `s:` by default); the per-code ones share the hash tag `{code}`:

    s:{C}:h   hash   n (count), f (first ms), fc / fp (first city / province)
    s:{C}:u   hash   scanner → "first_ms,count" (at most scanners_max scanners)
    s:{C}:z   zset   scanner → last ms (distinct scanners in a window: one ZCOUNT)
    s:{C}:n   zset   identity (network or verified session) → last ms, likewise
    s:{C}:r   list   the last recent_max scans
                     "ms|scanner|city|province|lat|lng|~<source><identity>|event_id"
    s:{C}:fl  hash   rule → "severity|raised_ms|status" (open, confirmed, dismissed)
    s:{C}:ev  set    ids of imported events (idempotent imports; live ids are fresh uuids)
    s:e:{S}   set    never-issued codes looked up by scanner S in its current hour
    s:e:{I}   set    the same per IP hash I (a guesser rotating client ids)
    s:stream  stream every event (one JSON field "e"), drained into the database by the worker
    s:flags   stream every raised or escalated flag (one JSON field "flag"), likewise

The scanner is the keyed hash of the client id, else of the IP (the caller decides).

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
The script touches keys of several slots: it assumes one Redis primary, not a cluster.

Flags are evaluated in Python on the returned state. Only when one is new or escalates is
there a second, rare call (an atomic upsert that never downgrades a flag and keeps a
review's "confirmed"); every later verify sees it in its single round trip.

`MemoryScanRecorder` runs the same logic in process for the embedded default.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import redis

from anomaly.events import ScanEvent
from anomaly.rules import (
    CODE_RULE_NAMES,
    DAY_MS,
    HOUR_MS,
    CodeScanState,
    Flag,
    ProductContext,
    RecentScan,
    RuleConfig,
    evaluate,
    product_rules,
)
from domain.records import LOOKUP_CHANNEL

log = logging.getLogger(__name__)

DEFAULT_PREFIX = "s:"
STREAM = DEFAULT_PREFIX + "stream"
FLAG_STREAM = DEFAULT_PREFIX + "flags"
ACTIVE = ("open", "confirmed")
NOT_FOUND_TTL_MS = DAY_MS  # state of never-issued codes is not worth keeping long
FLAG_STREAM_MAXLEN = 100_000

_SCRIPT = """
local now = tonumber(ARGV[1])
local scanner = ARGV[2]
local record = ARGV[8] == '1'
local found = ARGV[7] ~= 'not_found'
local throttled = 0
local duplicate = 0
local quiet_repeat = false
local product_codes = {}
local gps = ARGV[5] ~= '' and ARGV[21] == '1'
local function pv_count(pv)
  if pv == '' then return 0 end
  local _, bars = string.gsub(pv, '|', '')
  return bars + 1
end
-- Only events that come with their own ids (imports, redeliveries) can repeat.
if record and ARGV[16] == '1' then
  if redis.call('SADD', KEYS[5], ARGV[9]) == 0 then duplicate = 1; record = false end
  redis.call('PEXPIRE', KEYS[5], ARGV[14])
end
-- Enumeration: distinct never-issued codes per client and per IP in a one-hour window.
-- A set stops growing at the limit + 1, so a guesser costs a bounded few hundred bytes.
local lookup = ARGV[29] == '1'
local counting = (record or lookup) and not found
local has_ip = ARGV[18] ~= ''
local by_ip = has_ip and KEYS[9] == KEYS[6]  -- no client id: the scanner is the IP
local client_over = false
local ip_over = false
local function count_in(key, limit)
  local c = redis.call('SCARD', key)
  if counting and c <= limit then
    if redis.call('SADD', key, ARGV[19]) == 1 then
      c = c + 1
      if c == 1 then redis.call('PEXPIRE', key, 3600000) end
    end
  end
  return c > limit
end
if scanner ~= '' and not by_ip then client_over = count_in(KEYS[6], tonumber(ARGV[13])) end
if has_ip then
  if client_over then
    -- A refused client's guesses do not spend its neighbours' budget.
    ip_over = redis.call('SCARD', KEYS[9]) > tonumber(ARGV[20])
  else
    ip_over = count_in(KEYS[9], tonumber(ARGV[20]))
  end
end
-- Refused (429): a guessing client, or a never-issued code from a guessing network.
-- A refused lookup records nothing; an issued code asked from a guessing network is
-- answered and recorded, but never as the code's first scan.
if client_over or (ip_over and not found) then
  throttled = 1
  record = false
end
local first_ok = not ip_over
if record then
  local n = redis.call('HINCRBY', KEYS[1], 'n', 1)
  -- Sliding retention, refreshed now and then rather than on every scan.
  local refresh = n == 1 or n % 16 == 0
  -- Never-issued codes keep only a count (and their events): guessers must not fill
  -- memory.
  if found then
    local st = redis.call('HMGET', KEYS[1], 'f', 'pv', 'gs', 'gm', 'tv', 'lt')
    local f = tonumber(st[1] or '0')
    if not st[5] then
      -- State from before the gate's fields were kept ('lg'): that code's history is
      -- always read, so no rule misses a scan recorded before the upgrade.
      redis.call('HSET', KEYS[1], 'tv', '1')
      if f ~= 0 then redis.call('HSET', KEYS[1], 'lg', '1') end
    end
    -- An event older than the newest one (an import out of time order): trimming the
    -- history by arrival then no longer drops the oldest scan, so pairs can appear
    -- later without GPS on the scan at hand ('oo' keeps the gate open for this code).
    local latest = tonumber(st[6] or '0')
    if now > latest then redis.call('HSET', KEYS[1], 'lt', now)
    elseif now < latest then redis.call('HSET', KEYS[1], 'oo', '1') end
    -- The product's codes seen on shelves, per package weight (a hash per certificate
    -- product), counted exactly once per code: at its first genuine scan.
    if first_ok and f == 0 and ARGV[26] ~= '' then
      redis.call('HINCRBY', KEYS[10], ARGV[26], 1)
      redis.call('PEXPIRE', KEYS[10], ARGV[14])
      product_codes = redis.call('HGETALL', KEYS[10])
    end
    if first_ok and (f == 0 or now < f) then
      -- A place the client only claimed does not name the code's first place.
      if ARGV[28] == '1' then
        redis.call('HSET', KEYS[1], 'f', now, 'fc', ARGV[3], 'fp', ARGV[4])
      else
        redis.call('HSET', KEYS[1], 'f', now, 'fc', '', 'fp', '')
      end
      -- A code looked up before it was issued got the short not-found lifetime: lengthen it.
      if f == 0 then refresh = true end
    end
    local known_scanner = false
    if scanner ~= '' then
      local v = redis.call('HGET', KEYS[2], scanner)
      known_scanner = v ~= false
      if v then
        local first, cnt = string.match(v, '(%d+),(%d+)')
        redis.call('HSET', KEYS[2], scanner, math.min(tonumber(first), now) .. ',' .. (tonumber(cnt) + 1))
        local last = tonumber(redis.call('ZSCORE', KEYS[8], scanner) or '0')
        if now > last then
          redis.call('ZADD', KEYS[8], now, scanner)
        end
        -- The same scanner again within the hour, without GPS or any place: no rule can
        -- change (each folds a scanner's repeats, only GPS places make travel pairs, and
        -- a place could be this scanner's first for the province spread), so the history
        -- need not be read. The common case: a shopper checking twice.
        -- Not for an import older than the scanner's last scan: its windows reach further back.
        local recent_repeat = last >= now - 3600000 and last <= now
        if recent_repeat and ARGV[5] == '' and ARGV[4] == '' then quiet_repeat = true end
        if redis.call('ZSCORE', KEYS[11], ARGV[27]) == false then quiet_repeat = false end
      elseif redis.call('ZCARD', KEYS[8]) < tonumber(ARGV[12]) then
        redis.call('HSET', KEYS[2], scanner, now .. ',1')
        redis.call('ZADD', KEYS[8], now, scanner)
      else
        -- Past the cap the distinct count stops growing but the history still holds
        -- these scanners: the count no longer bounds the velocity rule.
        redis.call('HSET', KEYS[1], 'cap', '1')
      end
    end
    -- The scanner's identity (its network, or its verified session), taken at its first
    -- scan: a shopper re-checking from other networks on a trip is still one identity.
    if scanner ~= '' and ARGV[27] ~= '' then
      local last_seen = redis.call('ZSCORE', KEYS[11], ARGV[27])
      if last_seen then
        if now > tonumber(last_seen) then redis.call('ZADD', KEYS[11], now, ARGV[27]) end
      elseif not known_scanner and redis.call('ZCARD', KEYS[11]) < tonumber(ARGV[12]) then
        redis.call('ZADD', KEYS[11], now, ARGV[27])
      end
    end
    -- What the history gate below needs without reading the history: the first few
    -- provinces seen (up to the spread threshold) and whether two scanners sent GPS.
    if ARGV[4] ~= '' and scanner ~= '' then
      local pv = st[2] or ''
      local seen = string.find('|' .. pv .. '|', '|' .. ARGV[4] .. '|', 1, true)
      if pv_count(pv) < tonumber(ARGV[22]) and not seen then
        if pv == '' then pv = ARGV[4] else pv = pv .. '|' .. ARGV[4] end
        redis.call('HSET', KEYS[1], 'pv', pv)
      end
    end
    if gps and scanner ~= '' then
      if not st[3] then redis.call('HSET', KEYS[1], 'gs', scanner)
      elseif not st[4] and st[3] ~= scanner then redis.call('HSET', KEYS[1], 'gm', '1') end
    end
    local entry = {ARGV[1], scanner, ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[30], ARGV[9]}
    redis.call('LPUSH', KEYS[3], table.concat(entry, '|'))
    redis.call('LTRIM', KEYS[3], 0, tonumber(ARGV[11]) - 1)
    if refresh then
      for _, k in ipairs({KEYS[2], KEYS[3], KEYS[8], KEYS[11]}) do redis.call('PEXPIRE', k, ARGV[14]) end
    end
  end
  if refresh then redis.call('PEXPIRE', KEYS[1], ARGV[14]) end
  redis.call('XADD', KEYS[7], 'MAXLEN', '~', ARGV[15], '*', 'e', ARGV[17])
end
local h = redis.call('HMGET', KEYS[1], 'n', 'f', 'fc', 'pv', 'gm', 'lg', 'cap', 'oo')
local distinct = redis.call('ZCOUNT', KEYS[8], now - tonumber(ARGV[10]), '+inf')
local idents = math.min(distinct, redis.call('ZCOUNT', KEYS[11], now - tonumber(ARGV[10]), '+inf'))
local you = ''
if scanner ~= '' then you = redis.call('HGET', KEYS[2], scanner) or '' end
local flags = redis.call('HGETALL', KEYS[4])
-- The history is read (and the rules run) only when some rule could raise or escalate a
-- flag on this scan; each test below is an upper bound of what its rule needs, and a rule
-- already at "suspicious" cannot change. Not for a quiet repeat either.
local rank = {}
for i = 1, #flags, 2 do
  if string.sub(flags[i + 1], 1, 11) == 'suspicious|' then rank[flags[i]] = 2 else rank[flags[i]] = 1 end
end
local recent = {}
if record and found and distinct >= 2 and not quiet_repeat then
  -- Raising a rule to `warn` needs scanners; to `suspicious`, identities (and, for
  -- travel, a verified session's place on this scan).
  local want = 0
  if distinct >= tonumber(ARGV[23]) then want = 1 end
  if idents >= tonumber(ARGV[24]) then want = 2 end
  local velocity = rank['velocity'] or 0
  local travel = rank['impossible_travel'] or 0
  local open = (rank['distinct_scanners'] or 0) < want
    or (distinct > tonumber(ARGV[25]) and velocity < 1)
    or (idents > tonumber(ARGV[25]) and velocity < 2)
    or (gps and h[5] == '1' and (travel < 1 or (travel < 2 and ARGV[31] == '1')))
    or (pv_count(h[4] or '') >= tonumber(ARGV[22]) and (rank['province_spread'] or 0) < 2)
    or h[6] == '1' or h[7] == '1' or h[8] == '1'
  if open then recent = redis.call('LRANGE', KEYS[3], 0, -1) end
end
return {tonumber(h[1] or '0'), tonumber(h[2] or '0'), h[3] or '', distinct, you, throttled, duplicate,
  recent, flags, product_codes, idents}
"""

# The script's history gate names each rule: a new rule needs its own test there.
if set(CODE_RULE_NAMES) != {"distinct_scanners", "velocity", "impossible_travel", "province_spread"}:
    raise RuntimeError(f"the scan script's history gate does not know every rule: {CODE_RULE_NAMES}")

# Raise or escalate flags atomically: two verifies racing must not let a "warn" computed
# a moment earlier overwrite a "suspicious", nor a raise reopen a confirmed flag.
_FLAG_SCRIPT = """
local rank = {warn = 1, suspicious = 2}
local written = {}
for i = 3, #ARGV, 4 do
  local rule, severity, raised, payload = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
  local old = redis.call('HGET', KEYS[1], rule)
  local old_sev, old_status = nil, nil
  if old then old_sev, old_status = string.match(old, '^(%a+)|%d+|(%a+)$') end
  if not old or rank[severity] > (rank[old_sev] or 0) then
    local status = 'open'
    if old_status == 'confirmed' then status = 'confirmed' end
    redis.call('HSET', KEYS[1], rule, severity .. '|' .. raised .. '|' .. status)
    redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[1], '*', 'flag', payload)
    written[#written + 1] = rule
  end
end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return {written, redis.call('HGETALL', KEYS[1])}
"""


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


class ScanStoreUnavailable(Exception):
    """Redis failed or timed out: the caller answers without scans and counts it."""


FlagSink = Callable[[str, Flag], None]
StoredFlags = dict[str, tuple[str, int, str]]  # rule -> (severity, raised ms, status)

_RANK = {"warn": 1, "suspicious": 2}


def _ms_dt(ms: int | None) -> datetime | None:
    return datetime.fromtimestamp(ms / 1000, UTC) if ms else None


def _num(text: str) -> float | None:
    return float(text) if text else None


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


_SOURCES = {"w": "wechat", "g": "gps", "i": "ip"}
_SOURCE_CHARS = {v: k for k, v in _SOURCES.items()}


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
        if flag.rule not in stored or _RANK[flag.severity] > _RANK.get(stored[flag.rule][0], 0)
    ]


def _apply(stored: StoredFlags, flag: Flag) -> None:
    old_status = stored[flag.rule][2] if flag.rule in stored else ""
    status = "confirmed" if old_status == "confirmed" else "open"
    stored[flag.rule] = (flag.severity, _ms(flag.raised_at), status)


def _settled(stored: StoredFlags) -> frozenset[str]:
    return frozenset(rule for rule, (severity, _at, _status) in stored.items() if severity == "suspicious")


def _active(stored: StoredFlags) -> tuple[Flag, ...]:
    return tuple(
        Flag(rule, sev, _ms_dt(raised) or datetime.now(UTC), {})
        for rule, (sev, raised, status) in sorted(stored.items())
        if status in ACTIVE
    )


def _ms(at: datetime) -> int:
    return int(at.timestamp() * 1000)


def _probe(code: str, client: str | None, at: datetime | None) -> ScanEvent:
    return ScanEvent("", code, at or datetime.now(UTC), "peek", "", client, None, None, None, None, None)


class RedisScanRecorder:
    def __init__(
        self,
        client: redis.Redis,
        config: RuleConfig,
        key_prefix: str = DEFAULT_PREFIX,
        *,
        flag_sink: FlagSink | None = None,
        stream_maxlen: int = 1_000_000,
    ) -> None:
        self.client = client
        self.config = config
        self.prefix = key_prefix
        self.stream = key_prefix + "stream"
        self.flag_stream = key_prefix + "flags"
        self.flag_sink = flag_sink
        self.stream_maxlen = stream_maxlen
        self.script = client.register_script(_SCRIPT)
        self.flag_script = client.register_script(_FLAG_SCRIPT)

    def keys(
        self, code: str, scanner: str | None, ip_hash: str | None = None, product: str | None = None
    ) -> list[str]:
        p, tag = self.prefix, "{" + code + "}"
        return [
            f"{p}{tag}:h",
            f"{p}{tag}:u",
            f"{p}{tag}:r",
            f"{p}{tag}:fl",
            f"{p}{tag}:ev",
            f"{p}e:{scanner or '-'}",
            self.stream,
            f"{p}{tag}:z",
            f"{p}e:{ip_hash or scanner or '-'}",
            f"{p}q:{product or '-'}",
            f"{p}{tag}:n",
        ]

    def record(
        self,
        event: ScanEvent,
        *,
        record_scan: bool = True,
        sync_flags: bool = False,
        dedupe: bool = False,
        product: ProductContext | None = None,
    ) -> ScanOutcome:
        """Record one scan (or, with record_scan=False, only read) in one round trip and
        evaluate the rules on the result. `sync_flags`: also hand raised flags to
        `flag_sink` before returning (imports, whose callers read the flag list next); live
        scans leave that to the worker. `dedupe`: the event id came from outside and may be
        seen again (imports)."""
        cfg = self.config
        # A read-only lookup of a never-issued code: counted toward enumeration, not recorded.
        lookup = record_scan and event.channel == LOOKUP_CHANNEL
        if lookup:
            record_scan = False
        source = event.place_source
        ttl = NOT_FOUND_TTL_MS if event.verdict == "not_found" else cfg.retention_days * DAY_MS
        args: list[Any] = [
            event.at_ms,
            event.client or "",
            event.city or "",
            event.province or "",
            "" if event.lat is None else event.lat,
            "" if event.lng is None else event.lng,
            event.verdict,
            "1" if record_scan else "0",
            event.event_id if record_scan else "",
            cfg.distinct_window_days * DAY_MS,
            cfg.recent_max,
            cfg.scanners_max,
            cfg.enumeration_per_hour,
            ttl,
            self.stream_maxlen,
            "1" if record_scan and dedupe else "0",
            event.to_json() if record_scan else "",
            event.ip_hash or "",
            event.code,
            cfg.enumeration_ip_per_hour,
            "" if event.lng is None else "1",
            cfg.provinces,
            cfg.distinct_warn,
            cfg.distinct_suspicious,
            min(cfg.velocity_hour, cfg.velocity_day),
            _kg(product) if record_scan and event.verdict == "genuine" else "",
            event.identity or "",
            "0" if source == "gps" else "1",  # a place the first scan may show
            "1" if lookup else "0",
            _trust(event),
            "1" if source == "wechat" else "0",
        ]
        try:
            keys = self.keys(event.code, event.client, event.ip_hash, product.key if product else None)
            raw = self.script(keys=keys, args=args)
        except (redis.RedisError, OSError) as exc:
            raise ScanStoreUnavailable(str(exc)) from exc
        return self._outcome(event, raw, record_scan, sync_flags, product)

    def peek(self, code: str, client: str | None, *, at: datetime | None = None) -> ScanOutcome:
        """The same answer without recording anything (GET of a code)."""
        return self.record(_probe(code, client, at), record_scan=False)

    def _outcome(
        self,
        event: ScanEvent,
        raw: list[Any],
        recorded: bool,
        sync_flags: bool,
        product: ProductContext | None,
    ) -> ScanOutcome:
        n, first_ms, first_city, distinct, you, throttled, duplicate, recent, stored_pairs, seen, _ = raw
        city = _text(first_city) or None
        you_count = you_first = None
        if event.client:
            you_count = 0
            if you:
                you_first_ms, count = _text(you).split(",")
                you_count, you_first = int(count), _ms_dt(int(you_first_ms))
        stored = _stored_flags([_text(x) for x in stored_pairs]) if stored_pairs else {}
        raised: list[Flag] = []
        if recorded and not duplicate and recent:
            raised = self.code_rules(event, raw, stored)
        genuine_scan = recorded and not duplicate and not throttled and event.verdict != "not_found"
        if genuine_scan and product is not None:
            raised += product_rules(product, RecentScan.of(event), _seen(seen), event.at)
        if raised and (changed := _changed_flags(raised, stored)):
            stored = self._raise(event.code, changed, sync=sync_flags)
        return ScanOutcome(
            n,
            _ms_dt(first_ms),
            city,
            distinct,
            you_count,
            you_first,
            _active(stored) if stored else (),
            bool(throttled),
            bool(duplicate),
        )

    def code_rules(self, event: ScanEvent, raw: list[Any], stored: StoredFlags) -> list[Flag]:
        """The per-code rules on the state the script returned for `event` (a scan it
        recorded), skipping the rules `stored` already holds at their highest severity."""
        n, first_ms, first_city, distinct, *_, recent, _pairs, _seen, idents = raw
        state = CodeScanState(
            code=event.code,
            now_ms=event.at_ms,
            count=n,
            first_at_ms=first_ms or None,
            first_city=_text(first_city) or None,
            distinct_scanners=distinct,
            recent=_recent([_text(x) for x in recent]),
            distinct_networks=idents,
        )
        return evaluate(state, self.config, _settled(stored))

    def _raise(self, code: str, flags: list[Flag], *, sync: bool) -> StoredFlags:
        args: list[Any] = [FLAG_STREAM_MAXLEN, self.config.retention_days * DAY_MS]
        by_rule = {flag.rule: flag for flag in flags}
        for flag in flags:
            args += [flag.rule, flag.severity, _ms(flag.raised_at), flag_payload(code, flag)]
        try:
            written, pairs = self.flag_script(keys=[self.keys(code, None)[3], self.flag_stream], args=args)
        except (redis.RedisError, OSError) as exc:
            raise ScanStoreUnavailable(str(exc)) from exc
        if sync and self.flag_sink is not None:
            for rule in written:
                try:
                    self.flag_sink(code, by_rule[_text(rule)])
                except Exception:  # the flags stream still carries it to the worker
                    log.exception("flag not written to the database now; the worker will")
        return _stored_flags([_text(x) for x in pairs])

    def set_flag_status(self, code: str, rule: str, status: str) -> None:
        """A review (confirmed, dismissed, reopened) as the next verify must see it."""
        key = self.keys(code, None)[3]
        try:
            current = self.client.hget(key, rule)
            severity, raised = _text(current).split("|")[:2] if current else ("warn", "0")
            self.client.hset(key, rule, f"{severity}|{raised}|{status}")
        except (redis.RedisError, OSError) as exc:
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


class MemoryScanRecorder:
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
    ) -> ScanOutcome:
        """As `RedisScanRecorder.record`; flags always reach `flag_sink` before returning
        and every event id is deduplicated (`sync_flags`/`dedupe` are accepted for a
        common signature)."""
        del sync_flags, dedupe
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

    def peek(self, code: str, client: str | None, *, at: datetime | None = None) -> ScanOutcome:
        return self.record(_probe(code, client, at), record_scan=False)

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
