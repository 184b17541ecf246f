"""A stalled scan store (its Redis paused with `CLIENT PAUSE`, as DEBUG is disabled here)
is tried once, then skipped for a backoff, then tried once again: verifies are answered
meanwhile, without scan history, and the store is used again once it answers.

The scan store runs on a redis-server this module starts on a free port: pausing the
shared server would stall every other test run using it. The breaker's clock is a fake
one the test moves, so nothing depends on how fast the machine is."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import redis as redis_lib

from cache.redis_cache import Breaker
from domain import metrics
from services.demo import seed
from tests.conftest import REQUIRED, make_app, settings_for
from webapp import container


class ScanServer:
    """A redis-server child on a free port; `restart()` replaces a stalled one."""

    def __init__(self, root: Path) -> None:
        self.root = root
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = int(s.getsockname()[1])
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        server = shutil.which("redis-server")
        if server is None:
            if REQUIRED:
                pytest.fail("redis-server is needed for the scan-store stall test and REQUIRE_SERVICES=1")
            pytest.skip("redis-server is not installed")
        self.proc = subprocess.Popen(
            [server, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.root), "--logfile", str(self.root / "log")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        end = time.monotonic() + 20
        while True:
            try:
                redis_lib.Redis(port=self.port, socket_timeout=1).ping()
                return
            except redis_lib.ConnectionError:
                if time.monotonic() > end or self.proc.poll() is not None:
                    raise
                time.sleep(0.05)

    def pause(self) -> None:
        # CLIENT UNPAUSE would itself wait out the pause: a long pause, ended by restart().
        redis_lib.Redis(port=self.port).execute_command("CLIENT", "PAUSE", 60_000, "ALL")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(timeout=10)
            self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()


@pytest.fixture
def scan_server(tmp_path: Path) -> Iterator[ScanServer]:
    server = ScanServer(tmp_path)
    server.start()
    yield server
    server.stop()


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def test_a_stalled_scan_store_is_tried_once_per_backoff_while_verifies_are_answered(
    mysql_db: str, redis_url: str, scan_server: ScanServer
) -> None:
    app = make_app(settings_for(mysql_db, redis_url, scan_redis_url=scan_server.url))
    c = container(app)
    demo = seed(c.admin, date.today())
    clock = FakeClock()
    assert c.scans.breaker is not None
    c.scans.breaker.clock = clock
    http = app.test_client()

    def verify() -> dict[str, Any]:
        resp = http.post("/api/v1/verify", json={"input": demo["genuine"], "client": "shopper-1"})
        assert resp.status_code == 200
        answer = resp.get_json()
        assert answer["verdict"] == "genuine"
        return answer  # type: ignore[no-any-return]

    assert verify()["scans"]["count"] == 1
    failed, skipped = metrics.value("scan_store_redis_errors"), metrics.value("scan_store_skipped")

    scan_server.pause()
    answers = [verify() for _ in range(20)]
    # Answered from the registry, without scan history; Redis saw one attempt, not twenty.
    assert all(a["scans"] is None for a in answers)
    assert metrics.value("scan_store_redis_errors") - failed == 1
    assert metrics.value("scan_store_skipped") - skipped == 19

    # After the backoff one verify tries again (half-open); still stalled: open again.
    clock.now += 1.5
    assert [verify()["scans"] for _ in range(5)] == [None] * 5
    assert metrics.value("scan_store_redis_errors") - failed == 2
    assert metrics.value("scan_store_skipped") - skipped == 23

    scan_server.restart()  # the stall is over (a fresh server: CLIENT UNPAUSE waits out the pause)
    assert verify()["scans"] is None  # still inside the backoff: not even tried
    clock.now += 1.5
    assert verify()["scans"]["count"] == 1
    assert verify()["scans"]["count"] == 2  # closed again: every verify records its scan
    assert metrics.value("scan_store_redis_errors") - failed == 2


def test_the_breaker_lets_one_caller_try_after_the_backoff() -> None:
    clock = FakeClock()
    breaker = Breaker(1.0, metric="test_breaker_errors", clock=clock)
    assert breaker.allow()
    breaker.failed(TimeoutError())
    assert not breaker.allow()
    clock.now += 1.0
    assert breaker.allow()  # the trial
    assert not breaker.allow()  # everyone else keeps skipping while it runs
    breaker.succeeded()
    assert breaker.allow() and breaker.allow()
