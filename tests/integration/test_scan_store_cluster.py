"""The scan store on a Redis Cluster: three primaries with a replica each and AOF (fsync
always), started here from the machine's redis-server. Verifies, a status change, an
import and the enumeration throttle answer as on one server; the worker drains every
slot group's stream; a worker killed -9 mid-batch loses and duplicates nothing; a primary
killed -9 mid-run is replaced by its replica with no 5xx and nothing acknowledged lost.

Needs MariaDB and redis-server/redis-cli; fails instead of skipping under REQUIRE_SERVICES=1.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import redis as redis_lib
import sqlalchemy as sa
from flask import Flask
from redis.cluster import RedisCluster

from anomaly.events import hash_client
from anomaly.state import stream_names
from anomaly.worker import GROUP, StreamWorker
from cache.projection import group_tag, slot_group
from cache.redis_cache import make_redis
from registry import schema as t
from tests import chaos
from tests.conftest import ADMIN, make_app, settings_for
from tests.integration.test_scan_abuse import _never_issued
from tests.redis_server import ClusterChild
from verify_api import limits
from webapp import container
from webapp.demo import seed

pytestmark = [pytest.mark.services, pytest.mark.slow]
EVENTS, FLAGS = stream_names(cluster=True)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClusterChild]:
    nodes = ClusterChild(tmp_path_factory.mktemp("scan-cluster"), primaries=3, replicas=1, aof=True)
    try:
        nodes.start()
        yield nodes
    finally:
        nodes.stop()


@pytest.fixture
def fresh(cluster: ClusterChild) -> RedisCluster:
    """The cluster emptied for this test (its topology as the last test left it)."""
    client = RedisCluster.from_url("redis://" + cluster.nodes.split(",")[0])
    client.flushall(target_nodes=RedisCluster.PRIMARIES)
    return client


def _app(mysql_db: str, redis_url: str, cluster: ClusterChild, **extra: Any) -> Flask:
    settings = settings_for(mysql_db, redis_url, **extra).with_(scan_redis_url=cluster.url)
    return make_app(settings)


def _stored(app: Flask) -> dict[str, int]:
    """client hash -> rows in scan_events."""
    e = t.scan_events
    with container(app).scan_sql.engine.connect() as conn:
        rows = conn.execute(sa.select(e.c.client_hash, sa.func.count()).group_by(e.c.client_hash)).all()
    return {str(h): int(n) for h, n in rows}


def _pending(client: RedisCluster, consumer: str | None = None, streams: list[str] | None = None) -> int:
    """Entries pending on the group (on one consumer), over every stream (or `streams`); a
    stream the worker has not yet made its group on counts none."""
    n = 0
    for s in streams or EVENTS + FLAGS:
        try:
            if consumer is None:
                n += int(client.xpending(s, GROUP)["pending"])
            else:
                n += len(client.xpending_range(s, GROUP, "-", "+", 1000, consumername=consumer))
        except redis_lib.ResponseError:  # NOGROUP
            continue
    return n


def test_verify_status_import_and_enumeration_on_a_cluster_scan_store(
    cluster: ClusterChild, fresh: RedisCluster, mysql_db: str, redis_url: str
) -> None:
    app = _app(mysql_db, redis_url, cluster, rate_limits=True)
    demo = seed(container(app).admin, date.today())
    http = app.test_client()

    def verify(code: str, client: str) -> tuple[int, dict[str, Any]]:
        resp = http.post("/api/v1/verify", json={"input": code, "client": client})
        return resp.status_code, resp.get_json()

    code = demo["genuine"]
    counts = [verify(code, f"shopper-{i}")[1]["scans"]["count"] for i in range(3)]
    assert counts == [1, 2, 3]
    again = verify(code, "shopper-0")[1]["scans"]
    assert again["count"] == 4 and again["distinct_scanners"] == 3
    # The code's keys in its slot group's slot, its events in that group's stream.
    tag = group_tag(slot_group(code))
    assert fresh.exists(f"s:{tag}:{code}:h") and fresh.xlen(f"s:{tag}:stream") == 4
    assert not fresh.exists("s:stream")
    assert int(fresh.hget(f"s:{tag}:{code}:h", "n")) == 4

    # A certificate's status change reaches the answer, still with its scans.
    number = http.get(f"/api/v1/codes/{code}").get_json()["certificate"]["number"]
    patched = http.patch(f"/api/v1/admin/certificates/{number}", json={"status": "suspended"}, headers=ADMIN)
    assert patched.status_code == 200
    deadline = time.monotonic() + 1
    while (answer := verify(code, "shopper-9"))[1]["verdict"] != "certificate_suspended":
        assert time.monotonic() < deadline, "the status change did not arrive within 1 s"
        time.sleep(0.05)
    assert answer[1]["scans"]["count"] >= 5

    # A code imported now is answered and its scans counted.
    yy = date.today().year % 100
    loaded_code = f"0123{yy:02d}555555555555"
    legacy = http.get(f"/api/v1/codes/{demo['genuine (legacy 17-digit)']}").get_json()
    loaded = http.post(
        "/api/v1/admin/codes",
        json=[
            {
                "code": loaded_code,
                "certificate": legacy["certificate"]["number"],
                "product": legacy["product"]["name"],
            }
        ],
        headers=ADMIN,
    )
    assert loaded.status_code == 200 and loaded.get_json()["accepted"] == 1
    status, answer = verify(loaded_code, "shopper-1")
    assert status == 200 and answer["verdict"] != "not_found" and answer["scans"]["count"] == 1

    # The enumeration throttle: its sets live in their own slots, counted by the gate.
    statuses = [verify(_never_issued(i), "guesser")[0] for i in range(11)]
    assert statuses == [200] * 10 + [429]
    status, refused = verify(code, "guesser")
    assert status == 429 and refused["code"] == "enumeration_throttled"
    guesser = hash_client(container(app).settings.secret_key.encode(), "guesser")
    assert fresh.scard("s:e:{" + guesser + "}") == 11

    # The worker drains every group's stream into the database, once each.
    sql = container(app).scan_sql
    written = sum(fresh.xlen(s) for s in EVENTS if fresh.exists(s))
    StreamWorker(
        make_redis(cluster.url, timeout_ms=5000), sql.write_events, sql.upsert_flag, consumer="t1"
    ).drain()
    assert sum(_stored(app).values()) == written > 10
    assert _pending(fresh) == 0


class Sender:
    """A thread POSTing verifies, each its own client id; (status, acknowledged, start, end)
    per request."""

    def __init__(self, app: Flask, codes: list[str], rate: float) -> None:
        self.app, self.codes, self.rate = app, codes, rate
        self.results: list[tuple[int, bool, float, float, str]] = []
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        http = self.app.test_client()
        i = 0
        while not self._stop.is_set():
            client = f"cl-{i}"
            began = time.monotonic()
            resp = http.post(
                "/api/v1/verify", json={"input": self.codes[i % len(self.codes)], "client": client}
            )
            body = resp.get_json(silent=True) or {}
            acked = resp.status_code == 200 and body.get("scans") is not None
            self.results.append((resp.status_code, acked, began, time.monotonic(), client))
            i += 1
            time.sleep(max(0.0, began + 1 / self.rate - time.monotonic()))

    def __enter__(self) -> Sender:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self.thread.join(30)


def _lost_and_duplicated(
    app: Flask, results: list[tuple[int, bool, float, float, str]]
) -> tuple[int, int, int]:
    """(acknowledged not stored, rows beyond one per request, rows no request made)."""
    secret = container(app).settings.secret_key.encode()
    stored = _stored(app)
    mine = {hash_client(secret, client): acked for _s, acked, _b, _e, client in results}
    lost = sum(1 for h, acked in mine.items() if acked and h not in stored)
    duplicates = sum(n - 1 for n in stored.values())
    unknown = sum(n for h, n in stored.items() if h not in mine)
    return lost, duplicates, unknown


def _recorded_codes(app: Flask) -> list[str]:
    demo = seed(container(app).admin, date.today())
    return [c for v, c in demo.items() if not v.startswith(("invalid_format", "not_found"))]


def test_a_worker_killed_mid_batch_on_a_cluster_loses_and_duplicates_nothing(
    cluster: ClusterChild, fresh: RedisCluster, mysql_db: str, redis_url: str, tmp_path: Path
) -> None:
    app = _app(mysql_db, redis_url, cluster)
    codes = _recorded_codes(app)
    env = chaos._worker_env(mysql_db, cluster.url)
    env["SECRET_KEY"] = container(app).settings.secret_key
    streams = sorted({f"s:{group_tag(slot_group(code))}:stream" for code in codes})
    first = chaos.Worker("k1", env, tmp_path, batch=10, claim_idle_ms=1000)
    second = None
    try:
        with Sender(app, codes, rate=150) as sender:
            # At work first (started, in the group, something stored), then frozen until
            # it holds entries it has not acknowledged, and killed there.
            deadline = time.monotonic() + 60
            while not (sum(_stored(app).values()) and first.alive) and time.monotonic() < deadline:
                time.sleep(0.1)
            held = 0
            while not held and time.monotonic() < deadline:
                first.freeze()
                held = _pending(fresh, "k1", streams)
                if not held:
                    first.thaw()
                    time.sleep(0.002 + 0.02 * (time.monotonic() % 1))
            first.kill()
            assert held, first.log_tail()
            second = chaos.Worker("k2", env, tmp_path, batch=10, claim_idle_ms=1000)
            time.sleep(2)
        deadline = time.monotonic() + 60
        while (_pending(fresh) or _undelivered(fresh)) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert _pending(fresh) == 0 and _undelivered(fresh) == 0, second.log_tail()
    finally:
        for w in (first, second):
            if w is not None and w.alive:
                w.kill()
    lost, duplicates, unknown = _lost_and_duplicated(app, sender.results)
    assert (lost, duplicates, unknown) == (0, 0, 0)
    assert sum(1 for r in sender.results if r[1]) > 100


def _undelivered(client: RedisCluster) -> int:
    n = 0
    for s in EVENTS + FLAGS:
        if not client.exists(s):
            continue
        info: Any = client.xinfo_stream(s)
        group = next(g for g in client.xinfo_groups(s) if g["name"] in (GROUP, GROUP.encode()))
        n += group["last-delivered-id"] != info["last-generated-id"]
    return n


def test_a_primary_killed_mid_run_fails_over_with_no_5xx_and_nothing_lost(
    cluster: ClusterChild, fresh: RedisCluster, mysql_db: str, redis_url: str
) -> None:
    app = _app(mysql_db, redis_url, cluster)
    codes = _recorded_codes(app)
    # The primary holding the most codes' slot groups, so the failover meets the traffic.
    by_primary: dict[int, list[str]] = {}
    for code in codes:
        by_primary.setdefault(cluster.primary_of(f"s:{group_tag(slot_group(code))}:stream"), []).append(code)
    victim, its_codes = max(by_primary.items(), key=lambda kv: len(kv[1]))
    stream = f"s:{group_tag(slot_group(its_codes[0]))}:stream"
    with Sender(app, its_codes, rate=100) as sender:
        time.sleep(2)
        killed_at = time.monotonic()
        cluster.kill(victim)  # -9: no shutdown; its replica takes over after the node timeout
        deadline = time.monotonic() + 30
        while cluster.primary_of(stream) == victim:  # until its replica took over
            assert time.monotonic() < deadline, "no replica took over"
            time.sleep(0.1)
        cluster.wait_ok(seconds=30, replicated=False)
        time.sleep(3)
    after = [r for r in sender.results if r[2] >= killed_at]
    unacked = [r for r in after if not r[1]]
    window = (max(r[3] for r in unacked) - killed_at) if unacked else 0.0
    print(f"failover window: {window:.2f} s ({len(unacked)} of {len(after)} answers without scans)")
    assert all(r[0] == 200 for r in sender.results), {r[0] for r in sender.results}
    assert unacked, "the kill met no verify"
    # After the window every answer carries its scans again (the last seconds of traffic).
    assert sender.results[-1][2] > killed_at + window + 1, "the traffic ended inside the window"
    assert window < 20
    # The killed node comes back from its AOF as a replica of its replica.
    cluster.start_node(victim)
    cluster.wait_ok(seconds=30)
    sql = container(app).scan_sql
    StreamWorker(
        make_redis(cluster.url, timeout_ms=5000), sql.write_events, sql.upsert_flag, consumer="f1"
    ).drain()
    lost, duplicates, unknown = _lost_and_duplicated(app, sender.results)
    assert (lost, duplicates, unknown) == (0, 0, 0)


def test_the_rate_limit_windows_are_counted_in_the_gates_round_trip_on_one_cluster(
    cluster: ClusterChild, fresh: RedisCluster, mysql_db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(limits, "CLIENT_LIMIT", "30/minute")
    settings = settings_for(mysql_db, cluster.url, rate_limits=True)  # the scan store too
    app = make_app(settings)
    demo = seed(container(app).admin, date.today())
    http = app.test_client()
    answers = [
        http.post("/api/v1/verify", json={"input": demo["genuine"], "client": "busy"}) for _ in range(31)
    ]
    assert [a.status_code for a in answers] == [200] * 30 + [429]
    assert 0 < int(answers[30].headers["Retry-After"]) <= 60
    assert answers[29].get_json()["scans"]["count"] == 30
    # Counted once each, by the scan store's gate: not again on their own.
    windows = [k for k in fresh.keys(target_nodes=RedisCluster.PRIMARIES) if b"LIMITER" in k]
    counts = sorted(int(fresh.get(k)) for k in windows)
    assert counts and counts[-1] == 31, counts
    # The refused request recorded nothing.
    tag = group_tag(slot_group(demo["genuine"]))
    assert int(fresh.hget(f"s:{tag}:{demo['genuine']}:h", "n")) == 30
