"""The mini-program's sessions while their Redis is away: a stalled (SIGSTOP) or stopped
server makes /wx/v1 answer 503 problems (`session_store_unavailable`, with Retry-After),
never a 500 and never a 401 (the shopper's token is not wrong); a session this worker saw
in the last minute keeps being served; Redis is tried once per backoff, not per request.

Redis here is a redis-server this module starts on a free port (the shared one must
never stall). The session store's clock (its breaker and its one-minute local memo) is a
fake the test moves, so nothing depends on how fast the machine is."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from domain import metrics
from tests.conftest import make_app, settings_for
from tests.fakes.caches import FakeClock
from tests.fakes.wechat_server import FakeWeChat
from tests.redis_server import RedisChild
from webapp import container
from webapp.demo import seed


class SessionServer(RedisChild):
    """Our own redis-server, which can be stalled (SIGSTOP: connections open, no answer)
    and resumed with its data, or killed and started again empty."""

    def stall(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGSTOP)

    def resume(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGCONT)

    def stop(self) -> None:
        if self.proc is not None:
            os.kill(self.proc.pid, signal.SIGCONT)  # a stopped process still dies of SIGKILL
        super().stop()


@dataclass
class Outage:
    app: Flask
    http: FlaskClient
    server: SessionServer
    clock: FakeClock
    wechat: FakeWeChat
    genuine: str

    def login(self, js_code: str) -> Any:
        return self.http.post("/wx/v1/login", json={"js_code": js_code})

    def session(self, js_code: str) -> dict[str, str]:
        resp = self.login(js_code)
        assert resp.status_code == 200, resp.get_data(as_text=True)
        return {"Authorization": f"Bearer {resp.get_json()['token']}"}

    def verify(self, auth: dict[str, str]) -> Any:
        return self.http.post("/wx/v1/verify", json={"input": self.genuine}, headers=auth)

    def exchanges(self) -> int:
        """How many js_codes were sent to WeChat."""
        return self.wechat.calls.count("/sns/jscode2session")


@pytest.fixture
def outage(fake_wechat: FakeWeChat, mysql_db: str, tmp_path: Path) -> Iterator[Outage]:
    server = SessionServer(tmp_path, "the WeChat outage tests")
    server.start()
    settings = settings_for(mysql_db, server.url).with_(
        wechat_appid="wx-app", wechat_secret="wx-secret", wechat_api_base=fake_wechat.base
    )
    app = make_app(settings)
    demo = seed(container(app).admin, date.today())
    clock = FakeClock()
    sessions = app.extensions["wechat"].sessions
    sessions.clock = clock
    sessions.breaker.clock = clock
    yield Outage(app, app.test_client(), server, clock, fake_wechat, demo["genuine"])
    server.stop()


def unavailable(resp: Any) -> bool:
    """A 503 problem saying the session store is away, with a time to come back."""
    return (
        resp.status_code == 503
        and resp.mimetype == "application/problem+json"
        and resp.get_json()["code"] == "session_store_unavailable"
        and int(resp.headers["Retry-After"]) > 0
    )


def deltas(before: dict[str, int]) -> dict[str, int]:
    now = metrics.snapshot()
    return {name: now.get(name, 0) - before.get(name, 0) for name in before}


def counters() -> dict[str, int]:
    now = metrics.snapshot()
    return {name: now.get(name, 0) for name in ("session_store_redis_errors", "session_store_skipped")}


@pytest.mark.parametrize("how", ["stalled", "stopped"])
def test_login_answers_503_while_the_session_store_is_away_and_tries_it_once_per_backoff(
    outage: Outage, how: str
) -> None:
    before = counters()
    outage.server.stall() if how == "stalled" else outage.server.stop()

    assert unavailable(outage.login("shopper-1"))
    assert deltas(before) == {"session_store_redis_errors": 1, "session_store_skipped": 0}
    # Within the backoff Redis is not tried, and the shopper's js_code is not spent at
    # WeChat for a session that could not be stored.
    exchanged = outage.exchanges()
    assert all(unavailable(outage.login(f"shopper-{i}")) for i in range(2, 6))
    assert outage.exchanges() == exchanged
    assert deltas(before) == {"session_store_redis_errors": 1, "session_store_skipped": 4}

    outage.server.resume() if how == "stalled" else outage.server.start()
    outage.clock.now += 1.5
    auth = outage.session("shopper-1")
    assert outage.verify(auth).get_json()["verdict"] == "genuine"
    assert deltas(before)["session_store_redis_errors"] == 1


def test_a_stalled_session_store_never_turns_a_valid_token_into_a_401(outage: Outage) -> None:
    auth = outage.session("shopper-1")
    assert outage.verify(auth).status_code == 200
    before = counters()
    outage.server.stall()

    # This worker saw the session within the minute: the shopper keeps being served
    # (without scan history: the scan store is on the same stalled server).
    answer = outage.verify(auth)
    assert answer.status_code == 200 and answer.get_json()["verdict"] == "genuine"
    assert outage.http.get("/wx/v1/me/history", headers=auth).status_code == 200
    report = outage.http.post("/wx/v1/reports", json={"code": outage.genuine, "text": "假货"}, headers=auth)
    assert report.status_code == 201, report.get_data(as_text=True)
    assert deltas(before) == {"session_store_redis_errors": 0, "session_store_skipped": 0}

    # Past the memo's minute the session must be read from Redis: 503, not 401.
    outage.clock.now += 61
    assert unavailable(outage.verify(auth))
    assert unavailable(outage.http.get("/wx/v1/me/history", headers=auth))
    assert deltas(before) == {"session_store_redis_errors": 1, "session_store_skipped": 1}

    # The stall ends: after the backoff the same token works again, nothing was lost.
    outage.server.resume()
    outage.clock.now += 1.5
    assert outage.verify(auth).get_json()["verdict"] == "genuine"


def test_erasing_history_while_the_session_store_is_away_answers_503_and_can_be_retried(
    outage: Outage,
) -> None:
    auth = outage.session("shopper-1")
    assert outage.verify(auth).status_code == 200
    outage.server.stall()
    # The sessions cannot be ended: the erasure is not done, and says so.
    assert unavailable(outage.http.delete("/wx/v1/me/history", headers=auth))

    outage.server.resume()
    outage.clock.now += 1.5
    erased = outage.http.delete("/wx/v1/me/history", headers=auth)
    assert erased.status_code == 200
    assert outage.http.get("/wx/v1/me/history", headers=auth).status_code == 401
