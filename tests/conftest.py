"""Shared fixtures: real MariaDB and Redis (failing, not skipping, under REQUIRE_SERVICES=1),
a fresh database per test module, and app factories for both deployments."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pymysql
import pytest
import redis as redis_lib
from flask import Flask

from tests.fakes.wechat_server import fake_wechat  # noqa: F401 - a fixture for every test module
from webapp import Settings, create_app

MYSQL_URL = os.environ.get("MYSQL_URL", "mysql+pymysql://root@127.0.0.1:3306")
REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
REQUIRED = os.environ.get("REQUIRE_SERVICES") == "1"
BOOTSTRAP = "test-bootstrap-token"


def _unavailable(what: str, exc: Exception) -> None:
    message = f"{what} is not reachable ({type(exc).__name__}: {exc})"
    if REQUIRED:
        pytest.fail(message + " and REQUIRE_SERVICES=1", pytrace=False)
    pytest.skip(message)


def _mysql_parts() -> dict[str, object]:
    from sqlalchemy.engine import make_url

    url = make_url(MYSQL_URL)
    return {
        "host": url.host or "127.0.0.1",
        "port": url.port or 3306,
        "user": url.username or "root",
        "password": url.password or "",
    }


@pytest.fixture
def mysql_db() -> Iterator[str]:
    """A fresh, empty MariaDB database for one test; dropped afterwards."""
    name = f"ovt_{uuid.uuid4().hex[:12]}"
    try:
        conn = pymysql.connect(**_mysql_parts(), connect_timeout=3)  # type: ignore[arg-type]
    except pymysql.MySQLError as exc:
        _unavailable("MariaDB", exc)
    with conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE {name} CHARACTER SET utf8mb4")
    from sqlalchemy.engine import make_url

    url = make_url(MYSQL_URL).set(database=name).render_as_string(hide_password=False)
    try:
        yield url
    finally:
        with conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS {name}")
        conn.close()


def _redis_db_url() -> str:
    # A database of its own, flushed per test: the app's keys have fixed names.
    # TEST_REDIS_DB lets two test runs share one server (two checkouts, a bench) without
    # flushing each other's keys.
    base = REDIS_URL.rsplit("/", 1)[0] if REDIS_URL.count("/") > 2 else REDIS_URL
    return f"{base}/{int(os.environ.get('TEST_REDIS_DB', '13'))}"


@pytest.fixture
def redis_url() -> Iterator[str]:
    url = _redis_db_url()
    client = redis_lib.Redis.from_url(url, socket_timeout=2)
    try:
        client.ping()
    except redis_lib.RedisError as exc:
        _unavailable("Redis", exc)
    client.flushdb()
    yield url
    client.flushdb()
    client.close()


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[redis_lib.Redis]:
    client = redis_lib.Redis.from_url(redis_url)
    yield client
    client.close()


AppFactory = Callable[..., Flask]


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'verify.sqlite3'}"


def settings_for(database_url: str, redis_url: str | None = None, **extra: object) -> Settings:
    # The photo scanner stops at its time budget: on a loaded test machine a 2.5 s budget
    # would make what a photo yields depend on timing, so tests give it a minute.
    values: dict[str, object] = {
        "rate_limits": False,
        "expected_codes": 100_000,
        "scan_time_budget_ms": 60_000,
        **extra,
    }
    return Settings(
        database_url=database_url,
        redis_url=redis_url,
        secret_key="test-secret",
        admin_bootstrap_token=BOOTSTRAP,
        **values,  # type: ignore[arg-type]
    )


def make_app(settings: Settings) -> Flask:
    """The app for a test, its schema migrated first. A served app is migrated once by
    gunicorn's master (or `flask db upgrade`), never by create_app itself: tests ask."""
    return create_app(settings, migrate=True)


@pytest.fixture
def embedded_app(sqlite_url: str) -> Flask:
    return make_app(settings_for(sqlite_url))


@pytest.fixture
def service_app(mysql_db: str, redis_url: str) -> Flask:
    return make_app(settings_for(mysql_db, redis_url))


@pytest.fixture(params=["embedded", "services"])
def any_app(request: pytest.FixtureRequest) -> Flask:
    """The same test on both deployments: SQLite + in-process, and MariaDB + Redis."""
    if request.param == "embedded":
        return request.getfixturevalue("embedded_app")  # type: ignore[no-any-return]
    return request.getfixturevalue("service_app")  # type: ignore[no-any-return]


ADMIN = {"Authorization": f"Bearer {BOOTSTRAP}"}
