"""The code projection: every issued code → its record (label group or batch, issue date,
identity code, BQ role), resident in the key store, so a verify resolves any code without
asking the database and a code absent from a complete projection is "never issued".

Layout (Redis; `RedisProjection`):

    v:p:{<bucket>}   hash   field: the code's place in its bucket → value: its record;
                            field `#` → the bucket count, once a rebuild has filled it
    v:p:meta2        string `2:<bucket count>` (`2g:` on a cluster), written when the
                            projection is complete (`v:p:meta` is the release before's)
    v:p:epoch        string the rebuild in progress (one per slot group on a cluster)
    v:p:dirty        zset   writers in flight → their deadline (ms): while one is live a
                            miss is asked of the database; a lapsed one turns it off
    v:p:building     string one process rebuilds at a time

A code's 64-bit key (cache.bloom.key64: an organic code's stored integer, a BQ token's
digest) is mixed (splitmix64, a bijection); its low bits pick the bucket, the rest is the
field for an organic code (so the field is an integer, stored in 8 bytes by a listpack),
the token itself for a BQ code (a digest could collide; tokens are few). Buckets hold
~`PER_BUCKET` codes on average at the expected size, well under Redis's
`hash-max-listpack-entries` (128): each stays a listpack, ~10-20 bytes per entry instead
of a hash table's ~70. Every bucket key carries a hash tag: its bucket on one server
(`v:p:{<bucket>}`), its slot group on a Redis Cluster (`v:p:{g<G>}:<bucket>`, G the
bucket's low 6 bits), the slot where the scan store keeps the group's codes' scan keys
and event stream, so one script there can resolve a code and record its scan. A tag per
bucket would put a bucket in one slot and its codes' events in another: a stream per
bucket is ~32 k streams for a worker to read, one per slot group 64. The meta names the
layout ("2g:<buckets>" on a cluster): a projection written under the other names is OFF
and rebuilt under these (its old keys dropped), never read under the wrong ones.

The value: `<group id>[,<issue day>[,<identity code>]]` for an organic code (the day
counted from 2000-01-01), `<batch id>,<role>` for a BQ code. Measured bytes per code are
in the README.

Completeness: `meta` holds the bucket count once a rebuild (`flask rebuild-projection`,
or the first start on an empty registry) has written every code; every import,
allocation and void then writes its codes after saving them, inside a `dirty` mark it sets
before the first save and clears only when every write landed. So "complete" (meta
matches, nothing dirty) means every saved code is in the projection; otherwise callers fall
back to the database for misses. A worker reads that state at most every refresh, so a miss
also needs the bucket's own `#` marker, read in the same HMGET: a Redis that restarted empty,
or evicted the bucket, has lost the marker with the codes, and the miss is asked of the
database instead of answered "never issued" in the moments before the worker sees the meta
gone (a shopper's genuine code was answered not_found so, in a test that restarts Redis).
A writer that dies leaves its mark: misses go to the database until the next rebuild
(safe, slower; counted at /metrics). A writer that only stalled past its mark's life and
finds it swept by a rebuild marks itself again before its next save (`renew`).

`MemoryProjection` is the embedded default's twin: a dict, built from the registry at start.
"""

from __future__ import annotations

import functools
import logging
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import date
from typing import Any

import numpy as np

from cache.bloom import _mix, _mix_np, key64
from cache.redis_cache import DirectCalls, LazyCluster
from domain import metrics
from domain.codes import CodeKind
from domain.records import CodeRecord

log = logging.getLogger(__name__)

PREFIX = "v:p:"
# The meta of this layout (buckets carry MARKER). Not the name the release before markers
# used (`v:p:meta`, an integer it parses): beside it in a rolling upgrade, or after a
# rollback, that release finds its own meta or none, never this one's value.
META = PREFIX + "meta2"
LEGACY_META = PREFIX + "meta"
# The rebuild in progress, by its token (one key on a server, one per slot group on a
# cluster): Redis losing its data while a rebuild runs loses this too, and the rebuild
# then marks no bucket and sets no meta (its earlier writes may be gone with it).
EPOCH = PREFIX + "epoch"
DIRTY = PREFIX + "dirty"
BUILDING = PREFIX + "building"
# Counted by every writer before it writes: a rebuild that saw it move wrote, from its
# older snapshot of the registry, over records a writer had just written, and goes again.
WRITES = PREFIX + "writes"
REBUILD_PASSES = 3
PER_BUCKET = 32  # mean codes per bucket at the expected size: 4x headroom under 128
MIN_BUCKETS = 1024
_DAY0 = date(2000, 1, 1).toordinal()

# A record as written: (code, kind, group id, issued on, identity code, BQ role).
Row = tuple[str, CodeKind, int, date | None, str | None, str | None]
MARKER = "#"  # a bucket's own field that says a rebuild filled it (no code's field is "#")
LAYOUT = 2  # meta's prefix: buckets carry MARKER (a meta of layout 1 is OFF: rebuilt)
MISSING: Any = object()  # the projection cannot answer (incomplete, or the store failed)
MARK_S = 60.0  # a writer's mark lives this long unless renewed
COMPLETE, WRITING, OFF = "complete", "writing", "off"
_WRITE_ARGS = 3 * 5_000  # records per write call: a few ms of Redis each, not a stall of verifies
# Many records into their buckets in one call (bucket keys built here from their numbers:
# one server only, see RedisProjection._hset).
_MARK_LUA = """
if redis.call('GET', KEYS[1]) ~= ARGV[4] then return 0 end
for b = tonumber(ARGV[1]), tonumber(ARGV[2]) do
  redis.call('HSET', 'v:p:{' .. b .. '}', '#', ARGV[3])
end
return 1
"""
# The meta, only while the rebuild's epoch is still there (one server).
_META_LUA = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[2], ARGV[2])
return 1
"""
_HSET_LUA = """
for i = 1, #ARGV, 3 do
  redis.call('HSET', 'v:p:{' .. ARGV[i] .. '}', ARGV[i + 1], ARGV[i + 2])
end
return #ARGV / 3
"""


def buckets_for(expected_codes: int) -> int:
    """A power of two with about PER_BUCKET codes per bucket at `expected_codes`."""
    n = max(MIN_BUCKETS, expected_codes // PER_BUCKET)
    return 1 << (n - 1).bit_length()


def place(code: str, kind: CodeKind, buckets: int) -> tuple[int, str]:
    """(bucket, field) of a code."""
    h = _mix(key64(code))
    bucket = h & (buckets - 1)
    if kind is CodeKind.BQ:
        return bucket, code
    return bucket, str(h >> (buckets.bit_length() - 1))


# Slot groups: on a Redis Cluster a code's scan keys and the stream its events go to share
# one hash tag, that of its slot group (the low bits of its mixed key, so every projection
# bucket lies in exactly one group: bucket & (SLOT_GROUPS - 1)). A group per bucket would
# scatter the events over ~32 k streams, which no worker can read (a read spans one slot);
# 64 groups spread a cluster's scan state over 64 slots, enough to balance up to a few
# dozen primaries, and keep the worker's reads to 64 streams per kind. Part of the key
# layout: changing it moves every code's scan keys.
SLOT_GROUPS = 64


def slot_group(code: str) -> int:
    """The slot group of a code (its projection bucket's low bits, whatever the bucket count)."""
    return _mix(key64(code)) & (SLOT_GROUPS - 1)


def group_tag(group: int) -> str:
    """The hash tag of a slot group's keys."""
    return f"{{g{group}}}"


def bucket_key(bucket: int, *, grouped: bool = False) -> str:
    """A bucket's key: `v:p:{<bucket>}` on one server; on a cluster (`grouped`)
    `v:p:{g<G>}:<bucket>`, in its slot group's slot, where the scan store keeps its codes'
    scan keys and the stream their events go to (anomaly.state): a script can then resolve
    a code and record its scan in one call there."""
    if grouped:
        return f"{PREFIX}{group_tag(bucket & (SLOT_GROUPS - 1))}:{bucket}"
    return f"{PREFIX}{{{bucket}}}"


def meta_value(buckets: int, *, grouped: bool = False) -> bytes:
    """The meta of a complete projection: its layout ("g": bucket keys named by slot
    group, a cluster's) and bucket count. A projection written under other names is OFF
    (rebuilt under these), never read under the wrong ones."""
    return f"{LAYOUT}{'g' if grouped else ''}:{buckets}".encode()


def encode(
    kind: CodeKind, group_id: int, issued_on: date | None, identity: str | None, role: str | None
) -> str:
    if kind is CodeKind.BQ:
        return f"{group_id},{role or ''}"
    if identity:
        day = issued_on.toordinal() - _DAY0 if issued_on else ""
        return f"{group_id},{day},{identity}"
    if issued_on is not None:
        return f"{group_id},{issued_on.toordinal() - _DAY0}"
    return str(group_id)


def decode(code: str, kind: CodeKind, value: bytes | str) -> CodeRecord:
    text = value.decode() if isinstance(value, bytes) else value
    if kind is CodeKind.BQ:
        gid, _, role = text.partition(",")
        return CodeRecord(code, kind, int(gid), None, None, role or None)
    parts = text.split(",", 2)
    issued = date.fromordinal(int(parts[1]) + _DAY0) if len(parts) > 1 and parts[1] else None
    identity = parts[2] if len(parts) > 2 and parts[2] else None
    return CodeRecord(code, kind, int(parts[0]), issued, identity)


class RedisProjection:
    """The projection in Redis. Reads (`get`) are the verify path's: bounded by the
    client's timeout, failing open (MISSING, counted); writes are the writers': their
    errors surface, so the caller can keep its dirty mark."""

    def __init__(self, client: Any, buckets: int, *, direct: bool = False) -> None:
        """`direct`: reads skip redis-py's command path (DirectCalls; one server only)."""
        self.client = client
        # Not `client.execute_command` bound now: a cluster client connects on first use.
        self._read: Callable[..., Any] = (
            DirectCalls(client).execute if direct and not isinstance(client, LazyCluster) else self._command
        )
        self.buckets = buckets
        self.grouped = isinstance(client, LazyCluster)  # bucket keys by slot group
        self._key = functools.partial(bucket_key, grouped=self.grouped)
        self._mine: set[str] = set()  # marks begun by this process (renewed together)
        # renew() and end() of this process's threads: an ended mark is never put back.
        self._marks = threading.Lock()
        self._script: Any = None
        self._mark_script: Any = None
        self._meta_script: Any = None
        self._meta = meta_value(buckets, grouped=self.grouped)
        self._marker = str(buckets).encode()

    def _command(self, *args: Any) -> Any:
        return self.client.execute_command(*args)

    def state(self) -> str | None:
        """COMPLETE, WRITING (writers in flight: trust hits, ask the database on a miss),
        OFF (never built, another size, or a writer's mark lapsed: do not use it), or None
        (Redis cannot be reached)."""
        now_ms = int(time.time() * 1000)
        try:
            pipe = self.client.pipeline(transaction=False)
            pipe.get(META)
            pipe.zcard(DIRTY)
            pipe.zcount(DIRTY, "-inf", now_ms)
            meta, dirty, lapsed = pipe.execute()
        except Exception:
            metrics.incr("projection_errors")
            return None
        if meta != self._meta or lapsed:
            return OFF
        return WRITING if dirty else COMPLETE

    def lost(self) -> bool:
        """Off because Redis lost it (no meta) or a writer's mark lapsed, with no writer in
        flight: worth a rebuild by a serving process now. Not when the meta names another
        layout or bucket count (a release beside this one with other settings: rebuilding
        would drop the other's buckets, and it would drop these, every time) nor while
        writers are saving (their writes would keep a rebuild from completing)."""
        now_ms = int(time.time() * 1000)
        pipe = self.client.pipeline(transaction=False)
        pipe.get(META)
        pipe.zcount(DIRTY, "-inf", now_ms)
        pipe.zcount(DIRTY, f"({now_ms}", "+inf")
        meta, lapsed, live = pipe.execute()
        return bool((meta is None or (meta == self._meta and lapsed > 0)) and live == 0)

    def store_place(self, code: str, kind: CodeKind) -> tuple[str, str]:
        """The code's (bucket key, field), for a script on the same server that reads it
        itself (anomaly/scan.lua, resolving a code in the verify's own round trip)."""
        bucket, fld = place(code, kind, self.buckets)
        return self._key(bucket), fld

    def get(self, code: str, kind: CodeKind) -> CodeRecord | None:
        """The code's record; None when the projection lacks it and its bucket was filled
        by a rebuild (its marker); MISSING on an error or when the bucket is not filled."""
        bucket, fld = place(code, kind, self.buckets)
        try:
            value, marker = self._read("HMGET", self._key(bucket), fld, MARKER)
        except Exception:
            metrics.incr("projection_errors")
            return MISSING  # type: ignore[no-any-return]
        if value is not None:
            return decode(code, kind, value)
        if marker != self._marker:
            metrics.incr("projection_unfilled_buckets")
            return MISSING  # type: ignore[no-any-return]
        return None

    def write(self, rows: Iterable[Row]) -> int:
        """HSET each record; the number written."""
        self.client.incr(WRITES)
        return self._write(rows)

    def _write(self, rows: Iterable[Row]) -> int:
        n = 0
        flat: list[Any] = []
        for code, kind, gid, issued, identity, role in rows:
            bucket, fld = place(code, kind, self.buckets)
            flat += (bucket, fld, encode(kind, gid, issued, identity, role))
            n += 1
            if len(flat) >= _WRITE_ARGS:
                self._hset(flat)
                flat = []
        self._hset(flat)
        return n

    def write_keys(self, rows: Sequence[tuple[int, int, date | None, str | None]]) -> int:
        """An import chunk's organic rows (key, group, issued on, identity), as saved:
        places computed vectorized (numpy), the value's `<group>,<day>,` prefix formatted
        once per group and day, the script's arguments laid out by slice assignment (a
        per-row loop through `encode` cost ~1.8 s of CPU per million codes, this ~0.6 s)."""
        if not rows:
            return 0
        self.client.incr(WRITES)
        keys = np.fromiter((row[0] for row in rows), dtype=np.uint64, count=len(rows))
        h = _mix_np(keys)
        prefixes: dict[tuple[int, date | None], tuple[str, str]] = {}

        def value(gid: int, issued: date | None, identity: str | None) -> str:
            known = prefixes.get((gid, issued))
            if known is None:
                bare = encode(CodeKind.ORGANIC, gid, issued, None, None)
                day = "" if issued is None else str(issued.toordinal() - _DAY0)
                known = prefixes[(gid, issued)] = (bare, f"{gid},{day},")
            return known[1] + identity if identity else known[0]

        flat: list[Any] = [None] * (3 * len(rows))
        flat[0::3] = (h & np.uint64(self.buckets - 1)).tolist()
        flat[1::3] = (h >> np.uint64(self.buckets.bit_length() - 1)).tolist()
        flat[2::3] = [value(gid, issued, identity) for _key, gid, issued, identity in rows]
        for start in range(0, len(flat), _WRITE_ARGS):
            self._hset(flat[start : start + _WRITE_ARGS])
        return len(rows)

    def _hset(self, flat: list[Any]) -> None:
        """(bucket, field, value, …) into their buckets: one script call on one server
        (redis-py packs one command per HSET ~5x slower than the arguments alone); a
        pipeline of HSETs on a cluster, where a script may only touch its declared keys."""
        if not flat:
            return
        if isinstance(self.client, LazyCluster):
            pipe = self.client.pipeline(transaction=False)
            for i in range(0, len(flat), 3):
                pipe.hset(self._key(flat[i]), flat[i + 1], flat[i + 2])
            pipe.execute()
            return
        if self._script is None:
            self._script = self.client.register_script(_HSET_LUA)
        self._script(keys=[], args=flat)

    def remove(self, codes: Iterable[tuple[str, CodeKind]]) -> None:
        self.client.incr(WRITES)
        pipe = self.client.pipeline(transaction=False)
        for code, kind in codes:
            bucket, fld = place(code, kind, self.buckets)
            pipe.hdel(self._key(bucket), fld)
        pipe.execute()

    # -- completeness ----------------------------------------------------------------------

    def begin(self, ttl_s: float = MARK_S) -> str:
        """Mark a writer in flight before its first save (raises when Redis cannot be
        told: then nothing may be saved). The mark is a deadline: a writer renews it
        (`renew`) while it writes; one that dies or loses Redis lets it lapse, and a lapsed
        mark turns the projection OFF (hits too may be stale) until the next rebuild."""
        token = secrets.token_hex(8)
        with self._marks:
            self.client.zadd(DIRTY, {token: int((time.time() + ttl_s) * 1000)})
            self._mine.add(token)
        return token

    def renew(self, ttl_s: float = MARK_S) -> None:
        """Push this process's marks' deadlines on (raises when it cannot); writers call it
        before each save.

        A mark that is gone was taken for a dead writer's (it lapsed while this one stalled
        past MARK_S) and swept by a rebuild, which then called the projection complete. This
        writer is alive and about to save more: its mark goes back, so misses are asked of
        the database again until it ends, rather than answered "never issued" for codes
        it saves and has not yet projected."""
        with self._marks:
            if not self._mine:
                return
            deadline = int((time.time() + ttl_s) * 1000)
            back = self.client.zadd(DIRTY, dict.fromkeys(self._mine, deadline))
        if back:
            metrics.incr("projection_marks_restored")
            log.warning("a writer's projection mark had lapsed and was swept while it wrote: marked again")

    def end(self, token: str) -> None:
        """Every record this writer saved is written: its mark goes (raises when it cannot)."""
        with self._marks:
            self.client.zrem(DIRTY, token)
            self._mine.discard(token)

    def abandon(self, token: str) -> None:
        """Some of this writer's records could not be written (or its end failed): its mark
        is left to lapse, which turns the projection off until rebuilt. It is no longer
        renewed with this process's live marks, nor marked again after a rebuild swept it."""
        with self._marks:
            self._mine.discard(token)

    def mark_complete_if_empty(self, has_codes: Callable[[], bool]) -> bool:
        """A registry with no codes: the empty projection is complete (first start)."""
        try:
            meta = self.client.get(META)
            if meta is not None:
                return bool(meta == self._meta)
            if has_codes():
                return False
            epoch = secrets.token_hex(8)
            self._set_epoch(epoch)
            return self._mark_buckets(epoch) and self._set_meta(epoch)
        except Exception:
            log.warning("could not read or mark the code projection", exc_info=True)
            return False

    def rebuild(
        self,
        rows: Callable[[], Iterator[Row]],
        progress: Callable[[int, float], None] | None = None,
        *,
        lock_s: int = 120,
    ) -> int | None:
        """Write every record from the registry while the service serves; None when another
        process is rebuilding. Misses go to the database until it ends (its dirty mark),
        then the meta says complete. A bucket count that changed starts from empty buckets.
        The lock and the mark are renewed per batch: a rebuilder that dies frees them
        within `lock_s` (and its lapsed mark keeps the projection off until the next)."""
        if not self.client.set(BUILDING, b"1", nx=True, ex=lock_s):
            return None
        started_ms = int(time.time() * 1000)
        token = self.begin(lock_s)
        try:
            meta = self.client.get(META)
            if meta is not None and meta != self._meta:
                self.client.delete(META)
                layout, _, buckets = meta.rpartition(b":")
                if buckets != str(self.buckets).encode() or layout.endswith(b"g") != self.grouped:
                    # Another bucket count or other key names: every field is elsewhere
                    # (and the release before markers, if one still runs, must not trust
                    # its meta over buckets that are gone).
                    self.client.delete(LEGACY_META)
                    self._drop_buckets()
            # After any drop: on a cluster the epoch keys share the buckets' key pattern.
            self._set_epoch(token)
            for _pass in range(REBUILD_PASSES):
                # Read before the registry's snapshot is taken: a writer that counts after
                # this saved before it wrote, so either the snapshot holds its rows or the
                # count moves (see WRITES).
                writes = self.client.get(WRITES)
                start, n = time.monotonic(), 0
                batch: list[Row] = []
                for row in rows():
                    batch.append(row)
                    if len(batch) >= 50_000:
                        n += self._write(batch)
                        batch = []
                        if not self.client.set(BUILDING, b"1", ex=lock_s, xx=True):
                            # The lock is gone (it lapsed, or Redis lost its data): another
                            # process may be rebuilding, or what this one wrote is gone.
                            log.warning("code projection rebuild lost its lock: not complete")
                            self.end(token)
                            return n
                        self.renew(lock_s)
                        if progress is not None:
                            progress(n, time.monotonic() - start)
                n += self._write(batch)
                if progress is not None:
                    progress(n, time.monotonic() - start)
                if self.client.get(WRITES) == writes:
                    break
                log.info("writers wrote records during the projection's rebuild: again")
            else:
                # Writers kept writing: this pass may have overwritten newer records with
                # older ones, so the projection is not called complete (it stays off).
                log.warning(
                    "code projection not complete: writers kept writing during %d passes", REBUILD_PASSES
                )
                self.end(token)
                return n
            # Every bucket now holds its codes: each says so (a miss in it is "never
            # issued") and loses the marker with its codes if Redis does (see `get`). Not
            # if Redis lost its data while this ran (the epoch went with it).
            if not self._mark_buckets(token) or not self._set_meta(token):
                log.warning("Redis lost data during the code projection's rebuild: not complete")
                self.end(token)
                return n
            # Writers whose marks lapsed before this rebuild began are covered by it (it
            # read the registry after their saves): their marks go. Live ones stay.
            self.client.zremrangebyscore(DIRTY, "-inf", started_ms)
            self.end(token)
            return n
        finally:
            self.client.delete(BUILDING)

    def _epoch_keys(self) -> list[str]:
        if self.grouped:
            return [f"{PREFIX}{group_tag(g)}:epoch" for g in range(SLOT_GROUPS)]
        return [EPOCH]

    def _set_epoch(self, epoch: str) -> None:
        pipe = self.client.pipeline(transaction=False)
        for key in self._epoch_keys():
            pipe.set(key, epoch, ex=86_400)
        pipe.execute()

    def _epoch_holds(self, epoch: str) -> bool:
        pipe = self.client.pipeline(transaction=False)
        for key in self._epoch_keys():
            pipe.get(key)
        return all(value == epoch.encode() for value in pipe.execute())

    def _mark_buckets(self, epoch: str, per_call: int = 5_000) -> bool:
        """Every bucket's marker, while `epoch` holds; False (marking stopped) when it does
        not. One server: each call checks it atomically. A cluster: checked before each
        call's pipeline and after the last, per slot group; a node that restarted between
        a check and its marks leaves marked empty buckets for the next rebuild, which the
        missing meta keeps from being trusted meanwhile."""
        for start in range(0, self.buckets, per_call):
            end = min(start + per_call, self.buckets) - 1
            if isinstance(self.client, LazyCluster):
                if not self._epoch_holds(epoch):
                    return False
                pipe = self.client.pipeline(transaction=False)
                for b in range(start, end + 1):
                    pipe.hset(self._key(b), MARKER, self._marker)
                pipe.execute()
                continue
            if self._mark_script is None:
                self._mark_script = self.client.register_script(_MARK_LUA)
            if not self._mark_script(keys=[EPOCH], args=[start, end, self._marker, epoch]):
                return False
        return True

    def _set_meta(self, epoch: str) -> bool:
        """The meta, while `epoch` holds (atomically on one server)."""
        if isinstance(self.client, LazyCluster):
            if not self._epoch_holds(epoch):
                return False
            self.client.set(META, self._meta)
            return True
        if self._meta_script is None:
            self._meta_script = self.client.register_script(_META_LUA)
        return bool(self._meta_script(keys=[EPOCH, META], args=[epoch, self._meta]))

    def _drop_buckets(self) -> None:
        for key in self.client.scan_iter(match=PREFIX + "{*", count=10_000):
            self.client.unlink(key)


class MemoryProjection:
    """The embedded default's projection: a dict in this process, built from the registry
    at start (`rebuild`), written by the same writers. Always complete once built."""

    def __init__(self, rows: Callable[[], Iterator[Row]] | None = None) -> None:
        self.data: dict[str, CodeRecord] = {}
        self.complete = False
        self.dirty: set[str] = set()
        self._rows = rows

    def state(self) -> str | None:
        if not self.complete:
            return OFF
        return WRITING if self.dirty else COMPLETE

    def get(self, code: str, kind: CodeKind) -> CodeRecord | None:
        return self.data.get(code)

    def write(self, rows: Iterable[Row]) -> int:
        n = 0
        for code, kind, gid, issued, identity, role in rows:
            self.data[code] = CodeRecord(code, kind, gid, issued, identity, role)
            n += 1
        return n

    def write_keys(self, rows: Sequence[tuple[int, int, date | None, str | None]]) -> int:
        from domain.codes import organic_code_from_key

        return self.write((organic_code_from_key(k), CodeKind.ORGANIC, g, d, i, None) for k, g, d, i in rows)

    def remove(self, codes: Iterable[tuple[str, CodeKind]]) -> None:
        for code, _kind in codes:
            self.data.pop(code, None)

    def begin(self, ttl_s: float = MARK_S) -> str:
        token = secrets.token_hex(8)
        self.dirty.add(token)
        return token

    def renew(self, ttl_s: float = MARK_S) -> None:
        return None

    def end(self, token: str) -> None:
        self.dirty.discard(token)

    def abandon(self, token: str) -> None:
        return None  # it stays dirty: incomplete until rebuilt

    def mark_complete_if_empty(self, has_codes: Callable[[], bool]) -> bool:
        return self.complete

    def codes_changed(self) -> None:
        """The codes generation moved: another process (a CLI import beside the served app)
        may have saved codes this dict never heard of, so it is built again."""
        if self._rows is not None:
            self.rebuild(self._rows)

    def rebuild(
        self, rows: Callable[[], Iterator[Row]], progress: Callable[[int, float], None] | None = None
    ) -> int:
        start = time.monotonic()
        # Built aside and swapped in: readers in other threads never see it half full.
        built: dict[str, CodeRecord] = {}
        for code, kind, gid, issued, identity, role in rows():
            built[code] = CodeRecord(code, kind, gid, issued, identity, role)
        n = len(built)
        self.data = built
        self.complete = True
        self.dirty.clear()
        if progress is not None:
            progress(n, time.monotonic() - start)
        return n
