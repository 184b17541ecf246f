"""Nothing lost: scans through the verify path while the stream worker is killed (-9)
mid-batch and Redis (AOF, fsync always) is killed (-9) and restarted; afterwards every
acknowledged scan must be in the database exactly once and the pending list empty.

Shared by tests/integration/test_nothing_lost.py (small) and bench/nothing_lost.py (large).

The pieces are real: a redis-server of our own on a free loopback port, `flask --app wsgi
worker` subprocesses, the app's POST /api/v1/verify through a Flask test client (the same
code path gunicorn serves). Every request has its own client id, so each stored row can be
traced back to the request that made it (through the keyed hash the app stores).

"Acknowledged" means the answer carried this scan (`scans` not null): the recording
script ran and Redis replied, which it does only after the write reached the AOF. An
answer without `scans` promised nothing; such an event may still be stored when Redis
died after writing it but before its reply reached us ("in doubt"), which only a request
in flight at a Redis kill can be: the check is that every such event's request spans one.

Chaos actions: "kill" (the worker, -9, while it holds entries it has not acknowledged; a
new worker with another consumer name takes over), "redis" (kill -9, an outage, restart
on the same AOF), "both" (the worker killed, then Redis; the next worker starts while
Redis is still away).
"""

from __future__ import annotations

import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import IO, Any

import redis
import sqlalchemy as sa

from anomaly.events import ScanEvent, hash_client
from anomaly.worker import GROUP
from registry import schema as t
from tests.conftest import make_app
from webapp import container
from webapp.demo import seed
from webapp.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
SECRET = "nothing-lost-secret"
STREAMS = ("s:stream", "s:flags")
REDIS_SERVER = shutil.which("redis-server")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class RedisServer:
    """A redis-server of our own: AOF on, fsync on every write, no RDB snapshots."""

    def __init__(self, workdir: Path, port: int = 0) -> None:
        if REDIS_SERVER is None:
            raise FileNotFoundError("redis-server is not installed (not on PATH)")
        self.binary = REDIS_SERVER
        self.dir = workdir
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self.kills: list[tuple[float, float]] = []  # (monotonic) from just before to just after

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self, timeout_s: float = 5.0) -> redis.Redis:
        return redis.Redis.from_url(self.url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s)

    def start(self, timeout_s: float = 15.0) -> None:
        self._log = (self.dir / "redis.log").open("ab")
        args = ["--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.dir)]
        args += ["--appendonly", "yes", "--appendfsync", "always", "--save", ""]
        self.proc = subprocess.Popen(
            [self.binary, *args], stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
        probe = self.client(1.0)
        deadline = time.monotonic() + timeout_s
        try:
            while True:
                try:
                    if probe.ping() and not int(probe.info("persistence").get("loading", 0)):
                        return
                except redis.RedisError:
                    pass
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"redis-server did not start: {self.log_tail()}")
                time.sleep(0.02)
        finally:
            probe.close()

    def kill(self) -> None:
        """kill -9: no shutdown, no final fsync; what was acknowledged is in the AOF."""
        if self.proc is not None and self.proc.poll() is None:
            before = time.monotonic()
            self.proc.kill()
            self.proc.wait()
            self.kills.append((before, time.monotonic()))
        if self._log is not None:
            self._log.close()
            self._log = None

    def log_tail(self, n: int = 2000) -> str:
        path = self.dir / "redis.log"
        return path.read_text(errors="replace")[-n:] if path.exists() else ""


class Worker:
    """`flask --app wsgi worker` as a subprocess with its own consumer name."""

    def __init__(self, name: str, env: dict[str, str], logdir: Path, batch: int, claim_idle_ms: int) -> None:
        self.name = name
        self.log_path = logdir / f"worker-{name}.log"
        self._log = self.log_path.open("wb")
        cmd = [sys.executable, "-m", "flask", "--app", "wsgi", "worker"]
        cmd += ["--batch", str(batch), "--claim-idle-ms", str(claim_idle_ms), "--consumer", name]
        self.proc = subprocess.Popen(
            cmd, cwd=ROOT, env=env, stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
        self.killed = False

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def _stopped(self) -> bool:
        try:
            stat = Path(f"/proc/{self.proc.pid}/stat").read_text()
        except OSError:
            return True
        return stat.rsplit(")", 1)[1].split()[0] in ("T", "t")

    def freeze(self) -> None:
        """SIGSTOP, and wait until it took effect: what Redis shows next stays true."""
        os.kill(self.proc.pid, signal.SIGSTOP)
        deadline = time.monotonic() + 1
        while not self._stopped() and time.monotonic() < deadline:
            time.sleep(0.0005)

    def thaw(self) -> None:
        os.kill(self.proc.pid, signal.SIGCONT)

    def kill(self) -> None:
        self.killed = True
        self.proc.kill()
        self.proc.wait()
        self._log.close()

    def stop(self) -> int | None:
        """SIGTERM (finish the batch, acknowledge, exit); kill after 15 s."""
        if self.alive:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        return self.proc.returncode

    def log_tail(self, n: int = 2000) -> str:
        return self.log_path.read_text(errors="replace")[-n:]


@dataclass
class Report:
    sent: int = 0
    acknowledged: int = 0  # answers that carried this scan
    unrecorded: int = 0  # 200 answers without scans (the scan store was down)
    failed: int = 0  # not 200
    stored: int = 0  # rows in scan_events
    duplicates: int = 0  # rows beyond one per request
    lost: int = 0  # acknowledged, not stored
    in_doubt: int = 0  # stored, though the answer did not acknowledge it (in flight at a kill)
    unexplained: int = 0  # in doubt, yet not in flight at any Redis kill
    unknown: int = 0  # stored rows no request of ours made
    pending_end: int = 0  # XPENDING of both streams at the end
    undelivered_end: int = 0  # streams not fully delivered to the group at the end
    worker_kills: int = 0
    killed_pending: int = 0  # entries pending on workers when they were killed
    killed_written: int = 0  # of those, already in the database (redelivered, stored once)
    redis_restarts: int = 0
    unexpected_exits: list[str] = field(default_factory=list)
    traffic_s: float = 0.0
    drain_s: float | None = None  # from the last answer until everything was stored and acked
    senders: int = 0
    notes: list[str] = field(default_factory=list)

    def problems(self) -> list[str]:
        out = []
        if self.lost:
            out.append(f"{self.lost} acknowledged events are not stored")
        if self.duplicates:
            out.append(f"{self.duplicates} duplicate rows")
        if self.unknown:
            out.append(f"{self.unknown} stored rows no request made")
        if self.pending_end:
            out.append(f"{self.pending_end} entries still pending")
        if self.undelivered_end:
            out.append("the streams were not fully delivered")
        if self.drain_s is None:
            out.append("the worker did not catch up")
        if self.unexplained:
            out.append(f"{self.unexplained} stored events were not acknowledged, nor in flight at a kill")
        if self.unexpected_exits:
            out.append(f"workers exited unasked: {self.unexpected_exits}")
        return out

    def lines(self) -> list[str]:
        drain = f"{self.drain_s:.1f} s" if self.drain_s is not None else "did not drain"
        return [
            f"events sent          {self.sent:>8,}   ({self.traffic_s:.1f} s, {self.senders} senders)",
            f"acknowledged         {self.acknowledged:>8,}   (answers with this scan)",
            f"  not recorded       {self.unrecorded:>8,}   (answered without scans: Redis down)",
            f"  failed answers     {self.failed:>8,}",
            f"stored               {self.stored:>8,}   (rows in scan_events)",
            f"  lost               {self.lost:>8,}   (acknowledged, not stored)",
            f"  in doubt           {self.in_doubt:>8,}   (stored, not acknowledged: in flight at a "
            f"Redis kill; {self.unexplained} not)",
            f"  unknown            {self.unknown:>8,}",
            f"duplicates           {self.duplicates:>8,}",
            f"pending at end       {self.pending_end:>8,}",
            f"worker kills         {self.worker_kills:>8,}   (-9 with {self.killed_pending} entries "
            f"pending, {self.killed_written} of them already written)",
            f"Redis restarts       {self.redis_restarts:>8,}   (-9, AOF appendfsync always)",
            f"time to drain        {drain:>8}",
        ]


class Traffic:
    """`senders` threads POSTing /api/v1/verify, `rate` requests/s in all, one client id
    per request; each answer is recorded as (status, acknowledged)."""

    def __init__(self, app: Any, codes: Sequence[str], events: int, rate: float, senders: int) -> None:
        self.app = app
        self.codes = list(codes)
        self.events = events
        self.rate = rate
        self.senders = senders
        self.run_id = uuid.uuid4().hex[:8]
        # request -> (status, acknowledged, monotonic start, monotonic end)
        self.results: dict[int, tuple[int, bool, float, float]] = {}
        self.errors: list[str] = []
        self.threads = [
            threading.Thread(target=self._send, args=(k,), name=f"sender-{k}", daemon=True)
            for k in range(senders)
        ]
        self.started = self.finished = 0.0
        # Senders hold before request `limit` until the scenario moves it on: on a slow
        # machine the traffic must not run out before every planned failure has happened.
        self.limit = events

    def client_id(self, i: int) -> str:
        return f"nl-{self.run_id}-{i}"

    def start(self) -> None:
        self.started = time.monotonic()
        for th in self.threads:
            th.start()

    @property
    def sent(self) -> int:
        return len(self.results)

    @property
    def done(self) -> bool:
        return not any(th.is_alive() for th in self.threads)

    def join(self) -> None:
        for th in self.threads:
            th.join()
        self.finished = time.monotonic()

    def _send(self, k: int) -> None:
        http = self.app.test_client()
        per_sender = self.rate / self.senders if self.rate > 0 else 0.0
        next_at = self.started
        for i in range(k, self.events, self.senders):
            while i >= self.limit:
                time.sleep(0.01)
            if per_sender:
                # Paced from the previous request, not from the start: no burst after a hold.
                next_at = max(next_at + 1 / per_sender, time.monotonic() - 1 / per_sender)
                delay = next_at - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
            body = {"input": self.codes[i % len(self.codes)], "client": self.client_id(i), "channel": "qr"}
            began = time.monotonic()
            try:
                resp = http.post("/api/v1/verify", json=body)
                answer = resp.get_json(silent=True) or {}
                status = resp.status_code
                acked = status == 200 and answer.get("scans") is not None
            except Exception as exc:  # a broken answer is not an acknowledgement
                if len(self.errors) < 5:
                    self.errors.append(f"{type(exc).__name__}: {exc}")
                status, acked = 0, False
            self.results[i] = (status, acked, began, time.monotonic())


def _recorded_codes(app: Any) -> list[str]:
    """The demo's codes whose verify records a scan and says so (invalid formats record
    nothing; a not_found answer records its scan but carries `scans: null`, so it could
    never be told acknowledged)."""
    samples = seed(container(app).admin, date.today())
    return [
        code
        for verdict, code in samples.items()
        if not verdict.startswith("invalid_format") and not verdict.startswith("not_found")
    ]


def _worker_env(database_url: str, redis_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RULE_", "REDIS_", "DATABASE_"))}
    env.update(
        DATABASE_URL=database_url,
        REDIS_URL=redis_url,
        SECRET_KEY=SECRET,
        RATE_LIMITS="off",
        EXPECTED_CODES="100000",
        PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    )
    return env


class Scenario:
    def __init__(
        self,
        database_url: str,
        workdir: Path,
        *,
        events: int,
        rate: float,
        senders: int = 2,
        batch: int = 20,
        claim_idle_ms: int = 1000,
        chaos: Sequence[tuple[float, str]] = ((0.2, "kill"), (0.45, "redis"), (0.7, "kill")),
        outage_s: float = 1.0,
        drain_timeout_s: float = 60.0,
        say: Callable[[str], object] = lambda _msg: None,
    ) -> None:
        self.database_url = database_url
        self.workdir = workdir
        self.events = events
        self.rate = rate
        self.senders = senders
        self.batch = batch
        self.claim_idle_ms = claim_idle_ms
        self.chaos = sorted(chaos)
        self.outage_s = outage_s
        self.drain_timeout_s = drain_timeout_s
        self.say = say
        self.report = Report(senders=senders)
        self.redis = RedisServer(workdir / "redis")
        self.workers: list[Worker] = []
        self.engine: sa.Engine | None = None

    # -- helpers --------------------------------------------------------------------------

    @property
    def worker(self) -> Worker:
        return self.workers[-1]

    def start_worker(self) -> Worker:
        name = f"w{len(self.workers) + 1}"
        w = Worker(
            name, _worker_env(self.database_url, self.redis.url), self.workdir, self.batch, self.claim_idle_ms
        )
        self.workers.append(w)
        self.say(f"worker {name} started (pid {w.proc.pid})")
        return w

    def stored_rows(self) -> int:
        assert self.engine is not None
        with self.engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(t.scan_events)).scalar_one())

    def _consumer_seen(self, rds: redis.Redis, name: str) -> bool:
        try:
            consumers: Any = rds.xinfo_consumers(STREAMS[0], GROUP)
        except redis.ResponseError:
            return False
        return any(_text(c["name"]) == name for c in consumers)

    def wait_working(self, rds: redis.Redis, traffic: Traffic, timeout_s: float = 30.0) -> None:
        """Until the current worker has joined the group and stored something (or traffic
        is over and it has joined): a kill then hits a worker at work."""
        w = self.worker
        rows = self.stored_rows()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and w.alive:
            if self._consumer_seen(rds, w.name) and (self.stored_rows() > rows or traffic.done):
                return
            time.sleep(0.05)
        if not w.alive:
            raise RuntimeError(f"worker {w.name} exited: {w.log_tail()}")

    def kill_mid_batch(self, rds: redis.Redis, timeout_s: float = 20.0, *, replace: bool = True) -> None:
        """Freeze the worker until Redis shows entries handed to it and not acknowledged
        (it is inside a batch), then kill -9 it there and start another one."""
        w = self.worker
        held: list[tuple[str, Any]] = []
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            w.freeze()
            for stream in STREAMS:
                rows: Any = rds.xpending_range(stream, GROUP, "-", "+", 100_000, consumername=w.name)
                held += [(stream, r["message_id"]) for r in rows]
            if held:
                break
            w.thaw()
            time.sleep(0.002 + 0.02 * (time.monotonic() % 1))
        w.kill()  # a frozen process dies of SIGKILL just the same
        self.report.worker_kills += 1
        written = 0
        event_ids = []
        for stream, entry_id in held:
            if stream == STREAMS[0]:
                entries: Any = rds.xrange(stream, min=entry_id, max=entry_id)
                event_ids += [ScanEvent.from_json(fields[b"e"]).event_id for _id, fields in entries]
        if event_ids:
            assert self.engine is not None
            e = t.scan_events
            with self.engine.connect() as conn:
                written = int(
                    conn.execute(
                        sa.select(sa.func.count()).select_from(e).where(e.c.event_id.in_(event_ids))
                    ).scalar_one()
                )
        self.report.killed_pending += len(held)
        self.report.killed_written += written
        if not held:
            self.report.notes.append(f"worker {w.name} was killed between batches (never caught mid-batch)")
        self.say(f"worker {w.name} killed -9 with {len(held)} entries pending ({written} already written)")
        if replace:
            self.start_worker()

    def restart_redis(self, *, new_worker: bool = False) -> None:
        """kill -9, an outage, and a restart on the same port and AOF. `new_worker`: start
        the next worker during the outage and keep Redis away until it has noticed."""
        self.redis.kill()
        self.say("redis-server killed -9")
        time.sleep(self.outage_s)
        if new_worker:
            w = self.start_worker()
            deadline = time.monotonic() + 20
            while w.alive and "redis unavailable" not in w.log_tail(100_000) and time.monotonic() < deadline:
                time.sleep(0.05)
            self.say(f"worker {w.name} {'waits for' if w.alive else 'EXITED without'} Redis")
        self.redis.start()
        self.report.redis_restarts += 1
        self.say("redis-server restarted (AOF loaded)")

    def drained(self, rds: redis.Redis) -> tuple[int, int]:
        """(pending entries, streams not fully delivered) over both streams."""
        pending = undelivered = 0
        for stream in STREAMS:
            info: Any = rds.xinfo_stream(stream)
            groups: Any = rds.xinfo_groups(stream)
            group = next(g for g in groups if _text(g["name"]) == GROUP)
            pending += int(group["pending"])
            if _text(group["last-delivered-id"]) != _text(info["last-generated-id"]):
                undelivered += 1
        return pending, undelivered

    def wait_drained(self, rds: redis.Redis) -> None:
        start = time.monotonic()
        deadline = start + self.drain_timeout_s
        while True:
            try:
                pending, undelivered = self.drained(rds)
            except (redis.RedisError, StopIteration):
                pending, undelivered = -1, -1
            if pending == 0 and undelivered == 0:
                self.report.drain_s = time.monotonic() - start
                break
            if time.monotonic() > deadline:
                break
            if not self.worker.alive:
                self.report.unexpected_exits.append(f"{self.worker.name}: {self.worker.log_tail(600)}")
                self.start_worker()
            time.sleep(0.05)
        self.report.pending_end, self.report.undelivered_end = max(pending, 0), max(undelivered, 0)

    def tally(self, traffic: Traffic) -> None:
        r = self.report
        by_hash = {hash_client(SECRET.encode(), traffic.client_id(i)): i for i in traffic.results}
        acked = {i for i, result in traffic.results.items() if result[1]}
        r.sent = len(traffic.results)
        r.acknowledged = len(acked)
        r.failed = sum(1 for result in traffic.results.values() if result[0] != 200)
        r.unrecorded = r.sent - r.acknowledged - r.failed
        e = t.scan_events
        assert self.engine is not None
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(e.c.client_hash, sa.func.count()).group_by(e.c.client_hash)).all()
        stored: set[int] = set()
        for client_hash, count in rows:
            r.stored += int(count)
            i = by_hash.get(client_hash)
            if i is None:
                r.unknown += int(count)
                continue
            stored.add(i)
            r.duplicates += int(count) - 1
        r.lost = len(acked - stored)
        r.in_doubt = len(stored - acked)
        for i in stored - acked:
            _status, _ok, began, ended = traffic.results[i]
            if not any(
                began <= kill_end and ended >= kill_start for kill_start, kill_end in self.redis.kills
            ):
                r.unexplained += 1
        if traffic.errors:
            r.notes.append(f"request errors: {traffic.errors}")

    # -- the run --------------------------------------------------------------------------

    def run(self) -> Report:
        self.redis.start()
        self.say(f"redis-server on port {self.redis.port} (AOF, appendfsync always) in {self.redis.dir}")
        settings = Settings(
            database_url=self.database_url,
            redis_url=self.redis.url,
            secret_key=SECRET,
            rate_limits=False,
            expected_codes=100_000,
            # Generous: a reply only goes missing when Redis dies, not when the box is busy.
            redis_timeout_ms=3000,
        )
        app = make_app(settings)  # migrates the fresh database
        self.engine = container(app).scan_sql.engine
        codes = _recorded_codes(app)
        rds = self.redis.client()
        traffic = Traffic(app, codes, self.events, self.rate, self.senders)
        try:
            self.start_worker()
            fractions = [f for f, _ in self.chaos] + [1.0]

            def limit(f: float) -> int:
                # Two seconds' worth past the failure point (at least one request past it),
                # so the failure meets traffic; senders then wait for the next step.
                past = max(int(f * self.events + 2 * self.rate), math.ceil(f * self.events) + 1)
                return min(self.events, past)

            traffic.limit = limit(fractions[0])
            traffic.start()
            self.say(f"sending {self.events:,} verifies at {self.rate:g}/s over {len(codes)} codes")
            for step, (fraction, action) in enumerate(self.chaos):
                while traffic.sent < fraction * self.events and not traffic.done:
                    time.sleep(0.02)
                if action == "kill":
                    self.wait_working(rds, traffic)
                    self.kill_mid_batch(rds)
                elif action == "redis":
                    self.wait_working(rds, traffic)
                    self.restart_redis()
                elif action == "both":
                    self.wait_working(rds, traffic)
                    self.kill_mid_batch(rds, replace=False)
                    self.restart_redis(new_worker=True)
                else:
                    raise ValueError(f"unknown chaos action {action!r}")
                traffic.limit = limit(fractions[step + 1])
            traffic.join()
            self.report.traffic_s = traffic.finished - traffic.started
            self.say(f"traffic done in {self.report.traffic_s:.1f} s; waiting for the worker to drain")
            self.wait_drained(rds)
            for w in self.workers:
                if not w.killed and not w.alive and w.proc.returncode not in (None, 0):
                    self.report.unexpected_exits.append(f"{w.name}: {w.log_tail(600)}")
            self.tally(traffic)
        finally:
            for w in self.workers:
                if not w.killed:
                    code = w.stop()
                    if code not in (0, None, -signal.SIGTERM):
                        self.report.unexpected_exits.append(f"{w.name} exit {code}: {w.log_tail(600)}")
            rds.close()
            self.redis.kill()
            container(app).scan_sql.engine.dispose()
        return self.report
