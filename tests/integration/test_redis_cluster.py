"""The cache tiers and the rate limits on a real Redis Cluster (three primaries started
here from the machine's redis-server), with the scan store on its own single server."""

from __future__ import annotations

import random
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
import redis as redis_lib
from redis.cluster import RedisCluster

from tests.conftest import ADMIN, REQUIRED, make_app, settings_for
from verify_api import limits
from webapp import container
from webapp.demo import seed
from webapp.settings import SettingsError


def _free_ports(n: int) -> list[int]:
    """n distinct ports whose cluster bus ports (+10000) are free too, all below 55536."""
    rng = random.Random()
    ports: list[int] = []
    while len(ports) < n:
        port = rng.randrange(20_000, 45_000)
        taken = {q for p in ports for q in (p, p + 10_000)}
        if {port, port + 10_000} & taken:
            continue
        try:
            for p in (port, port + 10_000):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", p))
        except OSError:
            continue
        ports.append(port)
    return ports


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, list[subprocess.Popen]]]:
    server, cli = shutil.which("redis-server"), shutil.which("redis-cli")
    if not server or not cli:
        if REQUIRED:
            pytest.fail("redis-server/redis-cli are needed for the cluster tests and REQUIRE_SERVICES=1")
        pytest.skip("redis-server is not installed")
    root: Path = tmp_path_factory.mktemp("cluster")
    ports = _free_ports(3)
    nodes: list[subprocess.Popen] = []
    try:
        for port in ports:
            node = root / str(port)
            node.mkdir()
            # In the foreground, as children: a failed bind shows, and nothing outlives the test.
            nodes.append(
                subprocess.Popen(
                    [
                        server,
                        "--port",
                        str(port),
                        "--bind",
                        "127.0.0.1",
                        "--cluster-enabled",
                        "yes",
                        "--cluster-config-file",
                        str(node / "nodes.conf"),
                        "--dir",
                        str(node),
                        "--save",
                        "",
                        "--appendonly",
                        "no",
                        "--cluster-node-timeout",
                        "2000",
                        "--logfile",
                        str(node / "log"),
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
        for port, proc in zip(ports, nodes, strict=True):
            _wait(lambda p=port: redis_lib.Redis(port=p, socket_timeout=1).ping(), proc)
        subprocess.run(
            [cli, "--cluster", "create", *(f"127.0.0.1:{p}" for p in ports), "--cluster-replicas", "0",
             "--cluster-yes"],
            check=True, capture_output=True, timeout=60,
        )  # fmt: skip
        for port, proc in zip(ports, nodes, strict=True):
            _wait(
                lambda p=port: (
                    redis_lib.Redis(port=p).execute_command("CLUSTER INFO")["cluster_state"] == "ok"
                ),
                proc,
            )
        yield ",".join(f"127.0.0.1:{p}" for p in ports), nodes
    finally:
        for proc in nodes:
            proc.kill()
            proc.wait(timeout=10)


def _wait(ready, proc: subprocess.Popen, seconds: float = 20) -> None:  # type: ignore[no-untyped-def]
    end = time.monotonic() + seconds
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"a cluster node exited with {proc.returncode}")
        try:
            if ready():
                return
        except redis_lib.RedisError:
            pass
        if time.monotonic() > end:
            raise TimeoutError("the Redis Cluster did not come up")
        time.sleep(0.1)


def test_the_cache_tiers_and_limits_run_on_a_cluster(
    cluster: tuple[str, list[subprocess.Popen]],
    mysql_db: str,
    redis_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(limits, "CLIENT_LIMIT", "30/minute")
    nodes_url = f"redis+cluster://{cluster[0]}"  # every node named: any one may be down at start
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

    nodes = RedisCluster.from_url("redis://" + cluster[0].split(",")[0])
    assert nodes.exists("v:bloom") and nodes.exists("v:bloom:meta")  # built at start
    # Every code is in the cluster's projection (bucket keys over every node's slots),
    # complete: codes are resolved from it, not from the record cache.
    every = nodes.keys(target_nodes=RedisCluster.ALL_NODES)
    assert nodes.exists("v:p:meta") and sum(k.startswith(b"v:p:{") for k in every) > 5
    assert not any(k.startswith(b"v:c:") for k in every)
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
    cluster: tuple[str, list[subprocess.Popen]], mysql_db: str, redis_url: str
) -> None:
    # Rate limits on: their counters live on the cluster as well, and must fail open too.
    settings = settings_for(mysql_db, f"redis+cluster://{cluster[0]}", rate_limits=True).with_(
        scan_redis_url=redis_url
    )
    demo = seed(container(make_app(settings)).admin, date.today())
    nodes = cluster[1]
    for proc in nodes:
        proc.send_signal(signal.SIGSTOP)  # hung, not refusing: the worst case for timeouts
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
        for proc in nodes:
            proc.send_signal(signal.SIGCONT)


def test_the_scan_store_is_never_put_on_a_cluster(cluster: tuple[str, list], mysql_db: str) -> None:
    with pytest.raises(SettingsError, match="SCAN_REDIS_URL"):
        make_app(settings_for(mysql_db, f"redis+cluster://{cluster[0]}"))
