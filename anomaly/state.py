"""The scan hot path: one Redis round trip per verify records the scan, appends the event
to a stream and returns the code's state, on which the rules run in the same request.

Keys per code share the hash tag `{code}`:

    s:{C}:h   hash   n (count), f (first ms), fc / fp (first city / province)
    s:{C}:u   hash   scanner → "first_ms,count" (capped at scanners_max)
    s:{C}:z   zset   scanner → last ms (distinct scanners in a window: one ZCOUNT)
    s:{C}:r   list   the last recent_max scans "ms|scanner|city|province|lat|lng|event_id"
    s:{C}:fl  hash   rule → "severity|raised_ms|status" (open, confirmed, dismissed)
    s:{C}:ev  set    event ids seen (idempotency of imported and retried events)
    s:e:{S}   string not-found lookups of scanner S in the current hour (enumeration)
    s:stream  stream every event (one JSON field "e"), drained into MariaDB by the worker
    s:flags   stream every raised or changed flag, likewise

`MemoryScanRecorder` runs the same logic in process for the embedded default.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import redis

from anomaly.events import ScanEvent
from anomaly.rules import CODE_RULE_NAMES, DAY_MS, CodeScanState, Flag, RecentScan, RuleConfig, evaluate

log = logging.getLogger(__name__)

STREAM = "s:stream"
FLAG_STREAM = "s:flags"
ACTIVE = ("open", "confirmed")
NOT_FOUND_TTL_MS = DAY_MS  # state of never-issued codes is not worth keeping long

_SCRIPT = """
local now = tonumber(ARGV[1])
local scanner = ARGV[2]
local record = ARGV[8] == '1'
local found = ARGV[7] ~= 'not_found'
local throttled = 0
local duplicate = 0
-- Only events that come with their own ids (imports, redeliveries) can repeat.
if record and ARGV[16] == '1' then
  if redis.call('SADD', KEYS[5], ARGV[9]) == 0 then duplicate = 1; record = false end
  redis.call('PEXPIRE', KEYS[5], ARGV[14])
end
if scanner ~= '' then
  local c = tonumber(redis.call('GET', KEYS[6]) or '0')
  if record and not found then
    c = redis.call('INCR', KEYS[6])
    if c == 1 then redis.call('PEXPIRE', KEYS[6], 3600000) end
  end
  if c > tonumber(ARGV[13]) then throttled = 1 end
end
if record then
  local n = redis.call('HINCRBY', KEYS[1], 'n', 1)
  -- Sliding retention, refreshed now and then rather than on every scan.
  local refresh = n == 1 or n % 16 == 0
  -- Never-issued codes keep only a count (and their events): guessers must not fill memory.
  if throttled == 0 and found then
    local f = tonumber(redis.call('HGET', KEYS[1], 'f') or '0')
    if f == 0 or now < f then
      redis.call('HSET', KEYS[1], 'f', now, 'fc', ARGV[3], 'fp', ARGV[4])
    end
    if scanner ~= '' then
      local v = redis.call('HGET', KEYS[2], scanner)
      if v then
        local first, cnt = string.match(v, '(%d+),(%d+)')
        redis.call('HSET', KEYS[2], scanner, math.min(tonumber(first), now) .. ',' .. (tonumber(cnt) + 1))
        if now > tonumber(redis.call('ZSCORE', KEYS[8], scanner) or '0') then
          redis.call('ZADD', KEYS[8], now, scanner)
        end
      elseif redis.call('ZCARD', KEYS[8]) < tonumber(ARGV[12]) then
        redis.call('HSET', KEYS[2], scanner, now .. ',1')
        redis.call('ZADD', KEYS[8], now, scanner)
      end
    end
    local entry = {ARGV[1], scanner, ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[9]}
    redis.call('LPUSH', KEYS[3], table.concat(entry, '|'))
    redis.call('LTRIM', KEYS[3], 0, tonumber(ARGV[11]) - 1)
    if refresh then
      for i = 2, 3 do redis.call('PEXPIRE', KEYS[i], ARGV[14]) end
      redis.call('PEXPIRE', KEYS[8], ARGV[14])
    end
  end
  if refresh then redis.call('PEXPIRE', KEYS[1], ARGV[14]) end
  redis.call('XADD', KEYS[7], 'MAXLEN', '~', ARGV[15], '*', 'e', ARGV[17])
end
local h = redis.call('HMGET', KEYS[1], 'n', 'f', 'fc')
local distinct = redis.call('ZCOUNT', KEYS[8], now - tonumber(ARGV[10]), '+inf')
local you = ''
if scanner ~= '' then you = redis.call('HGET', KEYS[2], scanner) or '' end
local flags = redis.call('HGETALL', KEYS[4])
local settled = 0
for i = 2, #flags, 2 do
  if string.sub(flags[i], 1, 11) == 'suspicious|' then settled = settled + 1 end
end
-- A rule can change only when this scan could tip it: two different located scanners
-- (travel) or ARGV[18] different scanners (the others); a rule already at "suspicious"
-- cannot change. Only then is the history read and sent back for the rules.
local recent = {}
local can_tip = distinct >= tonumber(ARGV[18]) or (ARGV[5] ~= '' and distinct >= 2)
if record and found and can_tip and settled < __CODE_RULES__ then
  recent = redis.call('LRANGE', KEYS[3], 0, -1)
end
return {h[1] or '0', h[2] or '', h[3] or '', distinct, you, throttled, duplicate, recent, flags}
""".replace("__CODE_RULES__", str(len(CODE_RULE_NAMES)))


@dataclass(frozen=True, slots=True)
class ScanOutcome:
    count: int
    first_at: datetime | None
    first_city: str | None
    distinct_scanners: int
    you_count: int | None
    you_first_at: datetime | None
    flags: tuple[Flag, ...]
    throttled: bool
    duplicate: bool


class ScanStoreUnavailable(Exception):
    pass


def _ms_dt(ms: int | None) -> datetime | None:
    return datetime.fromtimestamp(ms / 1000, UTC) if ms else None


def _num(text: str) -> float | None:
    return float(text) if text else None


def _recent(entries: list[str]) -> tuple[RecentScan, ...]:
    out = []
    for entry in entries:
        at, scanner, city, prov, lat, lng, event_id = entry.split("|", 6)
        out.append(
            RecentScan(int(at), scanner or None, city or None, prov or None, _num(lat), _num(lng), event_id)
        )
    out.sort(key=lambda s: s.at_ms, reverse=True)
    return tuple(out)


def _stored_flags(pairs: list[str]) -> dict[str, tuple[str, int, str]]:
    flags = {}
    for rule, value in zip(pairs[::2], pairs[1::2], strict=True):
        severity, raised, status = value.split("|", 2)
        flags[rule] = (severity, int(raised), status)
    return flags


_RANK = {"warn": 1, "suspicious": 2}


def _changed_flags(raised: list[Flag], stored: dict[str, tuple[str, int, str]]) -> list[Flag]:
    """Flags to write: new rules, and escalations from warn to suspicious. A dismissed flag
    stays dismissed unless it escalates; a confirmed one keeps its status."""
    changed = []
    for flag in raised:
        old = stored.get(flag.rule)
        if old is None or _RANK[flag.severity] > _RANK[old[0]]:
            changed.append(flag)
    return changed


def _settled(stored: dict[str, tuple[str, int, str]]) -> frozenset[str]:
    return frozenset(
        rule for rule, (severity, _raised, _status) in stored.items() if severity == "suspicious"
    )


def _active(stored: dict[str, tuple[str, int, str]]) -> tuple[Flag, ...]:
    return tuple(
        Flag(rule, sev, _ms_dt(raised) or datetime.now(UTC), {})
        for rule, (sev, raised, status) in sorted(stored.items())
        if status in ACTIVE
    )


FlagSink = Callable[[str, Flag], None]


class RedisScanRecorder:
    def __init__(
        self,
        client: redis.Redis,
        config: RuleConfig,
        *,
        flag_sink: FlagSink | None = None,
        stream_maxlen: int = 1_000_000,
    ) -> None:
        self.client = client
        self.config = config
        self.flag_sink = flag_sink
        self.stream_maxlen = stream_maxlen
        self.script = client.register_script(_SCRIPT)

    @staticmethod
    def keys(code: str, scanner: str | None) -> list[str]:
        tag = "{" + code + "}"
        return [
            f"s:{tag}:h",
            f"s:{tag}:u",
            f"s:{tag}:r",
            f"s:{tag}:fl",
            f"s:{tag}:ev",
            f"s:e:{scanner or '-'}",
            STREAM,
            f"s:{tag}:z",
        ]

    def record(
        self, event: ScanEvent, *, record: bool = True, sync_flags: bool = False, dedupe: bool = False
    ) -> ScanOutcome:
        """`sync_flags`: write raised flags to the database before returning (imports, whose
        callers read the flag list next); live scans leave that to the worker. `dedupe`:
        the event id came from outside and may be seen again (imports)."""
        cfg = self.config
        ttl = NOT_FOUND_TTL_MS if event.verdict == "not_found" else cfg.retention_days * DAY_MS
        args = [
            event.at_ms,
            event.client or "",
            event.city or "",
            event.province or "",
            "" if event.lat is None else event.lat,
            "" if event.lng is None else event.lng,
            event.verdict,
            "1" if record else "0",
            event.event_id if record else "",
            cfg.distinct_window_days * DAY_MS,
            cfg.recent_max,
            cfg.scanners_max,
            cfg.enumeration_per_hour,
            ttl,
            self.stream_maxlen,
            "1" if record and dedupe else "0",
            event.to_json(),
            min(cfg.distinct_warn, cfg.provinces, cfg.velocity_hour + 1),
        ]
        try:
            raw = self.script(keys=self.keys(event.code, event.client), args=args)
        except (redis.RedisError, OSError) as exc:
            raise ScanStoreUnavailable(str(exc)) from exc
        return self._outcome(event, raw, record, sync_flags)

    def _outcome(self, event: ScanEvent, raw: list[Any], record: bool, sync_flags: bool) -> ScanOutcome:
        n, first, first_city, distinct, you, throttled, duplicate, recent, stored_pairs = raw
        text = [x.decode() if isinstance(x, bytes) else x for x in (first, first_city, you)]
        first_ms = int(text[0]) if text[0] else None
        you_count = you_first = None
        if event.client:
            you_count, you_first = 0, None
            if text[2]:
                you_first_ms, count = text[2].split(",")
                you_count, you_first = int(count), _ms_dt(int(you_first_ms))
        stored = _stored_flags([x.decode() for x in stored_pairs])
        if record and not duplicate and recent:
            state = CodeScanState(
                code=event.code,
                now_ms=event.at_ms,
                count=int(n),
                first_at_ms=first_ms,
                first_city=text[1] or None,
                distinct_scanners=int(distinct),
                recent=_recent([x.decode() for x in recent]),
            )
            for flag in _changed_flags(evaluate(state, self.config, _settled(stored)), stored):
                self._raise(event.code, flag, sync=sync_flags)
                stored[flag.rule] = (
                    flag.severity,
                    int(flag.raised_at.timestamp() * 1000),
                    stored.get(flag.rule, ("", 0, "open"))[2]
                    if flag.rule in stored and stored[flag.rule][2] == "confirmed"
                    else "open",
                )
        return ScanOutcome(
            int(n),
            _ms_dt(first_ms),
            text[1] or None,
            int(distinct),
            you_count,
            you_first,
            _active(stored),
            bool(throttled),
            bool(duplicate),
        )

    def _raise(self, code: str, flag: Flag, *, sync: bool) -> None:
        value = f"{flag.severity}|{int(flag.raised_at.timestamp() * 1000)}|open"
        payload = json.dumps(
            {
                "code": code,
                "rule": flag.rule,
                "severity": flag.severity,
                "raised_at": flag.raised_at.isoformat(),
                "evidence": flag.evidence,
            },
            ensure_ascii=False,
        )
        try:
            pipe = self.client.pipeline(transaction=False)
            pipe.hset(self.keys(code, None)[3], flag.rule, value)
            pipe.xadd(FLAG_STREAM, {"flag": payload}, maxlen=100_000, approximate=True)
            pipe.execute()
        except (redis.RedisError, OSError) as exc:
            raise ScanStoreUnavailable(str(exc)) from exc
        if sync and self.flag_sink is not None:
            try:
                self.flag_sink(code, flag)
            except Exception:  # the flags stream still carries it to the worker
                log.exception("flag not written to the database now; the worker will")

    def set_flag_status(self, code: str, rule: str, status: str) -> None:
        key = self.keys(code, None)[3]
        try:
            current = self.client.hget(key, rule)
            severity, raised = current.decode().split("|")[:2] if current else ("warn", "0")
            self.client.hset(key, rule, f"{severity}|{raised}|{status}")
        except (redis.RedisError, OSError) as exc:
            raise ScanStoreUnavailable(str(exc)) from exc


class MemoryScanRecorder:
    """The same state and rules in process (embedded default: one machine, no Redis).
    Events go straight to `event_sink` (the SQL store) instead of a stream."""

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
        self.codes: dict[str, dict[str, Any]] = {}
        self.enum: dict[str, tuple[int, int]] = {}  # scanner -> (hour window start ms, count)

    def record(
        self, event: ScanEvent, *, record: bool = True, sync_flags: bool = True, dedupe: bool = True
    ) -> ScanOutcome:
        # In process there is no worker: flags always go to the database at once.
        cfg = self.config
        with self._lock:
            st = self.codes.setdefault(
                event.code, {"n": 0, "f": None, "fc": None, "u": {}, "r": [], "fl": {}, "ev": set()}
            )
            duplicate = False
            if record and event.event_id in st["ev"]:
                duplicate, record = True, False
            if record:
                st["ev"].add(event.event_id)
            throttled = False
            scanner = event.client
            if scanner:
                start, count = self.enum.get(scanner, (event.at_ms, 0))
                if event.at_ms - start > 3_600_000:
                    start, count = event.at_ms, 0
                if record and event.verdict == "not_found":
                    count += 1
                self.enum[scanner] = (start, count)
                throttled = count > cfg.enumeration_per_hour
            if record:
                st["n"] += 1
                if not throttled and event.verdict != "not_found":
                    if st["f"] is None or event.at_ms < st["f"]:
                        st["f"], st["fc"] = event.at_ms, event.city
                    if scanner:
                        if scanner in st["u"]:
                            first, last, count = st["u"][scanner]
                            st["u"][scanner] = (min(first, event.at_ms), max(last, event.at_ms), count + 1)
                        elif len(st["u"]) < cfg.scanners_max:
                            st["u"][scanner] = (event.at_ms, event.at_ms, 1)
                    st["r"].insert(
                        0,
                        RecentScan(
                            event.at_ms,
                            scanner,
                            event.city,
                            event.province,
                            event.lat,
                            event.lng,
                            event.event_id,
                        ),
                    )
                    del st["r"][cfg.recent_max :]
            since = event.at_ms - cfg.distinct_window_days * DAY_MS
            distinct = sum(1 for _f, last, _c in st["u"].values() if last >= since)
            you = st["u"].get(scanner) if scanner else None
            raised: list[Flag] = []
            if record and not duplicate and event.verdict != "not_found":
                state = CodeScanState(
                    event.code,
                    event.at_ms,
                    st["n"],
                    st["f"],
                    st["fc"],
                    distinct,
                    tuple(sorted(st["r"], key=lambda s: s.at_ms, reverse=True)),
                )
                stored = {
                    rule: (sev, raised_ms, status) for rule, (sev, raised_ms, status) in st["fl"].items()
                }
                raised = _changed_flags(evaluate(state, cfg, _settled(stored)), stored)
                for flag in raised:
                    old = st["fl"].get(flag.rule)
                    status = old[2] if old and old[2] == "confirmed" else "open"
                    st["fl"][flag.rule] = (flag.severity, int(flag.raised_at.timestamp() * 1000), status)
            outcome = ScanOutcome(
                st["n"],
                _ms_dt(st["f"]),
                st["fc"],
                distinct,
                (you[2] if you else 0) if scanner else None,
                _ms_dt(you[0]) if you else None,
                _active(dict(st["fl"])),
                throttled,
                duplicate,
            )
        if record and self.event_sink is not None:
            self.event_sink([event])
        for flag in raised:
            if self.flag_sink is not None:
                self.flag_sink(event.code, flag)
        return outcome

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
                st = self.codes.setdefault(
                    code, {"n": 0, "f": None, "fc": None, "u": {}, "r": [], "fl": {}, "ev": set()}
                )
                st["fl"][rule] = (severity, raised_ms, status)
        return n

    def set_flag_status(self, code: str, rule: str, status: str) -> None:
        with self._lock:
            st = self.codes.get(code)
            if st is not None and rule in st["fl"]:
                severity, raised, _ = st["fl"][rule]
                st["fl"][rule] = (severity, raised, status)
