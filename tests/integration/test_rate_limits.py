"""Public rate limits on Redis storage (redis-py 8 without the `limits` `redis` extra,
which pins redis<8), failing open when Redis is down, and off with RATE_LIMITS=off."""

from __future__ import annotations

import io

import pytest
from flask import Flask
from hypothesis import given
from hypothesis import strategies as st

from tests.conftest import make_app, settings_for
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
