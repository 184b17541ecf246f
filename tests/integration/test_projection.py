"""The code projection (cache.projection) on MariaDB + Redis: every issued code resolved
from the key store without the database, written by imports and batches as they save,
rebuilt while verifies run, and set aside (the database answers) whenever it may lack a
saved code."""

from __future__ import annotations

import threading
import time
from datetime import date

import pytest
import redis as redis_lib
from flask import Flask

from cache.projection import (
    COMPLETE,
    DIRTY,
    LEGACY_META,
    META,
    MISSING,
    OFF,
    WRITES,
    WRITING,
    MemoryProjection,
    RedisProjection,
    buckets_for,
    decode,
    encode,
    place,
)
from domain import metrics
from domain.bulk import Scope
from domain.codes import CodeKind, normalize
from domain.errors import Unavailable
from tests.conftest import ADMIN
from webapp import container
from webapp.demo import seed
from webapp.wiring import rebuild_projection

ALL = Scope("all", None, None, "test")
CERT = f"0123OP{date.today().year % 100:02d}00017"
YY = f"{date.today().year % 100:02d}"


def _code(n: int) -> str:
    return f"0123{YY}{n:012d}"


def _world(app: Flask, n: int) -> list[str]:
    c = container(app)
    c.admin.upsert_bodies([{"code": "0123", "name": "Test body"}], ALL)
    c.admin.upsert_certificates(
        [
            {
                "number": CERT,
                "body_code": "0123",
                "holder": "示范农场",
                "valid_from": f"20{YY}-01-01",
                "valid_until": f"20{YY}-12-31",
                "products": [{"name": "有机大米"}],
            }
        ],
        ALL,
    )
    codes = [_code(i) for i in range(n)]
    rows = [
        {"code": code, "certificate": CERT, "product": "有机大米", "identity_code": f"id,{i}"}
        for i, code in enumerate(codes)
    ]
    result = c.admin.import_codes(rows, ALL, chunk=500)
    assert result.accepted == n
    return codes


def _verdict(app: Flask, code: str) -> str:
    resp = app.test_client().post("/api/v1/verify", json={"input": code})
    assert resp.status_code == 200, resp.get_json()
    return str(resp.get_json()["verdict"])


def _state(app: Flask) -> str | None:
    return container(app).projection.state()


def test_a_record_survives_its_encoding() -> None:
    organic = normalize(_code(5))
    assert organic.kind is CodeKind.ORGANIC
    value = encode(CodeKind.ORGANIC, 42, date(2026, 3, 1), "a,b\tc", None)
    rec = decode(organic.code, CodeKind.ORGANIC, value.encode())
    assert (rec.group_id, rec.issued_on, rec.identity_code) == (42, date(2026, 3, 1), "a,b\tc")
    assert (
        decode(organic.code, CodeKind.ORGANIC, encode(CodeKind.ORGANIC, 7, None, None, None)).issued_on
        is None
    )
    bq = decode("AbC123xyz", CodeKind.BQ, encode(CodeKind.BQ, 9, None, None, "b"))
    assert (bq.group_id, bq.bq_role) == (9, "b")
    # Two codes never share a place: the field and bucket together are the mixed key.
    buckets = buckets_for(1_000_000)
    places = {place(_code(i), CodeKind.ORGANIC, buckets) for i in range(20_000)}
    assert len(places) == 20_000


def test_imported_codes_are_resolved_from_the_projection_without_the_database(service_app: Flask) -> None:
    codes = _world(service_app, 1200)
    assert _state(service_app) == COMPLETE
    assert _verdict(service_app, codes[0]) == "genuine"  # the group's status is read once
    reads, projected = metrics.value("db_reads"), metrics.value("projection_reads")
    negatives = metrics.value("filter_negatives")
    for code in codes[1:50]:
        assert _verdict(service_app, code) == "genuine"
    for n in range(5000, 5020):  # never issued: told by the worker's filter, no round trip
        assert _verdict(service_app, _code(n)) == "not_found"
    assert metrics.value("db_reads") == reads
    assert metrics.value("projection_reads") - projected == 49
    assert metrics.value("filter_negatives") - negatives == 20
    # Without a filter (not built yet, another size): from the complete projection alone.
    container(service_app).resolver._filter = None
    for n in range(5020, 5040):
        assert _verdict(service_app, _code(n)) == "not_found"
    assert metrics.value("db_reads") == reads
    assert metrics.value("projection_reads") - projected == 69
    assert metrics.value("filter_negatives") - negatives == 20
    record = container(service_app).resolver.resolve(normalize(codes[7])).record
    assert record is not None and record.identity_code == "id,7"


def test_a_code_imported_or_moved_is_answered_at_once(service_app: Flask) -> None:
    _world(service_app, 1)
    demo = seed(container(service_app).admin, date.today())
    assert _state(service_app) == COMPLETE
    client = service_app.test_client()
    # An import over the JSON API: genuine on the next verify.
    new = _code(777)
    assert _verdict(service_app, new) == "not_found"
    resp = client.post(
        "/api/v1/admin/codes", headers=ADMIN, json=[{"code": new, "certificate": CERT, "product": "有机大米"}]
    )
    assert resp.status_code == 200, resp.get_json()
    assert _verdict(service_app, new) == "genuine"
    # A BQ batch's codes (written by `_changed` from the registry's rows), and the demo's
    # statuses, all from the projection (the copied code has no scans here).
    reads = metrics.value("projection_reads")
    for name, code in demo.items():
        expected = name.split(" ")[0]
        if expected != "suspicious" and not expected.startswith("invalid_format"):
            assert _verdict(service_app, code) == expected, name
    assert metrics.value("projection_reads") > reads
    assert _state(service_app) == COMPLETE


def test_a_rebuild_under_live_traffic_answers_every_code_right(service_app: Flask, redis_url: str) -> None:
    codes = _world(service_app, 3000)
    client = redis_lib.Redis.from_url(redis_url)
    # Redis lost the projection (a flush, a new server): off, then rebuilt while serving.
    for key in client.scan_iter(match="v:p:*"):
        client.delete(key)
    container(service_app).resolver.refresh(force=True)
    assert _state(service_app) == OFF

    wrong: list[tuple[str, str]] = []
    stop = threading.Event()

    def traffic() -> None:
        i = 0
        while not stop.is_set():
            code = codes[i % len(codes)]
            verdict = _verdict(service_app, code)
            if verdict != "genuine":
                wrong.append((code, verdict))
            if _verdict(service_app, _code(90_000 + i % 50)) != "not_found":
                wrong.append((code, "guess found"))
            i += 1

    thread = threading.Thread(target=traffic)
    thread.start()
    try:
        n = rebuild_projection(container(service_app).settings)
    finally:
        time.sleep(0.3)  # answers after the rebuild, from the projection
        stop.set()
        thread.join()
    assert n == 3000
    assert wrong == []
    assert _state(service_app) == COMPLETE


def test_a_writer_whose_mark_lapses_turns_the_projection_off_until_rebuilt(
    service_app: Flask, redis_url: str
) -> None:
    codes = _world(service_app, 10)
    client = redis_lib.Redis.from_url(redis_url)
    store = RedisProjection(client, buckets_for(container(service_app).settings.expected_codes))
    token = store.begin(ttl_s=30)
    assert store.state() == WRITING
    client.zadd(DIRTY, {token: 1})  # its writer died long ago: the deadline has passed
    assert store.state() == OFF
    # Off: answers come from the database, hits too (the dead writer may have moved codes).
    container(service_app).resolver.refresh(force=True)
    reads = metrics.value("db_reads")
    assert _verdict(service_app, codes[3]) == "genuine"
    assert metrics.value("db_reads") > reads
    assert rebuild_projection(container(service_app).settings) == 10
    assert store.state() == COMPLETE and client.zcard(DIRTY) == 0


def test_a_writer_alive_after_its_mark_was_swept_marks_itself_again(
    service_app: Flask, redis_url: str
) -> None:
    """A writer that stalled past its mark's life is taken for dead; a rebuild then sweeps
    its mark and calls the projection complete. When it goes on to save more, its mark
    comes back first, so misses go to the database until it ends (its new codes are saved
    before they are projected)."""
    _world(service_app, 3)
    client = redis_lib.Redis.from_url(redis_url)
    store = RedisProjection(client, buckets_for(container(service_app).settings.expected_codes))
    token = store.begin(ttl_s=30)
    client.zadd(DIRTY, {token: 1})  # it stalled: the deadline passed
    assert rebuild_projection(container(service_app).settings) == 3
    assert store.state() == COMPLETE and client.zcard(DIRTY) == 0
    store.renew()  # before its next save
    assert store.state() == WRITING
    store.end(token)
    assert store.state() == COMPLETE
    store.renew()  # nothing of this process's in flight: nothing comes back
    assert client.zcard(DIRTY) == 0


def test_a_mark_left_to_lapse_is_never_renewed_by_a_later_writer_of_the_process(
    service_app: Flask, redis_url: str
) -> None:
    """A writer whose records could not be written leaves its mark to lapse (off until
    rebuilt). Another writer of the same process renewing its own must neither keep that
    mark alive nor bring it back after a rebuild swept it."""
    _world(service_app, 3)
    client = redis_lib.Redis.from_url(redis_url)
    store = RedisProjection(client, buckets_for(container(service_app).settings.expected_codes))
    failed = store.begin(ttl_s=30)
    store.abandon(failed)
    client.zadd(DIRTY, {failed: 1})  # it lapsed
    store.renew()  # nothing live: the lapsed mark keeps its deadline
    assert store.state() == OFF and client.zscore(DIRTY, failed) == 1
    assert rebuild_projection(container(service_app).settings) == 3
    later = store.begin(ttl_s=30)
    store.renew()
    assert client.zrange(DIRTY, 0, -1) == [later.encode()]
    store.end(later)
    assert store.state() == COMPLETE


def test_an_import_refused_at_its_start_leaves_no_projection_mark_behind(
    service_app: Flask, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An import whose start cannot move the generations saves nothing; it must not leave
    a projection mark that its process renews for good (the projection would be WRITING,
    every miss asked of the database, and OFF at the next lapse)."""
    codes = _world(service_app, 3)
    admin = container(service_app).admin
    client = redis_lib.Redis.from_url(redis_url)

    bump = admin.generations.bump
    calls: list[tuple[str, ...]] = []

    def down_at_the_start(*names: str) -> None:
        calls.append(names)
        if len(calls) == 1:
            raise redis_lib.ConnectionError("generations unavailable")
        bump(*names)

    monkeypatch.setattr(admin.generations, "bump", down_at_the_start)
    more = [{"code": _code(9), "certificate": CERT, "product": "有机大米"}]
    with pytest.raises(Unavailable) as refused:
        admin.import_codes(more, ALL)
    assert refused.value.code == "cache_unavailable"
    assert client.zcard(DIRTY) == 0 and _state(service_app) == COMPLETE
    admin.projection.renew()  # as the process's next writer does before its first save
    assert client.zcard(DIRTY) == 0
    monkeypatch.undo()
    assert _verdict(service_app, codes[1]) == "genuine"
    assert _verdict(service_app, _code(9)) == "not_found"


def test_a_projection_of_another_size_is_not_used(service_app: Flask, redis_url: str) -> None:
    _world(service_app, 5)
    client = redis_lib.Redis.from_url(redis_url)
    client.set(META, 8)
    assert _state(service_app) == OFF


def test_a_projection_of_the_layout_before_bucket_markers_is_rebuilt(
    service_app: Flask, redis_url: str
) -> None:
    codes = _world(service_app, 5)
    client = redis_lib.Redis.from_url(redis_url)
    store = container(service_app).projection
    assert isinstance(store, RedisProjection)
    # The release before markers: its meta (the bucket count alone) under its own name.
    client.delete(META)
    client.set(LEGACY_META, store.buckets)
    assert _state(service_app) == OFF
    assert store.lost()  # a serving worker rebuilds it
    assert rebuild_projection(container(service_app).settings) == 5
    assert _state(service_app) == COMPLETE
    assert client.get(META) == f"2:{store.buckets}".encode()
    # That release, still running beside this one (or rolled back to), reads its own meta
    # as an integer and never this layout's value.
    assert int(client.get(LEGACY_META)) == store.buckets
    assert _verdict(service_app, codes[0]) == "genuine"


def test_a_rebuild_during_which_redis_loses_its_data_is_not_called_complete(
    service_app: Flask, redis_url: str
) -> None:
    codes = _world(service_app, 40)
    client = redis_lib.Redis.from_url(redis_url)
    store = RedisProjection(client, container(service_app).projection.buckets)
    # As right after an earlier restart: no writer has counted (WRITES is absent before and
    # after the pass, so the writers' count cannot tell the rebuild its writes were lost).
    client.delete(META, WRITES)
    lost = []

    def restart_after_the_writes(n: int, _s: float) -> None:
        if not lost:
            lost.append(n)
            client.flushdb()  # Redis restarted empty after the rebuild wrote its codes

    rows = container(service_app).registry.iter_records
    assert store.rebuild(rows, restart_after_the_writes) == 40
    assert lost and store.state() == OFF
    # No bucket claims to hold its codes: a miss is never "never issued".
    assert {store.get(code, CodeKind.ORGANIC) is MISSING for code in codes} == {True}
    assert store.rebuild(rows) == 40 and store.state() == COMPLETE
    assert {store.get(code, CodeKind.ORGANIC).group_id > 0 for code in codes} == {True}


def test_a_serving_worker_rebuilds_only_a_projection_that_was_lost(
    service_app: Flask, redis_url: str
) -> None:
    _world(service_app, 5)
    client = redis_lib.Redis.from_url(redis_url)
    store = container(service_app).projection
    assert isinstance(store, RedisProjection)
    assert not store.lost()  # complete
    client.set(META, f"2:{store.buckets * 2}")  # a release beside this one sized otherwise
    assert store.state() == OFF and not store.lost()  # not this worker's to drop and rebuild
    client.delete(META)  # Redis lost it
    assert store.lost()
    live = store.begin(ttl_s=30)  # but a writer is saving: a rebuild could not complete
    assert not store.lost()
    store.end(live)
    client.zadd(DIRTY, {"dead-writer": 1})
    client.set(META, f"2:{store.buckets}")
    assert store.state() == OFF and store.lost()  # a writer died after saving


def test_a_worker_that_saw_the_projection_complete_asks_the_database_after_redis_lost_it(
    service_app: Flask, redis_url: str
) -> None:
    """Redis restarted empty: until the worker's next refresh it still believes the
    projection complete, and a genuine code missing from its emptied bucket must not be
    answered "never issued" (the bucket's marker went with it)."""
    codes = _world(service_app, 20)
    c = container(service_app)
    assert _state(service_app) == COMPLETE
    c.resolver.refresh(force=True)
    c.resolver.refresh_s = 3600.0  # no refresh during the test: the worker keeps "complete"
    redis_lib.Redis.from_url(redis_url).flushdb()
    c.resolver.records.clear()
    before = metrics.snapshot().get("projection_unfilled_buckets", 0)
    for code in codes[:5]:
        assert _verdict(service_app, code) == "genuine"
    assert metrics.snapshot().get("projection_unfilled_buckets", 0) >= before + 5


def test_a_serving_worker_rebuilds_a_projection_redis_lost_without_a_restart(
    service_app: Flask, redis_url: str
) -> None:
    codes = _world(service_app, 30)
    c = container(service_app)
    c.warm()  # what gunicorn's post_worker_init does: this process serves
    assert _state(service_app) == COMPLETE
    redis_lib.Redis.from_url(redis_url).flushdb()  # Redis came back empty
    c.resolver.refresh(force=True)  # the worker's next look: off, so it starts a rebuild
    deadline = time.monotonic() + 30
    while _state(service_app) != COMPLETE and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _state(service_app) == COMPLETE
    c.resolver.refresh(force=True)
    c.resolver.records.clear()
    reads = metrics.snapshot().get("projection_reads", 0)
    assert [_verdict(service_app, code) for code in codes[:3]] == ["genuine"] * 3
    assert _verdict(service_app, _code(99_999)) == "not_found"
    assert metrics.snapshot().get("projection_reads", 0) == reads + 4


def test_redis_away_answers_from_the_database(service_app: Flask) -> None:
    codes = _world(service_app, 20)
    c = container(service_app)
    dead = RedisProjection(redis_lib.Redis(port=1, socket_connect_timeout=0.05), 1024)
    c.resolver.projection = dead
    c.resolver.records.clear()
    c.resolver.refresh(force=True)
    assert dead.state() is None
    for code in codes[:5]:
        assert _verdict(service_app, code) == "genuine"
    assert _verdict(service_app, _code(99_999)) == "not_found"


def test_the_embedded_projection_is_built_at_start_and_written_by_imports(embedded_app: Flask) -> None:
    codes = _world(embedded_app, 30)
    projection = container(embedded_app).projection
    assert isinstance(projection, MemoryProjection)
    assert projection.state() == COMPLETE
    assert len(projection.data) == 30
    assert _verdict(embedded_app, codes[4]) == "genuine"


def test_an_empty_registry_starts_complete(service_app: Flask) -> None:
    assert _state(service_app) == COMPLETE


def test_an_import_chunk_and_a_rebuild_write_the_same_places(redis_url: str) -> None:
    client = redis_lib.Redis.from_url(redis_url)
    store = RedisProjection(client, 1024)
    codes = [_code(i * 7919) for i in range(3000)]
    store.write_keys([(int(code), 3, date(2026, 2, 1), None) for code in codes])
    assert {store.get(code, CodeKind.ORGANIC).group_id for code in codes} == {3}
    store.write([(code, CodeKind.ORGANIC, 4, None, "x", None) for code in codes])
    assert {store.get(code, CodeKind.ORGANIC).identity_code for code in codes} == {"x"}
    assert client.hlen("v:p:{0}") == sum(place(c, CodeKind.ORGANIC, 1024)[0] == 0 for c in codes)
    # Written by writers only, no bucket is known to hold all its codes: a miss cannot tell.
    assert store.get(_code(1), CodeKind.ORGANIC) is MISSING
    assert store.rebuild(lambda: iter(())) == 0  # a registry of no codes: every bucket is filled
    assert store.get(_code(1), CodeKind.ORGANIC) is None
    assert store.get(codes[0], CodeKind.ORGANIC).identity_code == "x"


def test_a_web_worker_that_starts_with_the_projection_off_rebuilds_it(
    service_app: Flask, redis_url: str
) -> None:
    codes = _world(service_app, 40)
    client = redis_lib.Redis.from_url(redis_url)
    for key in client.scan_iter(match="v:p:*"):
        client.delete(key)
    c = container(service_app)
    thread = c.ensure_projection()
    assert thread is not None
    thread.join(timeout=60)
    assert _state(service_app) == COMPLETE and c.ensure_projection() is None
    c.resolver.refresh(force=True)
    assert _verdict(service_app, codes[39]) == "genuine"


def test_a_rebuild_that_a_writer_overlaps_goes_again_and_keeps_the_newer_record(redis_url: str) -> None:
    # The rebuild writes from a snapshot read at its start: a writer that projects a newer
    # record meanwhile (a printing loss moving a code to the voided group) must not be
    # overwritten by the snapshot's older one in a projection then called complete.
    client = redis_lib.Redis.from_url(redis_url)
    store = RedisProjection(client, 1024)
    code = _code(4242)
    registry = {code: 1}  # what the database holds: group 1, then 2
    passes = {"n": 0}

    def rows():  # the registry's rows as of this pass's start
        snapshot = dict(registry)
        passes["n"] += 1
        if passes["n"] == 1:
            # A writer saves and projects the newer record while the first pass reads.
            registry[code] = 2
            RedisProjection(client, 1024).write([(code, CodeKind.ORGANIC, 2, None, None, None)])
        yield from ((c, CodeKind.ORGANIC, g, None, None, None) for c, g in snapshot.items())

    assert store.rebuild(rows) == 1
    assert passes["n"] == 2
    assert store.get(code, CodeKind.ORGANIC).group_id == 2
    assert store.state() == COMPLETE


def test_a_rebuild_that_writers_never_leave_alone_is_not_called_complete(redis_url: str) -> None:
    client = redis_lib.Redis.from_url(redis_url)
    store = RedisProjection(client, 1024)

    def rows():
        RedisProjection(client, 1024).write([(_code(7), CodeKind.ORGANIC, 5, None, None, None)])
        yield (_code(7), CodeKind.ORGANIC, 4, None, None, None)

    store.rebuild(rows)
    assert store.state() == OFF


def test_the_embedded_projection_sees_codes_another_process_imported(embedded_app: Flask) -> None:
    # `flask import-codes` beside the served app writes the database and the codes
    # generation, not this process's dict: the dict is built again when the generation moves.
    _world(embedded_app, 3)
    c = container(embedded_app)
    projection = c.projection
    assert isinstance(projection, MemoryProjection)
    new = _code(900_001)
    rows = [{"code": new, "certificate": CERT, "product": "有机大米"}]
    assert c.admin.import_codes(rows, ALL).accepted == 1
    c.resolver.refresh(force=True)
    # As another process's import leaves it: the database holds the code, this dict does
    # not, and the codes generation moves.
    del projection.data[new]
    c.generations.bump("codes")
    c.resolver.refresh(force=True)
    assert new in projection.data
    assert _verdict(embedded_app, new) == "genuine"


def test_a_second_failure_with_its_own_cause_still_says_the_first_chunk_was_not_projected() -> None:
    from services.admin import ProjectionUnwritten, _unprojected

    def second_failure() -> None:
        try:
            raise ProjectionUnwritten("chunk k-1 not projected")
        except ProjectionUnwritten:
            try:
                raise OSError("driver: connection lost")
            except OSError as driver:
                raise RuntimeError("chunk k failed") from driver

    try:
        second_failure()
    except RuntimeError as exc:
        assert exc.__cause__ is not None  # the cause link alone never reaches the first
        assert _unprojected(exc)
    assert not _unprojected(RuntimeError("nothing of the projection"))
