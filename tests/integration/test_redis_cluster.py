"""The cache tiers and the rate limits on a real Redis Cluster (three primaries started
here from the machine's redis-server), with the scan store on its own single server
(tests/integration/test_scan_store_cluster.py puts the scan store on a cluster)."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from datetime import date

import pytest
import redis as redis_lib
from redis.cluster import RedisCluster

from cache import keys
from cache.projection import (
    META,
    RedisProjection,
    bucket_key,
    buckets_for,
    group_tag,
    meta_value,
    place,
    slot_group,
)
from cache.redis_cache import make_redis
from domain.codes import CodeKind
from tests.conftest import ADMIN, make_app, settings_for
from tests.redis_server import ClusterChild
from verify_api import limits
from webapp import container
from webapp.demo import seed


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClusterChild]:
    nodes = ClusterChild(tmp_path_factory.mktemp("cluster"), primaries=3)
    try:
        nodes.start()
        yield nodes
    finally:
        nodes.stop()


def test_the_cache_tiers_and_limits_run_on_a_cluster(
    cluster: ClusterChild,
    mysql_db: str,
    redis_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(limits, "CLIENT_LIMIT", "30/minute")
    nodes_url = cluster.url  # every node named: any one may be down at start
    settings = settings_for(mysql_db, nodes_url, rate_limits=True).with_(scan_redis_url=redis_url)
    app = make_app(settings)
    demo = seed(container(app).admin, date.today())
    http = app.test_client()

    def verdict(code: str, client: str = "c1") -> str:
        resp = http.post("/api/v1/verify", json={"input": code, "client": client})
        assert resp.status_code == 200, resp.get_data(as_text=True)
        return str(resp.get_json()["verdict"])

    assert verdict(demo["genuine"]) == "genuine"
    assert verdict(demo["not_found"]) == "not_found"
    assert verdict(demo["genuine"]) == "genuine"

    nodes = RedisCluster.from_url("redis://" + cluster.nodes.split(",")[0])
    assert nodes.exists("v:bloom") and nodes.exists("v:bloom:meta")  # built at start
    # Every code is in the cluster's projection (bucket keys over every node's slots),
    # complete: codes are resolved from it, not from the record cache.
    every = nodes.keys(target_nodes=RedisCluster.ALL_NODES)
    assert nodes.exists(META) and sum(k.startswith(b"v:p:{g") for k in every) > 5
    record = f"{keys.PREFIX}c{keys.CODE_LAYOUT}.".encode()  # any generation's record
    assert not any(k.startswith(record) for k in every)
    # Bucket keys are named by slot group: a code's bucket lies in the slot of its scan
    # keys and of the stream its events go to, should the scan store share this cluster.
    assert nodes.get(META) == meta_value(buckets_for(100_000), grouped=True)
    code = demo["genuine"]
    bucket = place(code, CodeKind.ORGANIC, buckets_for(100_000))[0]
    assert nodes.hexists(
        bucket_key(bucket, grouped=True), place(code, CodeKind.ORGANIC, buckets_for(100_000))[1]
    )
    tag = group_tag(slot_group(code))
    slots = {
        nodes.keyslot(k) for k in (bucket_key(bucket, grouped=True), f"s:{tag}:{code}:h", f"s:{tag}:stream")
    }
    assert len(slots) == 1
    # Scan state went to the scan store's own server, not the cluster.
    assert redis_lib.Redis.from_url(redis_url).exists("s:stream")

    # A certificate's status change reaches the answer (generations read with one MGET).
    number = http.get(f"/api/v1/codes/{demo['genuine']}").get_json()["certificate"]["number"]
    assert (
        http.patch(
            f"/api/v1/admin/certificates/{number}", json={"status": "suspended"}, headers=ADMIN
        ).status_code
        == 200
    )
    deadline = time.monotonic() + 1
    while verdict(demo["genuine"]) != "certificate_suspended":
        assert time.monotonic() < deadline, "the status change did not arrive within 1 s"
        time.sleep(0.05)

    # A code loaded now is found at once: the filter's bits and meta are written together
    # (WATCH/MULTI on one hash tag) and the code's negative cache entry is dropped.
    yy = date.today().year % 100
    fresh = f"0123{yy:02d}555555555555"
    assert verdict(fresh) == "not_found"
    cert = http.get(f"/api/v1/codes/{demo['genuine (legacy 17-digit)']}").get_json()["certificate"]
    product = http.get(f"/api/v1/codes/{demo['genuine (legacy 17-digit)']}").get_json()["product"]["name"]
    loaded = http.post(
        "/api/v1/admin/codes",
        json=[{"code": fresh, "certificate": cert["number"], "product": product}],
        headers=ADMIN,
    )
    assert loaded.status_code == 200 and loaded.get_json()["accepted"] == 1, loaded.get_data(as_text=True)
    assert verdict(fresh) != "not_found"

    # The rate-limit counters live on the cluster too.
    statuses = [
        http.post("/api/v1/verify", json={"input": demo["genuine"], "client": "busy"}).status_code
        for _ in range(31)
    ]
    assert statuses[:30] == [200] * 30 and statuses[30] == 429
    ready = http.get("/readyz").get_json()
    assert ready["cache"] == "ok" and ready["scan_store"] == "ok"


def test_a_cluster_that_is_away_costs_the_cache_not_the_answer(
    cluster: ClusterChild, mysql_db: str, redis_url: str
) -> None:
    # Rate limits on: their counters live on the cluster as well, and must fail open too.
    settings = settings_for(mysql_db, cluster.url, rate_limits=True).with_(scan_redis_url=redis_url)
    demo = seed(container(make_app(settings)).admin, date.today())
    cluster.signal_all(signal.SIGSTOP)  # hung, not refusing: the worst case for timeouts
    try:
        started = time.monotonic()
        app = make_app(settings)  # a new worker starts without the cache …
        assert time.monotonic() - started < 10
        http = app.test_client()
        for _ in range(3):  # … and answers from the database
            resp = http.post("/api/v1/verify", json={"input": demo["genuine"]})
            assert resp.status_code == 200 and resp.get_json()["verdict"] == "genuine"
        ready = http.get("/readyz")
        assert ready.status_code == 200 and ready.get_json()["cache"] == "down"
    finally:
        cluster.signal_all(signal.SIGCONT)


def test_a_projection_written_under_one_server_names_is_rebuilt_under_the_clusters(
    cluster: ClusterChild,
) -> None:
    nodes = RedisCluster.from_url("redis://" + cluster.nodes.split(",")[0])
    nodes.flushall(target_nodes=RedisCluster.PRIMARIES)
    # As the release before wrote it on a cluster: a bucket per slot, its meta complete.
    nodes.hset("v:p:{5}", "123", "7")
    nodes.set(META, meta_value(1024))
    store = RedisProjection(make_redis(cluster.url, timeout_ms=5000), 1024)
    assert store.state() == "off"  # never read under the old names
    code = "012326000000000042"
    bucket, fld = place(code, CodeKind.ORGANIC, 1024)
    assert store.rebuild(lambda: iter([(code, CodeKind.ORGANIC, 9, None, None, None)])) == 1
    assert store.state() == "complete"
    assert not nodes.exists("v:p:{5}")  # the old names are dropped
    assert nodes.hget(bucket_key(bucket, grouped=True), fld) == b"9"
    assert store.get(code, CodeKind.ORGANIC) is not None
    assert store.get("012326000000000043", CodeKind.ORGANIC) is None  # a filled bucket's miss
