"""`flask --app wsgi <command>` builds only what the command uses (issue 15, item 1): a
schema upgrade never touches Redis, an import never replays the scan history."""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from registry import scans as scan_archive
from tests.conftest import make_app, settings_for
from webapp import container, create_app
from webapp.demo import seed

ROOT = Path(__file__).resolve().parent.parent.parent


@pytest.fixture
def silent_redis() -> Iterator[tuple[str, socket.socket]]:
    """A Redis URL whose port listens but never answers: any client that connects is seen."""
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    server.setblocking(False)
    yield f"redis://127.0.0.1:{server.getsockname()[1]}/0", server
    server.close()


def _connections(server: socket.socket) -> int:
    n = 0
    while True:
        try:
            conn, _ = server.accept()
        except BlockingIOError:
            return n
        conn.close()
        n += 1


def test_db_upgrade_migrates_a_fresh_database_without_touching_redis(
    mysql_db: str, silent_redis: tuple[str, socket.socket]
) -> None:
    url, server = silent_redis
    env = {
        "PATH": "/usr/bin:/bin",
        "PYTHONPATH": str(ROOT),
        "DATABASE_URL": mysql_db,
        "REDIS_URL": url,
        "SECRET_KEY": "test-secret",
    }
    done = subprocess.run(
        [sys.executable, "-m", "flask", "--app", "wsgi", "db", "upgrade"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "database at head" in done.stdout
    engine = sa.create_engine(mysql_db)
    try:
        tables = set(sa.inspect(engine).get_table_names())
    finally:
        engine.dispose()
    assert {"organic_codes", "certificates", "scan_events", "alembic_version"} <= tables
    assert _connections(server) == 0  # no client ever connected to the Redis URL


def test_db_upgrade_builds_no_filter_no_scan_store_and_no_service(sqlite_url: str) -> None:
    app = create_app(settings_for(sqlite_url, "redis://127.0.0.1:1/0"))
    result = app.test_cli_runner().invoke(args=["db", "upgrade"])
    assert result.exit_code == 0, result.output
    built = set(vars(container(app)))
    # Clients are objects until used (the test above: nothing connects); what costs is not built.
    heavy = {"registry", "filters", "resolver", "scans", "verify", "admin", "scan_admin", "photos"}
    assert "engine" in built and not built & heavy


def test_an_import_of_codes_replays_no_scan_events(
    sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Embedded: scan history lives in process and is rebuilt from the database by whoever
    # builds the scan store. A served app has some history to rebuild…
    first = make_app(settings_for(sqlite_url))
    samples = seed(container(first).admin, date.today())
    http = first.test_client()
    for _ in range(3):
        assert (
            http.post("/api/v1/verify", json={"input": samples["genuine"], "client": "a"}).status_code == 200
        )
    replays: list[Any] = []
    original = scan_archive.SqlScanArchive.iter_events

    def counted(self: Any, *args: Any, **kwargs: Any) -> Any:
        replays.append(1)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(scan_archive.SqlScanArchive, "iter_events", counted)
    # … and an operator's import of codes, a new process on the same database, reads none of it.
    app = create_app(settings_for(sqlite_url))
    source = tmp_path / "codes.csv"
    source.write_text("code,certificate,product\n", encoding="utf-8")
    result = app.test_cli_runner().invoke(args=["import-codes", str(source)])
    assert result.exit_code == 0, result.output
    assert replays == []
    assert "scans" not in vars(container(app))
    # The web app built on the same database still rebuilds it when it serves.
    container(app).warm()
    assert replays == [1]
