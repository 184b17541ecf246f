"""Public rate limits on Redis storage (redis-py 8 without the `limits` `redis` extra,
which pins redis<8), failing open when Redis is down, and off with RATE_LIMITS=off."""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask
from hypothesis import given
from hypothesis import strategies as st
from werkzeug.test import Client

from tests.api.test_verify_lane import _lane
from tests.conftest import make_app, settings_for
from tests.fakes.wechat_server import FakeWeChat
from verify_api import limits


@pytest.fixture
def tight(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(limits, "CLIENT_LIMIT", "3/minute")
    monkeypatch.setattr(limits, "IP_LIMIT", "5/minute")


def _codes(app: Flask, n: int, client: str | None = None) -> list[int]:
    http = app.test_client()
    body = {"input": "012326000000000001", **({"client": client} if client else {})}
    return [http.post("/api/v1/verify", json=body).status_code for _ in range(n)]


def test_limits_per_client_and_per_ip_in_redis(
    tight: None, mysql_db: str, redis_url: str, redis_client
) -> None:
    app = make_app(settings_for(mysql_db, redis_url, rate_limits=True))
    assert _codes(app, 4, client="a") == [200, 200, 200, 429]
    assert _codes(app, 2, client="b") == [200, 429]  # the IP's 5/minute is spent
    resp = app.test_client().post("/api/v1/verify", json={"input": "x", "client": "c"})
    assert resp.status_code == 429
    assert resp.mimetype == "application/problem+json" and resp.get_json()["code"] == "rate_limited"
    assert 1 <= int(resp.headers["Retry-After"]) <= 60
    assert any(b"LIMITER/rl" in k for k in redis_client.keys("*"))


def test_retry_after_is_the_window_that_was_hit(
    monkeypatch: pytest.MonkeyPatch, mysql_db: str, redis_url: str, redis_client
) -> None:
    # Both windows are spent by the third request: the answer must name the hour, not
    # send the client back after a minute to be refused again.
    monkeypatch.setattr(limits, "CLIENT_LIMIT", "2/minute;2/hour")
    app = make_app(settings_for(mysql_db, redis_url, rate_limits=True))
    assert _codes(app, 3, client="hourly") == [200, 200, 429]
    resp = app.test_client().post("/api/v1/verify", json={"input": "012326000000000001", "client": "hourly"})
    assert resp.status_code == 429
    # An hour's window: far more than the minute a fixed guess would say.
    assert 60 < int(resp.headers["Retry-After"]) <= 3600
    # Answers carry no per-request limit headers (each would cost Redis round trips).
    ok = app.test_client().post("/api/v1/verify", json={"input": "012326000000000001", "client": "other"})
    assert ok.status_code == 200 and not any(name.startswith("X-RateLimit") for name, _ in ok.headers.items())


def test_limits_fail_open_when_redis_is_down(tight: None, sqlite_url: str) -> None:
    app = make_app(settings_for(sqlite_url, None, rate_limits=True).with_(redis_url=None))
    # In-process storage still limits; the Redis-down case is below.
    assert _codes(app, 4, client="a")[-1] == 429
    down = make_app(settings_for(sqlite_url, "redis://127.0.0.1:1/0", rate_limits=True))
    statuses = _codes(down, 3, client="a")
    assert 500 not in statuses and statuses[0] == 200


def test_rate_limits_off_disables_them(tight: None, sqlite_url: str) -> None:
    app = make_app(settings_for(sqlite_url, rate_limits=False))
    assert set(_codes(app, 8, client="a")) == {200}


def test_photo_uploads_have_their_own_limit(
    monkeypatch: pytest.MonkeyPatch, mysql_db: str, redis_url: str, redis_client
) -> None:
    monkeypatch.setattr(limits, "UPLOAD_LIMIT", "2/minute")
    app = make_app(settings_for(mysql_db, redis_url, rate_limits=True))
    http = app.test_client()
    statuses = [
        http.post(
            "/api/v1/scans",
            data={"image": (io.BytesIO(b"not an image"), "x.jpg")},
            content_type="multipart/form-data",
        ).status_code
        for _ in range(3)
    ]
    assert statuses[:2] == [415, 415] and statuses[2] == 429
    # The verify endpoints keep the blueprint's own limits, untouched by the uploads.
    assert http.post("/api/v1/verify", json={"input": "012326000000000001", "client": "u"}).status_code == 200


def test_limits_survive_redis_losing_its_scripts(
    tight: None, mysql_db: str, redis_url: str, redis_client
) -> None:
    # A Redis restart empties its script cache: the windows' pipelined EVALSHA must load
    # the script again and count each request once, not twice and not never.
    app = make_app(settings_for(mysql_db, redis_url, rate_limits=True))
    assert _codes(app, 1, client="flushed") == [200]
    redis_client.script_flush()
    assert _codes(app, 3, client="flushed") == [200, 200, 429]


def test_every_window_is_counted_in_one_round_trip(
    monkeypatch: pytest.MonkeyPatch, mysql_db: str, redis_url: str, redis_client
) -> None:
    import redis.client

    executed: list[int] = []
    original = redis.client.Pipeline.execute

    def spy(self: redis.client.Pipeline, raise_on_error: bool = True) -> list:
        executed.append(len(self.command_stack))
        return original(self, raise_on_error)

    monkeypatch.setattr(redis.client.Pipeline, "execute", spy)
    app = make_app(settings_for(mysql_db, redis_url, rate_limits=True))
    app.test_client().post("/api/v1/verify", json={"input": "012326000000000001", "client": "one"})
    # Four windows (a minute and an hour, per IP and per client) in one pipeline.
    assert 4 in executed
    hour = next(redis_client.scan_iter("LIMITS:LIMITER/rl/public.verify:client/c:one/1000/*"))
    assert redis_client.ttl(hour) > 60


def test_code_lookups_and_the_result_page_share_the_verify_windows(
    tight: None, mysql_db: str, redis_url: str
) -> None:
    app = make_app(settings_for(mysql_db, redis_url, rate_limits=True))
    assert _codes(app, 6, client="a")[-1] == 429
    # The IP's 5/minute is spent by its verifies: the read-only paths are no way around it.
    http = app.test_client()
    resp = http.get("/api/v1/codes/012326000000000001")
    assert resp.status_code == 429 and resp.get_json()["code"] == "rate_limited"
    # The result page says the same to a person: a friendly page, never JSON (issue 19).
    page = http.get("/c/012326000000000001")
    assert page.status_code == 429 and page.mimetype == "text/html" and "Retry-After" in page.headers
    assert 'data-code="rate_limited"' in page.get_data(as_text=True)


def test_a_verify_counts_its_windows_in_its_scan_round_trip_and_a_refusal_records_nothing(
    monkeypatch: pytest.MonkeyPatch, mysql_db: str, redis_url: str, redis_client
) -> None:
    from datetime import date

    import redis.client

    from webapp import container
    from webapp.demo import seed

    monkeypatch.setattr(limits, "CLIENT_LIMIT", "3/minute;100/hour")
    app = make_app(settings_for(mysql_db, redis_url, rate_limits=True))
    code = seed(container(app).admin, date.today())["genuine"]
    executed: list[int] = []
    original = redis.client.Pipeline.execute

    def spy(self: redis.client.Pipeline, raise_on_error: bool = True) -> list:
        executed.append(len(self.command_stack))
        return original(self, raise_on_error)

    monkeypatch.setattr(redis.client.Pipeline, "execute", spy)
    http = app.test_client()
    statuses = [
        http.post("/api/v1/verify", json={"input": code, "client": "w"}).status_code for _ in range(4)
    ]
    assert statuses == [200, 200, 200, 429]
    assert 4 not in executed  # no pipeline of windows of their own: the scan script counted them
    refused = http.post("/api/v1/verify", json={"input": code, "client": "w"})
    assert refused.get_json()["code"] == "rate_limited" and 1 <= int(refused.headers["Retry-After"]) <= 60
    minute = next(redis_client.scan_iter("LIMITS:LIMITER/rl/public.verify:client/c:w/3/1/minute"))
    assert int(redis_client.get(minute)) == 5 and 0 < redis_client.ttl(minute) <= 60
    # The refused verifies recorded nothing: three scans, whoever asks. A GET's windows
    # are counted in its own scan call too (the read-only lookup shares the verify's).
    answer = http.get(f"/api/v1/codes/{code}").get_json()
    assert answer["scans"]["count"] == 3
    assert (
        int(
            redis_client.get(
                next(redis_client.scan_iter("LIMITS:LIMITER/rl/public.verify/ip:*/1200/1/minute"))
            )
        )
        >= 6
    )


@given(
    st.text(max_size=40).filter(lambda k: "\n" not in k), st.sampled_from(["public.verify", "wechat.verify"])
)
def test_the_windows_handed_to_the_scan_script_are_named_as_the_library_names_them(
    key: str, scope: str
) -> None:
    # The scan script counts these names and `hit`/`retry_after` read them through the
    # library: a name laid out otherwise would be a second, uncounted window.
    from webapp.limits import RateLimits

    rate_limits = RateLimits("redis://127.0.0.1:6379/0", in_scan_store=True)  # never connects
    checks = limits.checks_for(scope, "10.0.0.1", "c:" + key, "public.scan_photo")
    windows = rate_limits.windows(checks)
    assert windows is not None
    storage = rate_limits._redis()[0]  # type: ignore[index]
    assert windows.payload.split("\n") == [
        f"{storage.prefixed_key(item.key_for(limits.KEY_PREFIX, s, k))} {item.get_expiry()} {item.amount}"
        for item, s, k in checks
    ]


# -- a refused request over its windows (issue: bad bodies never saw 429) ---------------------


@pytest.fixture(params=["embedded", "services"])
def limited_app(request: pytest.FixtureRequest, sqlite_url: str) -> Flask:
    """Rate limits on, on both deployments: in this process (no Redis), and on MariaDB +
    Redis with the scan store on the limits' Redis (a verify's windows left to its script)."""
    if request.param == "embedded":
        return make_app(settings_for(sqlite_url, rate_limits=True))
    mysql_db, redis_url = request.getfixturevalue("mysql_db"), request.getfixturevalue("redis_url")
    settings = settings_for(mysql_db, redis_url, rate_limits=True)
    assert settings.scan_store_url == settings.redis_url  # the deployment the gap was on
    return make_app(settings)


@pytest.fixture(params=["lane", "flask"])
def http_of(request: pytest.FixtureRequest) -> Callable[[Flask], Any]:
    """A client through the verify lane (the app as served), or straight to Flask's routes."""
    if request.param == "lane":
        return lambda app: app.test_client()
    return lambda app: Client(_lane(app).app)


# Refused before the verify reaches the scan store: each one's own 400 problem.
BAD_BODIES: list[tuple[dict[str, Any], str]] = [
    ({"channel": "qr", "client": "bad"}, "input_required"),
    ({"input": 5, "client": "bad"}, "invalid_body"),
    ({"input": "012326000000000001", "channel": "fax", "client": "bad"}, "invalid_body"),
    ({"input": "1" * 3000, "client": "bad"}, "input_too_long"),
    ({"input": ["012326000000000001"], "client": "bad"}, "invalid_body"),
]


def _refused(resp: Any) -> bool:
    return (
        resp.status_code == 429
        and resp.mimetype == "application/problem+json"
        and resp.get_json()["code"] == "rate_limited"
        and 1 <= int(resp.headers["Retry-After"]) <= 60
    )


def test_a_client_over_its_windows_is_refused_whatever_its_body(
    monkeypatch: pytest.MonkeyPatch, limited_app: Flask, http_of: Callable[[Flask], Any]
) -> None:
    monkeypatch.setattr(limits, "CLIENT_LIMIT", "2/minute")
    http = http_of(limited_app)
    answers = [http.post("/api/v1/verify", json=body) for body, _ in BAD_BODIES]
    assert [a.status_code for a in answers] == [400, 400, 429, 429, 429]
    # Under the limit a bad body is told what is wrong with it; over it, when to come back.
    assert [a.get_json()["code"] for a in answers[:2]] == [code for _, code in BAD_BODIES[:2]]
    assert all(_refused(a) for a in answers[2:])


def test_what_is_refused_before_its_body_is_read_counts_in_the_ips_windows(
    monkeypatch: pytest.MonkeyPatch, limited_app: Flask, http_of: Callable[[Flask], Any]
) -> None:
    # No client id to read: a body that is not JSON, a code too long to look up.
    monkeypatch.setattr(limits, "IP_LIMIT", "2/minute")
    http = http_of(limited_app)
    posts = [
        http.post(
            "/api/v1/verify",
            data=b"{input",
            content_type="application/json",
            environ_base={"REMOTE_ADDR": "10.9.0.1"},
        )
        for _ in range(5)
    ]
    gets = [
        http.get("/api/v1/codes/" + "1" * 3000, environ_base={"REMOTE_ADDR": "10.9.0.2"}) for _ in range(5)
    ]
    for answers, code in ((posts, "invalid_json"), (gets, "input_too_long")):
        assert [a.status_code for a in answers] == [400, 400, 429, 429, 429]
        assert answers[0].get_json()["code"] == code and all(_refused(a) for a in answers[2:])


def test_each_request_counts_once_in_its_windows_refused_or_not(
    monkeypatch: pytest.MonkeyPatch, limited_app: Flask, http_of: Callable[[Flask], Any]
) -> None:
    monkeypatch.setattr(limits, "CLIENT_LIMIT", "10/minute")
    http = http_of(limited_app)
    statuses = [http.post("/api/v1/verify", json=body).status_code for body, _ in BAD_BODIES[:2]]
    good = {"input": "012326000000000001", "client": "bad"}
    statuses.append(http.post("/api/v1/verify", json=good).status_code)
    assert statuses == [400, 400, 200]
    counter = limited_app.extensions["verify_limits"]
    found = counter._redis()
    limiter = found[1] if found is not None else counter.fallback
    (minute,) = limits._parsed("10/minute")
    stats = limiter.get_window_stats(minute, limits.KEY_PREFIX, "public.verify:client", "c:bad")
    assert stats.remaining == 10 - 3  # two bad bodies and a good one, each once


def test_the_mini_program_and_the_result_page_refuse_bad_requests_over_their_windows(
    monkeypatch: pytest.MonkeyPatch, fake_wechat: FakeWeChat, request: pytest.FixtureRequest, sqlite_url: str
) -> None:
    # Not IN_SCAN: their windows are counted first, before the request is looked at.
    monkeypatch.setattr(limits, "CLIENT_LIMIT", "2/minute")
    monkeypatch.setattr(limits, "IP_LIMIT", "2/minute")
    wechat = {"wechat_appid": "wx-app", "wechat_secret": "wx-secret", "wechat_api_base": fake_wechat.base}
    for settings in (
        settings_for(sqlite_url, rate_limits=True),
        settings_for(
            request.getfixturevalue("mysql_db"), request.getfixturevalue("redis_url"), rate_limits=True
        ),
    ):
        http = make_app(settings.with_(**wechat)).test_client()
        token = http.post(
            "/wx/v1/login", json={"js_code": "shopper"}, environ_base={"REMOTE_ADDR": "10.9.1.1"}
        ).get_json()["token"]
        auth = {"Authorization": f"Bearer {token}"}
        wx = [
            http.post(
                "/wx/v1/verify", json={"q": 5}, headers=auth, environ_base={"REMOTE_ADDR": f"10.9.2.{i}"}
            )
            for i in range(5)
        ]
        assert [a.status_code for a in wx] == [400, 400, 429, 429, 429]
        assert wx[2].get_json()["code"] == "rate_limited" and "Retry-After" in wx[2].headers
        pages = [http.get("/c/" + "1" * 3000, environ_base={"REMOTE_ADDR": "10.9.3.1"}) for _ in range(5)]
        assert [p.status_code for p in pages] == [400, 400, 429, 429, 429]
        assert 'data-code="rate_limited"' in pages[2].get_data(as_text=True)
