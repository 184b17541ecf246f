"""Nothing lost: kill -9 the stream worker mid-batch and kill -9 and restart Redis (AOF,
appendfsync always) while verifies keep coming: a worker kill, a Redis restart, then both
at once with the next worker starting while Redis is away. Afterwards the events
acknowledged are the events stored, once each, and the pending list is empty
(tests/chaos.py has the scenario; bench/nothing_lost.py runs it at a larger scale).

Needs MariaDB (MYSQL_URL) and the `redis-server` binary (it starts its own server on a free
port); fails instead of skipping under REQUIRE_SERVICES=1.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests import chaos

pytestmark = [pytest.mark.services, pytest.mark.slow]


@pytest.fixture
def redis_server_binary() -> str:
    if chaos.REDIS_SERVER is None:
        message = "redis-server is not installed (not on PATH)"
        if os.environ.get("REQUIRE_SERVICES") == "1":
            pytest.fail(message + " and REQUIRE_SERVICES=1", pytrace=False)
        pytest.skip(message)
    return chaos.REDIS_SERVER


def test_worker_and_redis_killed_mid_run_lose_and_duplicate_nothing(
    redis_server_binary: str, mysql_db: str, tmp_path: Path
) -> None:
    scenario = chaos.Scenario(
        mysql_db,
        tmp_path,
        events=3000,
        rate=300,
        senders=2,
        batch=20,
        claim_idle_ms=1000,
        chaos=((0.15, "kill"), (0.4, "redis"), (0.65, "both")),
        outage_s=1.0,
        drain_timeout_s=30,
        say=print,
    )
    report = scenario.run()
    print("\n".join(report.lines()))
    logs = "\n".join(f"--- {w.name}\n{w.log_tail()}" for w in scenario.workers)
    assert report.problems() == [], "\n".join(report.lines() + report.notes) + "\n" + logs
    # The chaos really happened, mid-run and mid-batch, and Redis was really away.
    assert (report.worker_kills, report.redis_restarts) == (2, 2)
    assert report.killed_pending > 0, report.notes
    assert report.unrecorded + report.failed > 0, "no verify met the Redis outage"
    assert report.acknowledged > report.sent / 2
