"""Two gunicorn workers behind one port: an admin change reaches every answer within 1 s."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
import requests

from tests.conftest import ADMIN, BOOTSTRAP

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(params=["services", "embedded"])
def server(request: pytest.FixtureRequest) -> Iterator[str]:
    port = _free_port()
    env = {
        **os.environ,
        "PORT": str(port),
        "SECRET_KEY": "s",
        "ADMIN_BOOTSTRAP_TOKEN": BOOTSTRAP,
        "RATE_LIMITS": "off",
        "WEB_CONCURRENCY": "2",
        "EXPECTED_CODES": "100000",
        "PYTHONPATH": str(ROOT),
    }
    if request.param == "services":
        env["DATABASE_URL"] = request.getfixturevalue("mysql_db")
        env["REDIS_URL"] = request.getfixturevalue("redis_url")
    else:
        env["DATABASE_URL"] = request.getfixturevalue("sqlite_url")
        env.pop("REDIS_URL", None)
    log = request.getfixturevalue("tmp_path") / "gunicorn.log"
    log_fh = log.open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"],
        cwd=ROOT,
        env=env,
        stdout=log_fh,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if requests.get(base + "/healthz", timeout=1).ok:
                    break
            except (requests.ConnectionError, requests.Timeout):  # bound but still booting
                time.sleep(0.2)
        else:
            proc.kill()
            pytest.fail(f"gunicorn did not start: {log.read_text()[-2000:]}")
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        log_fh.close()


def _answers(base: str, code: str, n: int) -> list[str]:
    # A new connection per request so both workers get requests.
    return [
        requests.post(
            base + "/api/v1/verify", json={"input": code}, timeout=5, headers={"Connection": "close"}
        ).json()["verdict"]
        for _ in range(n)
    ]


def test_a_status_change_reaches_every_worker_within_one_second(server: str) -> None:
    yy = date.today().year % 100
    number = f"0123OP{yy:02d}00017"
    code = f"0123{yy:02d}000000000042"
    s = requests.Session()
    s.headers.update(ADMIN)
    assert s.post(server + "/api/v1/admin/bodies", json=[{"code": "0123", "name": "b"}]).ok
    assert s.post(
        server + "/api/v1/admin/certificates",
        json=[
            {
                "number": number,
                "body_code": "0123",
                "holder": "h",
                "valid_from": f"{date.today().year}-01-01",
                "valid_until": f"{date.today().year}-12-31",
                "products": [{"name": "p"}],
            }
        ],
    ).ok
    assert (
        s.post(
            server + "/api/v1/admin/codes", json=[{"code": code, "certificate": number, "product": "p"}]
        ).json()["accepted"]
        == 1
    )
    time.sleep(1.0)
    assert set(_answers(server, code, 20)) == {"genuine"}  # both workers have it cached now
    assert s.patch(server + f"/api/v1/admin/certificates/{number}", json={"status": "suspended"}).ok
    time.sleep(1.0)
    assert set(_answers(server, code, 20)) == {"certificate_suspended"}
    assert s.patch(server + f"/api/v1/admin/certificates/{number}", json={"status": "valid"}).ok
    time.sleep(1.0)
    assert set(_answers(server, code, 20)) == {"genuine"}


def test_a_get_counts_every_scan_made_before_it_on_every_worker(server: str) -> None:
    yy = date.today().year % 100
    number = f"0123OP{yy:02d}00017"
    code, fresh = f"0123{yy:02d}000000000043", f"0123{yy:02d}000000000044"
    s = requests.Session()
    s.headers.update(ADMIN)
    assert s.post(server + "/api/v1/admin/bodies", json=[{"code": "0123", "name": "b"}]).ok
    assert s.post(
        server + "/api/v1/admin/certificates",
        json=[
            {
                "number": number,
                "body_code": "0123",
                "holder": "h",
                "valid_from": f"{date.today().year}-01-01",
                "valid_until": f"{date.today().year}-12-31",
                "products": [{"name": "p"}],
            }
        ],
    ).ok
    rows = [{"code": code, "certificate": number, "product": "p"}]
    assert s.post(server + "/api/v1/admin/codes", json=rows).json()["accepted"] == 1
    # A code written reaches every worker within a second (each reads the generations every
    # 0.2 s; that is tested at the end): this test is about the counts, so it starts once
    # both workers know the code. Without the wait, a verify sent within those 0.2 s to the
    # worker that had not yet looked was answered not_found (seen once in CI, 6 Dec).
    time.sleep(1.0)

    def count() -> int:
        # `scans` is null while the scan store is skipped (a Redis call over its 50 ms on a
        # loaded host opens the breaker for a second): no count, not a wrong one; asked again.
        for _ in range(4):
            resp = requests.get(server + f"/api/v1/codes/{code}", timeout=5, headers={"Connection": "close"})
            assert resp.headers["Cache-Control"] == "no-store"
            scans = resp.json()["scans"]
            if scans is not None:
                return int(scans["count"])
            time.sleep(1.1)
        raise AssertionError("the scan store stayed unavailable")

    assert {count() for _ in range(6)} == {0}  # cached nowhere: the next GETs see the scans
    for made in range(1, 5):
        assert _answers(server, code, 1) == ["genuine"]
        assert {count() for _ in range(6)} == {made}  # on both workers, at once
    # A code imported now: genuine on every worker within a second.
    assert _answers(server, fresh, 1) == ["not_found"]
    rows = [{"code": fresh, "certificate": number, "product": "p"}]
    assert s.post(server + "/api/v1/admin/codes", json=rows).json()["accepted"] == 1
    time.sleep(1.0)
    assert set(_answers(server, fresh, 20)) == {"genuine"}
