"""The tiered record cache against real MariaDB and Redis: stampedes, the filter of issued
codes, and outages of either store."""

from __future__ import annotations

import random
import threading
from datetime import date
from typing import Any

import pytest
import redis as redis_lib
from flask import Flask

from cache.bloom import BloomFilter
from cache.records import RecordResolver
from cache.redis_cache import DirectCalls, RedisFilterStore, RedisGenerations, RedisSharedCache, make_redis
from domain import metrics
from domain.codes import normalize
from domain.records import LabelGroup
from registry.engine import make_engine
from registry.store import SqlRegistry
from tests.conftest import make_app, settings_for
from webapp import container
from webapp.demo import seed


class CountingRegistry:
    """The real registry, counting the code lookups that reach the database."""

    def __init__(self, inner: SqlRegistry) -> None:
        self.inner = inner
        self.code_reads = 0
        self._lock = threading.Lock()

    def find_code(self, code, kind):  # type: ignore[no-untyped-def]
        with self._lock:
            self.code_reads += 1
        return self.inner.find_code(code, kind)

    def __getattr__(self, name: str):  # type: ignore[no-untyped-def]
        return getattr(self.inner, name)


def verify(app: Flask, code: str) -> tuple[int, dict]:
    resp = app.test_client().post("/api/v1/verify", json={"input": code})
    return resp.status_code, resp.get_json()


@pytest.fixture
def seeded(service_app: Flask) -> tuple[Flask, dict[str, str]]:
    return service_app, seed(container(service_app).admin, date.today())


def _resolver(app: Flask, redis_url: str, **options: Any) -> tuple[RecordResolver, CountingRegistry]:
    c = container(app)
    registry = CountingRegistry(c.registry)
    client = make_redis(redis_url, timeout_ms=500)
    m_bits, k = BloomFilter.sized_for(100_000)
    return RecordResolver(
        registry,
        RedisSharedCache(client),
        RedisGenerations(client),  # type: ignore[arg-type]
        RedisFilterStore(client, m_bits, k),
        **options,
    ), registry


def test_many_workers_missing_one_key_at_once_refill_it_once(
    seeded: tuple[Flask, dict], redis_url: str
) -> None:
    app, demo = seeded
    # Waiters give the refilling worker far longer than it needs, however loaded the
    # machine: what is tested is that they wait for it, not how fast it is.
    resolvers = [_resolver(app, redis_url, lock_ms=30_000, wait_for_refill_s=30.0) for _ in range(8)]
    parsed = normalize(demo["genuine"])
    barrier = threading.Barrier(len(resolvers))
    results = []

    def work(resolver: RecordResolver) -> None:
        barrier.wait()
        results.append(resolver.resolve(parsed).record)

    threads = [threading.Thread(target=work, args=(r,)) for r, _ in resolvers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(r is not None and r.code == demo["genuine"] for r in results)
    assert sum(reg.code_reads for _, reg in resolvers) == 1


def test_never_issued_codes_are_answered_by_the_filter_not_the_database(
    seeded: tuple[Flask, dict], redis_url: str
) -> None:
    app, _ = seeded
    resolver, registry = _resolver(app, redis_url)
    rng = random.Random(7)
    n = 2000
    for _ in range(n):
        resolver.resolve(normalize(f"0123{date.today().year % 100:02d}{rng.randrange(10**12):012d}"))
    assert registry.code_reads <= n * 0.05


def test_redis_down_answers_from_the_database_and_counts_it(mysql_db: str) -> None:
    app = make_app(settings_for(mysql_db, "redis://127.0.0.1:1/0"))
    before = metrics.value("redis_errors")
    # Seeding bumps generations in Redis, which is down: the admin call says so (503) ...
    resp = app.test_client().post(
        "/api/v1/admin/bodies",
        headers={"Authorization": "Bearer test-bootstrap-token"},
        json=[{"code": "0123", "name": "b"}],
    )
    assert resp.status_code == 503 and resp.headers["Retry-After"]
    # ... but the write landed, and verify answers from the database without a 5xx.
    status, body = verify(app, "012326000000000001")
    assert status == 200 and body["verdict"] == "not_found"
    status, body = verify(app, "777726000000000001")
    assert status == 200 and body["verdict"] == "invalid_format"
    assert metrics.value("redis_errors") > before
    ready = app.test_client().get("/readyz").get_json()
    assert ready["cache"] == "down" and ready["status"] == "degraded"


def test_database_down_still_answers_cached_codes_and_503s_the_rest(seeded: tuple[Flask, dict]) -> None:
    app, demo = seeded
    c = container(app)
    assert verify(app, demo["genuine"])[1]["verdict"] == "genuine"  # now in the caches
    c.registry.engine = c.registry.lookup_engine = make_engine("mysql+pymysql://root@127.0.0.1:1/none")
    c.resolver.records.clear()  # a fresh worker: only Redis has it
    c.resolver.status.clear()
    status, body = verify(app, demo["genuine"])
    assert status == 200 and body["verdict"] == "genuine"
    status, body = verify(app, demo["certificate_revoked"])  # issued, never looked up: needs the database
    assert status == 503
    assert body["code"] == "database_unavailable"
    assert (
        app.test_client()
        .post("/api/v1/verify", json={"input": demo["certificate_revoked"]})
        .headers["Retry-After"]
    )
    ready = app.test_client().get("/readyz").get_json()
    assert ready["database"] == "down"


def test_a_writer_pool_waits_for_a_connection_the_verify_pool_does_not(redis_url: str) -> None:
    """Twelve admin writes at once through a pool of one: each waits its turn (the
    grain-cap test once saw 503s here); the verify path's pool fails at once instead."""
    writer = make_redis(redis_url, timeout_ms=5000, max_connections=1, pool_wait_s=10.0)
    errors: list[BaseException] = []

    def write(i: int) -> None:
        try:
            # BLPOP on an empty list holds the connection for its whole timeout.
            writer.blpop([f"test:pool:{i}"], timeout=0.05)
            writer.set(f"test:pool:{i}", i)
        except BaseException as exc:  # collected, asserted below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(i,)) for i in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sorted(int(v) for v in writer.mget([f"test:pool:{i}" for i in range(12)])) == list(range(12))

    verify = make_redis(redis_url, timeout_ms=5000, max_connections=1)
    held = verify.connection_pool.get_connection()
    try:
        with pytest.raises(redis_lib.ConnectionError):
            verify.ping()
    finally:
        verify.connection_pool.release(held)


def test_the_verify_paths_kept_connection_survives_the_server_closing_it(redis_url: str) -> None:
    """DirectCalls keeps a connection per thread: one the server closed (a restart, CLIENT
    KILL, its idle timeout) is opened again on the next call, as redis-py's pool does at
    checkout, rather than failing a verify's scan (and opening the scan store's breaker)."""
    client = redis_lib.Redis.from_url(redis_url)
    direct = DirectCalls(client)
    script = direct.script("return redis.call('INCR', KEYS[1])")
    assert script(keys=["direct:n"]) == 1
    client.execute_command("CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes")
    assert script(keys=["direct:n"]) == 2
    client.script_flush()  # a Redis that forgot its scripts: loaded again
    assert script(keys=["direct:n"]) == 3
    assert direct.execute("GET", "direct:n") == b"3"


def test_a_status_read_overtaken_by_a_status_change_is_not_kept(service_app: Flask, redis_url: str) -> None:
    """A read that began before another thread's refresh cleared the status tier (a status
    change) answers its own request but is not kept: it may hold the old status, which
    would then outlive the change in this worker and in the verdict facts it writes."""
    resolver, _ = _resolver(service_app, redis_url)
    resolver.refresh(force=True)

    def overtaken() -> None:
        resolver.status.clear()  # as a refresh that saw a new status generation does
        return None

    assert resolver._status_item("group", 424242, overtaken, LabelGroup) is None
    assert ("group", 424242) not in resolver.status.data
    assert resolver._status_item("group", 434343, lambda: None, LabelGroup) is None
    assert ("group", 434343) in resolver.status.data
