"""The cache tiers and the rate limits on a real Redis Cluster (three primaries started
here from the machine's redis-server), with the scan store on its own single server."""

from __future__ import annotations

import contextlib
import random
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
import redis as redis_lib
from redis.cluster import RedisCluster

from services.demo import seed
from tests.conftest import ADMIN, REQUIRED, settings_for
from verify_api import limits
from verify_api.app import container, create_app
from verify_api.settings import SettingsError


def _free_port() -> int:
    """A port whose cluster bus port (+10000) is free too, so below 55536."""
    rng = random.Random()
    while True:
        port = rng.randrange(20_000, 45_000)
        try:
            for p in (port, port + 10_000):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", p))
        except OSError:
            continue
        return port


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    server, cli = shutil.which("redis-server"), shutil.which("redis-cli")
    if not server or not cli:
        if REQUIRED:
            pytest.fail("redis-server/redis-cli are needed for the cluster tests and REQUIRE_SERVICES=1")
        pytest.skip("redis-server is not installed")
    root: Path = tmp_path_factory.mktemp("cluster")
    ports = [_free_port() for _ in range(3)]
    for port in ports:
        node = root / str(port)
        node.mkdir()
        subprocess.run(
            [server, "--port", str(port), "--bind", "127.0.0.1", "--cluster-enabled", "yes",
             "--cluster-config-file", str(node / "nodes.conf"), "--dir", str(node), "--save", "",
             "--appendonly", "no", "--daemonize", "yes", "--logfile", str(node / "log")],
            check=True,
        )  # fmt: skip
    try:
        for port in ports:
            _wait(lambda p=port: redis_lib.Redis(port=p, socket_timeout=1).ping())
        subprocess.run(
            [cli, "--cluster", "create", *(f"127.0.0.1:{p}" for p in ports), "--cluster-replicas", "0",
             "--cluster-yes"],
            check=True, capture_output=True, timeout=60,
        )  # fmt: skip
        for port in ports:
            _wait(
                lambda p=port: (
                    redis_lib.Redis(port=p).execute_command("CLUSTER INFO")["cluster_state"] == "ok"
                )
            )
        yield f"redis+cluster://127.0.0.1:{ports[0]}"
    finally:
        for port in ports:
            with contextlib.suppress(redis_lib.RedisError):  # shutdown drops the connection
                redis_lib.Redis(port=port, socket_timeout=1).shutdown(nosave=True)


def _wait(ready, seconds: float = 20) -> None:  # type: ignore[no-untyped-def]
    end = time.monotonic() + seconds
    while True:
        try:
            if ready():
                return
        except redis_lib.RedisError:
            pass
        if time.monotonic() > end:
            raise TimeoutError("the Redis Cluster did not come up")
        time.sleep(0.1)


def test_the_cache_tiers_and_limits_run_on_a_cluster(
    cluster: str, mysql_db: str, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(limits, "CLIENT_LIMIT", "30/minute")
    settings = settings_for(mysql_db, cluster, rate_limits=True).with_(scan_redis_url=redis_url)
    app = create_app(settings)
    demo = seed(container(app).admin, date.today())
    http = app.test_client()

    def verdict(code: str, client: str = "c1") -> str:
        resp = http.post("/api/v1/verify", json={"input": code, "client": client})
        assert resp.status_code == 200, resp.get_data(as_text=True)
        return str(resp.get_json()["verdict"])

    assert verdict(demo["genuine"]) == "genuine"
    assert verdict(demo["not_found"]) == "not_found"
    assert verdict(demo["genuine"]) == "genuine"  # now from the cluster's record cache

    nodes = RedisCluster.from_url("redis://" + cluster.split("://", 1)[1])
    assert nodes.exists("v:{bloom}", "v:{bloom}:meta") == 2  # built at start, on one slot
    assert any(k.startswith(b"v:c:") for k in nodes.keys(target_nodes=RedisCluster.ALL_NODES))
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

    # Flask-Limiter's counters live on the cluster too.
    statuses = [
        http.post("/api/v1/verify", json={"input": demo["genuine"], "client": "busy"}).status_code
        for _ in range(31)
    ]
    assert statuses[:30] == [200] * 30 and statuses[30] == 429
    assert http.get("/readyz").get_json()["cache"] == "ok"


def test_the_scan_store_is_never_put_on_a_cluster(cluster: str, mysql_db: str) -> None:
    with pytest.raises(SettingsError, match="SCAN_REDIS_URL"):
        create_app(settings_for(mysql_db, cluster))
