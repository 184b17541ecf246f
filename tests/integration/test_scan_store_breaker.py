"""A stalled scan store (its Redis paused with `CLIENT PAUSE`, as DEBUG is disabled here)
is tried once, then skipped for a backoff, then tried once again: verifies are answered
meanwhile, without scan history, and the store is used again once it answers.

The scan store runs on a redis-server this module starts on a free port: pausing the
shared server would stall every other test run using it. The breaker's clock is a fake
one the test moves, so nothing depends on how fast the machine is."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from cache.redis_cache import Breaker
from domain import metrics
from tests.conftest import make_app, settings_for
from tests.fakes.caches import FakeClock
from tests.redis_server import RedisChild
from webapp import container
from webapp.demo import seed


@pytest.fixture
def scan_server(tmp_path: Path) -> Iterator[RedisChild]:
    server = RedisChild(tmp_path, "the scan-store stall test")
    server.start()
    yield server
    server.stop()


def test_a_stalled_scan_store_is_tried_once_per_backoff_while_verifies_are_answered(
    mysql_db: str, redis_url: str, scan_server: RedisChild
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
