"""The background consumer: drains the scan-event and flag streams into MariaDB.

At-least-once: entries are acknowledged only after their batch is written, and writes
are idempotent (events by id, flags by code and rule), so a crash between the write and
the acknowledgement repeats the write harmlessly. Entries a dead consumer left pending are
claimed after `claim_idle_ms` (XAUTOCLAIM). Answers never wait for any of this.
"""

from __future__ import annotations

import json
import logging
import signal
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import redis

from anomaly.events import ScanEvent
from anomaly.rules import Flag
from anomaly.state import FLAG_STREAM, STREAM

log = logging.getLogger(__name__)
GROUP = "persist"


@dataclass
class WorkerStats:
    events: int = 0
    flags: int = 0
    batches: int = 0
    reclaimed: int = 0


class StreamWorker:
    def __init__(
        self,
        client: redis.Redis,
        write_events: Callable[[list[ScanEvent]], Any],
        write_flag: Callable[[str, Flag], Any],
        *,
        consumer: str | None = None,
        batch: int = 500,
        block_ms: int = 1000,
        claim_idle_ms: int = 60_000,
    ) -> None:
        self.client = client
        self.write_events = write_events
        self.write_flag = write_flag
        self.consumer = consumer or f"{socket.gethostname()}-{threading.get_native_id()}"
        self.batch = batch
        self.block_ms = block_ms
        self.claim_idle_ms = claim_idle_ms
        self.stats = WorkerStats()
        self._stop = threading.Event()
        for stream in (STREAM, FLAG_STREAM):
            try:
                self.client.xgroup_create(stream, GROUP, id="0", mkstream=True)
            except redis.ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise

    def stop(self, *_: object) -> None:
        self._stop.set()

    def _handle(self, stream: str, entries: list[tuple[bytes, dict[bytes, bytes]]]) -> None:
        if not entries:
            return
        ids = [entry_id for entry_id, _ in entries]
        if stream == STREAM:
            events = [ScanEvent.from_json(fields[b"e"]) for _, fields in entries]
            self.write_events(events)
            self.stats.events += len(events)
        else:
            for _, fields in entries:
                data = json.loads(fields[b"flag"])
                self.write_flag(
                    data["code"],
                    Flag(
                        data["rule"],
                        data["severity"],
                        datetime.fromisoformat(data["raised_at"]),
                        data["evidence"],
                    ),
                )
            self.stats.flags += len(entries)
        self.client.xack(stream, GROUP, *ids)
        self.stats.batches += 1

    def reclaim(self) -> int:
        """Take over entries another consumer read but never acknowledged (it died)."""
        total = 0
        for stream in (STREAM, FLAG_STREAM):
            start = "0-0"
            while True:
                start, entries, _deleted = self.client.xautoclaim(
                    stream, GROUP, self.consumer, self.claim_idle_ms, start_id=start, count=self.batch
                )
                self._handle(stream, entries)
                total += len(entries)
                if start in (b"0-0", "0-0") or not entries:
                    break
        self.stats.reclaimed += total
        return total

    def run_once(self) -> int:
        """One read of new entries from both streams; returns how many were written."""
        replies = self.client.xreadgroup(
            GROUP, self.consumer, {STREAM: ">", FLAG_STREAM: ">"}, count=self.batch, block=self.block_ms
        )
        n = 0
        for stream, entries in replies or []:
            name = stream.decode() if isinstance(stream, bytes) else stream
            self._handle(name, entries)
            n += len(entries)
        return n

    def drain(self) -> None:
        """Process until both streams have nothing new (tests, and a final flush on stop)."""
        self.reclaim()
        while self.run_once():
            pass

    def run(self, *, progress_every_s: float = 10.0) -> None:
        signal.signal(signal.SIGTERM, self.stop)
        signal.signal(signal.SIGINT, self.stop)
        log.info("worker %s: draining %s and %s", self.consumer, STREAM, FLAG_STREAM)
        last_claim = last_log = 0.0
        while not self._stop.is_set():
            now = time.monotonic()
            try:
                if now - last_claim > self.claim_idle_ms / 1000:
                    self.reclaim()
                    last_claim = now
                self.run_once()
            except (redis.ConnectionError, redis.TimeoutError) as exc:
                log.warning("redis unavailable (%s); retrying in 1 s", exc)
                time.sleep(1)
            except Exception:  # a bad batch stays pending and is retried by the next reclaim
                log.exception("batch failed; it stays pending and will be retried")
                time.sleep(1)
            if now - last_log > progress_every_s:
                log.info("worker %s: %s", self.consumer, self.stats)
                last_log = now
        log.info("worker %s stopped: %s", self.consumer, self.stats)
