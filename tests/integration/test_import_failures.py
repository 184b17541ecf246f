"""Imports whose Redis fails part way (issue 14, item 5), on MariaDB and a Redis server of
the test's own (started here as a child; the shared server is never stopped): the answer
says exactly what landed, and every saved code verifies `genuine` at once, while Redis is
away and after it is back, never `not_found`."""

from __future__ import annotations

import csv
import io
import threading
import time
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
import sqlalchemy as sa
from flask import Flask
from werkzeug.datastructures import FileStorage
from werkzeug.test import encode_multipart

from domain.bulk import Scope
from domain.codes import normalize
from services.admin import ImportStopped
from tests.conftest import ADMIN, make_app, settings_for
from tests.redis_server import RedisChild
from webapp import container

YY = f"{date.today().year % 100:02d}"
CERT = f"0123OP{YY}00017"
ALL = Scope("all", None, None, "test")


def _code(n: int) -> str:
    return f"0123{YY}{n:012d}"


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisChild]:
    server = RedisChild(tmp_path, "the import failure tests")
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def app(mysql_db: str, own_redis: RedisChild) -> Flask:
    app = make_app(settings_for(mysql_db, own_redis.url))
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
    return app


def saved_codes(app: Flask) -> list[int]:
    with container(app).registry.engine.connect() as conn:
        return [row[0] for row in conn.execute(sa.text("SELECT code FROM organic_codes ORDER BY code"))]


def verdicts(app: Flask, codes: list[str]) -> set[str]:
    client = app.test_client()
    return {client.post("/api/v1/verify", json={"input": code}).get_json()["verdict"] for code in codes}


def test_an_upload_whose_redis_dies_says_what_landed_and_every_saved_code_verifies(
    app: Flask, own_redis: RedisChild, mysql_db: str
) -> None:
    total = 60_000  # twelve chunks of 5,000: Redis dies after the first lands
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["code", "certificate", "product"])
    for n in range(total):
        w.writerow([_code(n), CERT, "有机大米"])

    # Watches the table from outside and kills Redis once the first chunk is saved.
    engine = sa.create_engine(mysql_db)
    stop = threading.Event()

    def kill_after_first_chunk() -> None:
        with engine.connect() as conn:
            while not stop.is_set():
                if conn.execute(sa.text("SELECT COUNT(*) FROM organic_codes")).scalar_one() >= 5000:
                    own_redis.kill()
                    return
                conn.rollback()
                time.sleep(0.005)

    watcher = threading.Thread(target=kill_after_first_chunk)
    watcher.start()
    try:
        # Encoded here into bytes: the test client spools a large form to a file it never closes.
        boundary, form = encode_multipart(
            {"file": FileStorage(io.BytesIO(buf.getvalue().encode()), filename="codes.csv")}
        )
        resp = app.test_client().post(
            "/api/v1/admin/codes",
            headers=ADMIN,
            content_type=f"multipart/form-data; boundary={boundary}",
            data=form,
        )
    finally:
        stop.set()
        watcher.join()
        engine.dispose()

    saved = saved_codes(app)
    body = resp.get_json()
    assert resp.status_code == 503, body
    assert resp.mimetype == "application/problem+json" and resp.headers["Retry-After"]
    assert body["code"] == "import_incomplete"
    assert 5000 <= body["accepted"] == len(saved) < total  # exactly what landed
    assert body["rows_read"] >= body["accepted"] and body["rejected"] == []

    # Redis is away: every saved code answers from the database, none "never issued".
    saved_text = [_code(k - int(_code(0))) for k in saved]
    assert verdicts(app, saved_text[::97] + saved_text[-1:]) == {"genuine"}
    resolver = container(app).resolver
    assert all(resolver.resolve(normalize(code)).record is not None for code in saved_text)
    assert verdicts(app, [_code(total - 1)]) == {"not_found"}

    # Redis back (empty: its filter is gone): still genuine, the rest still not found.
    own_redis.start()
    assert verdicts(app, saved_text[::97] + saved_text[-1:]) == {"genuine"}
    assert verdicts(app, [_code(total - 1)]) == {"not_found"}


def test_an_import_whose_redis_restarts_mid_way_reports_the_rows_saved_which_verify(
    app: Flask, own_redis: RedisChild
) -> None:
    c = container(app)

    def rows() -> Iterator[dict[str, str]]:
        for n in range(10_000):
            if n == 2500:  # while the third chunk is gathered; the second may be in flight
                own_redis.shutdown_saving()
            yield {"code": _code(n), "certificate": CERT, "product": "有机大米"}

    with pytest.raises(ImportStopped) as stopped:
        c.admin.import_codes(rows(), ALL, chunk=1000)
    saved = saved_codes(app)
    assert stopped.value.result.accepted == len(saved) >= 1000
    assert stopped.value.rows_read <= 3000 and stopped.value.status == 503
    saved_text = [_code(k - int(_code(0))) for k in saved]
    assert verdicts(app, saved_text) == {"genuine"}  # Redis away: from the database

    # Redis back with its data: the filter there holds every saved code (they enter it
    # before they are saved), the generation never moved, and the worker reloads anyway.
    own_redis.start()
    assert verdicts(app, saved_text) == {"genuine"}
    assert verdicts(app, [_code(9_999)]) == {"not_found"}
    # And the next import completes and moves the generation as usual.
    result = c.admin.import_codes(
        ({"code": _code(n), "certificate": CERT, "product": "有机大米"} for n in range(10_000)),
        ALL,
        chunk=1000,
    )
    assert result.accepted == 10_000 and verdicts(app, [_code(9_999)]) == {"genuine"}


def test_an_import_in_flight_makes_workers_ask_the_shared_bits_before_saying_never_issued(
    app: Flask, own_redis: RedisChild
) -> None:
    # A worker holds its filter from before the import; the import's codes are saved chunk
    # by chunk and the generation moves only at the end. Mid-way, saved codes verify.
    c = container(app)
    seen: list[set[str]] = []

    def rows() -> Iterator[dict[str, str]]:
        for n in range(3000):
            if n == 2500:  # two chunks saved (one in flight at most): ask about the first
                seen.append(verdicts(app, [_code(0), _code(999)]))
            yield {"code": _code(n), "certificate": CERT, "product": "有机大米"}

    # The worker's filter is loaded now, before the import.
    assert verdicts(app, [_code(0)]) == {"not_found"}
    c.resolver.refresh_s = 0.0  # this test's "worker" reads the generations on every verify
    c.admin.import_codes(rows(), ALL, chunk=1000)
    assert seen == [{"genuine"}]
