"""The background consumer: drains the scan-event and flag streams into a sink (the SQL
store in production, `MemorySink` in tests).

At-least-once: entries are acknowledged only after their batch is written, and sinks are
idempotent (events by id, flags by code and rule), so a crash between the write and the
acknowledgement repeats the write harmlessly. A consumer that restarts under its own name
first re-reads what it had pending; entries a dead consumer left pending are claimed after
`claim_idle_ms` (XAUTOCLAIM). An entry that cannot be parsed is copied to a dead-letter
stream and acknowledged, so it cannot block the ones behind it. Answers never wait for any
of this.

On a Redis Cluster there is an event and a flag stream per slot group (anomaly.state), 128
in all. A read may not span slots, and redis-py's cluster client asks a node where
XREADGROUP's keys are before each one (COMMAND GETKEYS), so the worker reads each
primary's streams itself: one pipeline of non-blocking XREADGROUPs per primary, then a
short wait (`POLL_S`) when none had anything. Acknowledging, reclaiming (XAUTOCLAIM on
every stream, so a dead consumer's entries are taken on every shard) and trimming go
through the cluster client, one stream at a time. A failover or a moved slot shows as
MOVED or a lost connection: the slot map is read again and the read retried.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import redis
from redis.exceptions import AskError, ClusterDownError, MovedError, TryAgainError

from anomaly.events import ScanEvent
from anomaly.state import DEFAULT_PREFIX, stream_names
from cache.redis_cache import LazyCluster
from domain.scans import SEVERITY_RANK, Flag

log = logging.getLogger(__name__)
GROUP = "persist"
DEAD_CONSUMER_IDLE_MS = 86_400_000  # a consumer silent this long, with nothing pending, is gone
TRIM_EVERY_S = 5.0
# What a node answers for a slot it no longer serves (failover, resharding).
_RESHARDED = (MovedError, AskError, ClusterDownError, TryAgainError)
POLL_S = 0.2  # a cluster's reads do not block: this long between reads that found nothing


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _stream_id(value: Any) -> tuple[int, int]:
    ms, _, seq = _text(value).partition("-")
    return int(ms), int(seq or 0)


class EventSink(Protocol):
    """Where the worker writes. Both calls must be idempotent: the same event id, or the
    same (code, rule) at the same or a lower severity, written twice leaves one row."""

    def write_events(self, events: list[ScanEvent]) -> object: ...

    def write_flags(self, flags: list[tuple[str, Flag]]) -> object: ...


class CallableSink:
    """An EventSink from two callables (the SQL store's `write_events` and `upsert_flag`)."""

    def __init__(
        self, write_events: Callable[[list[ScanEvent]], object], write_flag: Callable[[str, Flag], object]
    ) -> None:
        self._write_events = write_events
        self._write_flag = write_flag

    def write_events(self, events: list[ScanEvent]) -> None:
        self._write_events(events)

    def write_flags(self, flags: list[tuple[str, Flag]]) -> None:
        for code, flag in flags:
            self._write_flag(code, flag)


class MemorySink:
    """An idempotent in-memory sink: events by id, flags by (code, rule), the higher
    severity kept. `event_writes` counts every write call's events, duplicates included."""

    def __init__(self) -> None:
        self.events: dict[str, ScanEvent] = {}
        self.flags: dict[tuple[str, str], Flag] = {}
        self.event_writes = 0
        self._lock = threading.Lock()

    def write_events(self, events: list[ScanEvent]) -> None:
        with self._lock:
            self.event_writes += len(events)
            for event in events:
                self.events.setdefault(event.event_id, event)

    def write_flags(self, flags: list[tuple[str, Flag]]) -> None:
        rank = SEVERITY_RANK
        with self._lock:
            for code, flag in flags:
                old = self.flags.get((code, flag.rule))
                if old is None or rank[flag.severity] > rank[old.severity]:
                    self.flags[(code, flag.rule)] = flag


@dataclass
class WorkerStats:
    events: int = 0
    flags: int = 0
    batches: int = 0
    reclaimed: int = 0
    dead_letters: int = 0
    failures: int = 0


Entry = tuple[Any, dict[bytes, bytes]]


def _flag_from_fields(fields: dict[bytes, bytes]) -> tuple[str, Flag]:
    data = json.loads(fields[b"flag"])
    raised = datetime.fromisoformat(data["raised_at"])
    return data["code"], Flag(data["rule"], data["severity"], raised, data["evidence"])


class StreamWorker:
    def __init__(
        self,
        client: redis.Redis,
        sink: EventSink | Callable[[list[ScanEvent]], object],
        write_flag: Callable[[str, Flag], object] | None = None,
        *,
        key_prefix: str = DEFAULT_PREFIX,
        consumer: str | None = None,
        batch: int = 500,
        block_ms: int = 1000,
        claim_idle_ms: int = 60_000,
    ) -> None:
        """`sink` is an EventSink, or (for the SQL store) its `write_events` callable with
        `write_flag` as the second argument. Create the consumer group if it is missing.
        The client needs a socket timeout above `block_ms`."""
        if write_flag is not None:
            self.sink: EventSink = CallableSink(sink, write_flag)  # type: ignore[arg-type]
        elif callable(sink):
            raise TypeError("a write_events callable needs write_flag too; or pass an EventSink")
        else:
            self.sink = sink
        self.client = client
        self.cluster = isinstance(client, LazyCluster)
        self.event_streams, self.flag_streams = stream_names(key_prefix, cluster=self.cluster)
        self.streams = self.event_streams + self.flag_streams
        self._flag_set = frozenset(self.flag_streams)
        self._touched: set[str] = set()  # streams read from since the last trim
        self.dead_stream = key_prefix + "dead"
        # hostname + pid: a container restarted with the same pid re-reads its own pending.
        self.consumer = consumer or f"{socket.gethostname()}-{os.getpid()}"
        self.batch = batch
        self.block_ms = block_ms
        self.claim_idle_ms = claim_idle_ms
        self.stats = WorkerStats()
        self._stop = threading.Event()
        try:
            self.ensure_groups()
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            # Started while Redis is away: `run` creates the group once it is back.
            log.warning("redis unavailable at start (%s); the consumer group is created later", exc)

    def ensure_groups(self) -> None:
        """Create the consumer group on every stream where it is missing."""
        for stream in self.streams:
            try:
                self.client.xgroup_create(stream, GROUP, id="0", mkstream=True)
            except redis.ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise

    def stop(self, *_: object) -> None:
        """Finish the batch in hand, acknowledge it, and leave `run`."""
        self._stop.set()

    # -- one batch ------------------------------------------------------------------------

    def _dead_letter(self, stream: str, entry_id: Any, fields: dict[bytes, bytes], exc: Exception) -> None:
        # The id and error only: an entry holds hashed ids and places, not for the log.
        log.error("unreadable entry %s in %s (%s): moved to %s", entry_id, stream, exc, self.dead_stream)
        dead: dict[Any, Any] = {b"stream": stream.encode(), b"id": entry_id, **fields}
        self.client.xadd(self.dead_stream, dead)
        self.stats.dead_letters += 1

    def _handle(self, stream: str, entries: list[Entry]) -> int:
        """Write one batch, then acknowledge it; a failed write leaves it pending."""
        entries = [(entry_id, fields) for entry_id, fields in entries if fields]  # trimmed away
        if not entries:
            return 0
        events: list[ScanEvent] = []
        flags: list[tuple[str, Flag]] = []
        for entry_id, fields in entries:
            try:
                if stream not in self._flag_set:
                    events.append(ScanEvent.from_json(fields[b"e"]))
                else:
                    flags.append(_flag_from_fields(fields))
            except (KeyError, ValueError, TypeError) as exc:
                self._dead_letter(stream, entry_id, fields, exc)
        if events:
            self.sink.write_events(events)
        if flags:
            self.sink.write_flags(flags)
        self.client.xack(stream, GROUP, *[entry_id for entry_id, _ in entries])
        self._touched.add(stream)
        self.stats.events += len(events)
        self.stats.flags += len(flags)
        self.stats.batches += 1
        return len(entries)

    def _read(self, start: str, block_ms: int | None) -> int:
        if self.cluster:
            return self._read_cluster(start, block_ms)
        replies: Any = self.client.xreadgroup(
            GROUP,
            self.consumer,
            dict.fromkeys(self.streams, start),
            count=self.batch,
            block=block_ms,
        )
        n = 0
        for stream, entries in replies or []:
            n += self._handle(_text(stream), entries)
        return n

    def _read_cluster(self, start: str, block_ms: int | None) -> int:
        """Every stream read once, one pipeline per primary (see the module docstring)."""
        cluster: Any = self.client
        by_node: dict[str, tuple[Any, list[str]]] = {}
        try:
            for stream in self.streams:
                node = cluster.nodes_manager.get_node_from_slot(cluster.keyslot(stream))
                by_node.setdefault(node.name, (cluster.get_redis_connection(node), []))[1].append(stream)
            replies: list[Any] = []
            for conn, streams in by_node.values():
                pipe = conn.pipeline(transaction=False)
                for stream in streams:
                    pipe.xreadgroup(GROUP, self.consumer, {stream: start}, count=self.batch)
                replies += pipe.execute()
        except (redis.ConnectionError, redis.TimeoutError, *_RESHARDED) as exc:
            # A primary failed over or a slot moved: read the slot map again, then retry.
            try:
                cluster.nodes_manager.initialize()
            except Exception:
                log.warning("the cluster's slot map could not be read again", exc_info=True)
            raise redis.ConnectionError(f"cluster read failed: {exc}") from exc
        n = 0
        for reply in replies:
            for stream, entries in reply or []:
                n += self._handle(_text(stream), entries)
        if not n and block_ms:
            self._stop.wait(min(block_ms / 1000, POLL_S))
        return n

    def run_once(self, *, block: bool = True) -> int:
        """One read of new entries from every stream; returns how many were handled."""
        return self._read(">", self.block_ms if block else None)

    def own_pending(self) -> int:
        """Re-read what this consumer was given but never acknowledged (a failed write, or
        a restart under the same name)."""
        total = 0
        while n := self._read("0", None):
            total += n
        return total

    def reclaim(self) -> int:
        """Take over entries another consumer read but never acknowledged (it died), then
        forget consumers long gone with nothing pending."""
        total = 0
        for stream in self.streams:
            start: Any = "0-0"
            while True:
                reply: Any = self.client.xautoclaim(
                    stream, GROUP, self.consumer, self.claim_idle_ms, start_id=start, count=self.batch
                )
                start, entries = reply[0], reply[1]
                total += self._handle(stream, entries)
                # Walk the whole pending list: a page can be empty yet not the last one.
                if start in (b"0-0", "0-0"):
                    break
            consumers: Any = self.client.xinfo_consumers(stream, GROUP)
            for info in consumers:
                name = _text(info["name"])
                if name != self.consumer and info["pending"] == 0 and info["idle"] > DEAD_CONSUMER_IDLE_MS:
                    self.client.xgroup_delconsumer(stream, GROUP, name)
        self.stats.reclaimed += total
        return total

    def trim(self) -> int:
        """Drop entries every consumer has acknowledged. The streams' MAXLEN is only the cap
        for a worker that is down; without this, acknowledged events (~300 bytes each)
        would fill Redis up to it. Keeps everything pending or not yet delivered."""
        removed = 0
        # On a cluster only the streams read from since the last trim (128 otherwise).
        streams = [s for s in self.streams if s in self._touched] if self.cluster else self.streams
        self._touched = set()
        for stream in streams:
            # The last delivered id first, the pending list second: an entry another worker
            # is handed in between has a later id and is kept; one handed out before is
            # acknowledged or in the pending list. (In the other order, entries read between
            # the two calls were trimmed while pending: lost if that worker then died.)
            groups: Any = self.client.xinfo_groups(stream)
            delivered = [g["last-delivered-id"] for g in groups if _text(g["name"]) == GROUP]
            if not delivered or _text(delivered[0]) == "0-0":
                continue
            keep_from = delivered[0]
            pending: Any = self.client.xpending(stream, GROUP)
            if pending["pending"] and _stream_id(pending["min"]) < _stream_id(keep_from):
                keep_from = pending["min"]
            removed += int(self.client.xtrim(stream, minid=keep_from, approximate=True))
        return removed

    def drain(self) -> None:
        """Handle everything there is now, then return (tests, `worker --once`)."""
        self.own_pending()
        self.reclaim()
        while self.run_once(block=False):
            pass
        self.trim()

    # -- the loop -------------------------------------------------------------------------

    def run(self, *, progress_every_s: float = 10.0) -> None:
        """Consume until SIGTERM/SIGINT (or `stop()`), logging progress now and then."""
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, self.stop)
            signal.signal(signal.SIGINT, self.stop)
        log.info("worker %s: draining %d streams", self.consumer, len(self.streams))
        last_claim = last_log = last_trim = time.monotonic()
        retry_own = regroup = True
        logged = WorkerStats()
        while not self._stop.is_set():
            try:
                if regroup:
                    self.ensure_groups()
                    regroup = False
                if retry_own:
                    self.own_pending()
                    retry_own = False
                if time.monotonic() - last_claim >= self.claim_idle_ms / 1000:
                    self.reclaim()
                    last_claim = time.monotonic()
                if self.run_once() and time.monotonic() - last_trim >= TRIM_EVERY_S:
                    self.trim()
                    last_trim = time.monotonic()
            except (redis.ConnectionError, redis.TimeoutError) as exc:
                self.stats.failures += 1
                log.warning("redis unavailable (%s); retrying in 1 s", exc)
                retry_own = True
                self._stop.wait(1)
            except Exception as exc:  # the sink failed: the batch stays pending, retried below
                self.stats.failures += 1
                if isinstance(exc, redis.ResponseError) and "NOGROUP" in str(exc):
                    # Redis came back without its streams (no AOF, a new server): the group
                    # is created again and reads the new streams from their start.
                    log.warning("consumer group missing (%s); creating it again", exc)
                    regroup = True
                else:
                    log.exception("batch not written; it stays pending and is retried")
                retry_own = True
                self._stop.wait(1)
            now = time.monotonic()
            if now - last_log >= progress_every_s:
                rate = (self.stats.events - logged.events) / (now - last_log)
                log.info("worker %s: %s (%.0f events/s)", self.consumer, self.stats, rate)
                logged = WorkerStats(**vars(self.stats))
                last_log = now
        log.info("worker %s stopped: %s", self.consumer, self.stats)
