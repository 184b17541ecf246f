"""The WeChat backend against a local fake of WeChat's API: the protocol layer (login,
errors, one retry on an expired token, one token refresh across processes) and the
/wx/v1 flow end to end (login → verify from `q` → photo scan → history → report → the
brand sees it)."""

from __future__ import annotations

import io
import logging
import multiprocessing
from datetime import date
from urllib.parse import quote

import pytest
import redis as redis_lib
from flask import Flask

from cache.wechat_tokens import MemoryTokenStore, RedisTokenStore
from miniprogram_backend.wechat import CodeUsed, InvalidCode, RateLimited, SystemBusy, WeChatClient
from tests.conftest import ADMIN, make_app, settings_for
from tests.fakes.wechat_server import FakeWeChat
from tests.images import encode, label
from webapp import container
from webapp.demo import seed


def client(fake: FakeWeChat, store=None) -> WeChatClient:  # type: ignore[no-untyped-def]
    return WeChatClient("wx-app", "wx-secret", fake.base, store or MemoryTokenStore(), timeout_s=3)


def test_login_returns_the_openid_and_keeps_no_session_key(fake_wechat: FakeWeChat) -> None:
    session = client(fake_wechat).code_to_session("code-1")
    assert session.openid.startswith("o")
    assert not hasattr(session, "session_key") and "SK-" not in repr(session)
    assert client(fake_wechat).code_to_session("code-1").openid == session.openid


@pytest.mark.parametrize(
    ("code", "error"),
    [("err-40029", InvalidCode), ("err-40163", CodeUsed), ("err-45011", RateLimited), ("err--1", SystemBusy)],
)
def test_wechat_errors_become_typed_errors(fake_wechat: FakeWeChat, code: str, error: type) -> None:
    with pytest.raises(error) as info:
        client(fake_wechat).code_to_session(code)
    assert info.value.code.startswith("wechat_") and 400 <= info.value.http_status < 600


def test_an_expired_token_is_refreshed_once_and_the_call_retried(fake_wechat: FakeWeChat) -> None:
    wx = client(fake_wechat)
    assert wx.check_text("o1", "有机大米很好") is True
    issued = fake_wechat.issued
    fake_wechat.expire_current()
    assert wx.check_text("o1", "RISKY words") is False
    assert fake_wechat.issued == issued + 1


def _race(base: str, redis_url: str, prefix: str, go, out) -> None:  # type: ignore[no-untyped-def]
    store = RedisTokenStore(redis_lib.Redis.from_url(redis_url), prefix)
    wx = WeChatClient("wx-app", "wx-secret", base, store, timeout_s=5)
    go.wait()
    out.put(wx.access_token())


def test_one_token_refresh_for_every_process_at_once(fake_wechat: FakeWeChat, redis_url: str) -> None:
    ctx = multiprocessing.get_context("fork")
    go, out = ctx.Event(), ctx.Queue()
    procs = [
        ctx.Process(target=_race, args=(fake_wechat.base, redis_url, "wx:race:", go, out)) for _ in range(8)
    ]
    for p in procs:
        p.start()
    go.set()
    tokens = {out.get(timeout=20) for _ in procs}
    for p in procs:
        p.join(timeout=20)
    assert fake_wechat.issued == 1 and len(tokens) == 1


@pytest.fixture
def wx_app(fake_wechat: FakeWeChat, request: pytest.FixtureRequest) -> Flask:
    if request.param == "services":
        settings = settings_for(request.getfixturevalue("mysql_db"), request.getfixturevalue("redis_url"))
    else:
        settings = settings_for(request.getfixturevalue("sqlite_url"))
    return make_app(
        settings.with_(wechat_appid="wx-app", wechat_secret="wx-secret", wechat_api_base=fake_wechat.base)
    )


@pytest.mark.parametrize("wx_app", ["embedded", "services"], indirect=True)
def test_the_shopper_flow_end_to_end(wx_app: Flask, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    demo = seed(container(wx_app).admin, date.today())
    http = wx_app.test_client()
    bodies: list[str] = []

    def call(method: str, path: str, **kwargs):  # type: ignore[no-untyped-def]
        resp = getattr(http, method)(path, **kwargs)
        bodies.append(resp.get_data(as_text=True))
        return resp

    assert call("post", "/wx/v1/verify", json={"input": "x"}).status_code == 401
    bad = call("post", "/wx/v1/login", json={"js_code": "err-40029"})
    assert bad.status_code == 400 and bad.get_json()["code"] == "wechat_invalid_code"
    login = call("post", "/wx/v1/login", json={"js_code": "shopper-code"})
    assert login.status_code == 200
    auth = {"Authorization": f"Bearer {login.get_json()['token']}"}
    q = quote(f"https://label.example.cn/c/{demo['genuine']}", safe="")
    first = call("post", "/wx/v1/verify", json={"q": q, "scancode_time": 0}, headers=auth).get_json()
    assert first["verdict"] == "genuine" and first["scans"]["you"]["count"] == 1
    again = call("post", "/wx/v1/verify", json={"input": demo["genuine"]}, headers=auth).get_json()
    assert again["scans"]["you"]["count"] == 2 and again["flags"] == []
    # A photo of the small label (printed digits, no QR), as wx.uploadFile sends it.
    photo = call(
        "post",
        "/wx/v1/scan",
        headers=auth,
        content_type="multipart/form-data",
        data={"photo": (io.BytesIO(encode(label(code=demo["genuine"]))), "wxfile.jpg")},
    )
    assert photo.status_code == 200, photo.get_data(as_text=True)
    scanned = photo.get_json()
    assert [(f["symbology"], f["code"]) for f in scanned["found"]] == [("digits", demo["genuine"])]
    assert scanned["verification"]["verdict"] == "genuine"
    assert scanned["verification"]["scans"]["you"]["count"] == 3
    c = container(wx_app)
    if c.redis is not None:  # what `flask worker` does: events into the database
        from anomaly.worker import StreamWorker

        StreamWorker(
            redis_lib.Redis.from_url(c.settings.redis_url or ""),
            c.scan_sql.write_events,
            c.scan_sql.upsert_flag,
            claim_idle_ms=0,
        ).drain()
    history = call("get", "/wx/v1/me/history", headers=auth).get_json()["items"]
    assert [h["code"] for h in history] == [demo["genuine"]] * 3
    risky = call("post", "/wx/v1/reports", json={"code": demo["genuine"], "text": "RISKY"}, headers=auth)
    assert risky.status_code == 422 and risky.get_json()["code"] == "content_rejected"
    report = call(
        "post",
        "/wx/v1/reports",
        headers=auth,
        content_type="multipart/form-data",
        data={
            "code": demo["genuine"],
            "text": "包装上的产品是普通大米",
            "shop": "某超市",
            "lat": "30.27",
            "lng": "120.15",
            "photo": (io.BytesIO(b"\x89PNG\r\n\x1a\n" + b"0" * 100), "label.png"),
        },
    )
    assert report.status_code == 201
    flags = call("get", "/api/v1/admin/flags?rule=shopper_report", headers=ADMIN).get_json()["items"]
    assert flags[0]["code"] == demo["genuine"]
    assert flags[0]["evidence"]["reports"][0]["city"] == "杭州市"
    assert call("delete", "/wx/v1/me/history", headers=auth).get_json()["deleted"] == 3
    assert call("get", "/wx/v1/me/history", headers=auth).status_code == 401  # session ended too
    relogin = call("post", "/wx/v1/login", json={"js_code": "shopper-code"}).get_json()["token"]
    again = {"Authorization": f"Bearer {relogin}"}
    assert call("get", "/wx/v1/me/history", headers=again).get_json()["items"] == []
    assert not any("SK-" in body for body in bodies)
    assert "SK-" not in caplog.text


@pytest.mark.parametrize("wx_app", ["embedded"], indirect=True)
def test_bad_wechat_requests_are_problems(wx_app: Flask) -> None:
    http = wx_app.test_client()
    assert http.post("/wx/v1/login", json={}).status_code == 400
    assert http.post("/wx/v1/login", data="x").status_code == 400
    token = http.post("/wx/v1/login", json={"js_code": "a"}).get_json()["token"]
    auth = {"Authorization": f"Bearer {token}"}
    assert http.post("/wx/v1/verify", json={}, headers=auth).get_json()["code"] == "input_required"
    bad_photo = http.post(
        "/wx/v1/reports",
        headers=auth,
        content_type="multipart/form-data",
        data={"code": "012326100000000001", "photo": (io.BytesIO(b"%PDF-1.4"), "a.jpg")},
    )
    assert bad_photo.status_code == 415 and bad_photo.mimetype == "application/problem+json"
    # JSON `false` is no coordinate (pydantic's lax float would read it as 0.0; schemathesis
    # found it). A number is still taken.
    for where in ({"lat": 0.0, "lng": False}, {"lat": True, "lng": 1}):
        refused = http.post("/wx/v1/reports", json={"code": "012326100000000001", **where}, headers=auth)
        assert refused.status_code == 400 and refused.mimetype == "application/problem+json", where
    taken = {"code": "012326100000000001", "lat": 30, "lng": 120.15}
    assert http.post("/wx/v1/reports", json=taken, headers=auth).status_code == 201


def test_the_mini_program_is_rate_limited_per_session(
    fake_wechat: FakeWeChat, mysql_db: str, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from verify_api import limits

    monkeypatch.setattr(limits, "CLIENT_LIMIT", "2/minute")
    settings = settings_for(mysql_db, redis_url, rate_limits=True).with_(
        wechat_appid="wx-app", wechat_secret="wx-secret", wechat_api_base=fake_wechat.base
    )
    http = make_app(settings).test_client()

    def session(js_code: str) -> dict[str, str]:
        token = http.post("/wx/v1/login", json={"js_code": js_code}).get_json()["token"]
        return {"Authorization": f"Bearer {token}"}

    one, two = session("shopper-one"), session("shopper-two")
    statuses = [http.post("/wx/v1/verify", json={"input": "x"}, headers=one).status_code for _ in range(3)]
    assert statuses[:2] != [429, 429] and statuses[2] == 429
    refused = http.post("/wx/v1/verify", json={"input": "x"}, headers=one)
    assert refused.mimetype == "application/problem+json" and refused.get_json()["code"] == "rate_limited"
    # Another shopper behind the same IP keeps its own allowance.
    assert http.post("/wx/v1/verify", json={"input": "x"}, headers=two).status_code != 429
    # Requests with a token the blueprint refuses are counted too (per IP): guessing
    # tokens is not free.
    monkeypatch.setattr(limits, "IP_LIMIT", "3/minute")
    guesser = make_app(settings).test_client()
    statuses = [
        guesser.get("/wx/v1/me/history", headers={"Authorization": f"Bearer wxs_guess-{i}"}).status_code
        for i in range(4)
    ]
    assert statuses == [401, 401, 401, 429]


@pytest.mark.parametrize("wx_app", ["embedded"], indirect=True)
@pytest.mark.parametrize(
    "body",
    [
        {"input": "012326100000000001", "scancode_time": 253402300800},  # past year 9999
        {"input": "012326100000000001", "scancode_time": -1},
        {"input": "012326100000000001", "scancode_time": -(10**18)},
        {"input": "012326100000000001", "location": {"lat": 9999, "lng": 120.1}},
        {"input": "012326100000000001", "location": {"lat": 30.2, "lng": 1e308}},
        {"input": "012326100000000001", "location": {"lat": 30.2}},
    ],
)
def test_impossible_scan_times_and_places_from_the_mini_program_are_refused_as_problems(
    wx_app: Flask, body: dict[str, object]
) -> None:
    http = wx_app.test_client()
    token = http.post("/wx/v1/login", json={"js_code": "shopper-code"}).get_json()["token"]
    resp = http.post("/wx/v1/verify", json=body, headers={"Authorization": f"Bearer {token}"})
    assert resp.status_code == 400 and resp.mimetype == "application/problem+json"
    assert resp.get_json()["code"] == "invalid_body"
    # Nothing of it was stored: the shopper's history stays empty.
    history = http.get("/wx/v1/me/history", headers={"Authorization": f"Bearer {token}"})
    assert history.get_json()["items"] == []


def test_a_token_refresh_survives_its_lock_key_vanishing_mid_fetch(redis_client: redis_lib.Redis) -> None:
    store = RedisTokenStore(redis_client, "wx:vanish:")

    def fetch() -> tuple[str, int]:
        redis_client.delete(store.lock_key)  # expired or deleted while WeChat answered
        return "token-after-vanish", 7200

    assert store.refresh(fetch) == "token-after-vanish"
    assert store.get() == "token-after-vanish"


def test_a_login_is_answered_when_the_token_lock_vanishes_mid_call(
    fake_wechat: FakeWeChat, mysql_db: str, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = make_app(
        settings_for(mysql_db, redis_url).with_(
            wechat_appid="wx-app", wechat_secret="wx-secret", wechat_api_base=fake_wechat.base
        )
    )
    wx = app.extensions["wechat"].client
    fetch = wx._fetch_stable_token

    def fetch_while_the_lock_vanishes(force: bool) -> tuple[str, int]:
        wx.tokens.client.delete(wx.tokens.lock_key)
        return fetch(force)  # type: ignore[no-any-return]

    monkeypatch.setattr(wx, "_fetch_stable_token", fetch_while_the_lock_vanishes)
    resp = app.test_client().post("/wx/v1/login", json={"js_code": "shopper-code"})
    assert resp.status_code == 200, resp.get_data(as_text=True)
    assert resp.get_json()["token"].startswith("wxs_")
    assert fake_wechat.issued == 1


@pytest.mark.parametrize("wx_app", ["embedded", "services"], indirect=True)
def test_erasing_the_history_ends_every_session_of_the_shopper(wx_app: Flask) -> None:
    http = wx_app.test_client()
    tokens = [http.post("/wx/v1/login", json={"js_code": "eraser"}).get_json()["token"] for _ in range(2)]
    other = http.post("/wx/v1/login", json={"js_code": "someone-else"}).get_json()["token"]
    auth = [{"Authorization": f"Bearer {t}"} for t in tokens]
    assert (
        http.post("/wx/v1/verify", json={"input": "012326100000000001"}, headers=auth[0]).status_code == 200
    )
    assert http.delete("/wx/v1/me/history", headers=auth[1]).status_code == 200
    assert [http.get("/wx/v1/me/history", headers=a).status_code for a in auth] == [401, 401]
    assert http.get("/wx/v1/me/history", headers={"Authorization": f"Bearer {other}"}).status_code == 200
    c = container(wx_app)
    if c.redis is not None:  # nothing of the shopper is left in Redis; the other's session is
        keys = [k.decode() for k in c.redis.scan_iter("wx:*")]
        assert len([k for k in keys if k.startswith("wx:sess:")]) == 1
        assert len([k for k in keys if k.startswith("wx:user:")]) == 1


@pytest.mark.parametrize("wx_app", ["services"], indirect=True)
def test_no_session_key_is_kept_in_redis_and_older_records_lose_theirs(wx_app: Flask) -> None:
    import hashlib
    import json

    http = wx_app.test_client()
    http.post("/wx/v1/login", json={"js_code": "shopper-code"})
    r = container(wx_app).redis
    assert not any(b"SK-" in (r.dump(k) or b"") for k in r.scan_iter("wx:*"))
    # A session an earlier release wrote, with WeChat's session_key in it.
    token = "wxs_written-by-an-earlier-release"
    key = "wx:sess:" + hashlib.sha256(token.encode()).hexdigest()
    r.set(key, json.dumps({"o": "o-earlier", "k": "SK-earlier"}), ex=3600)
    auth = {"Authorization": f"Bearer {token}"}
    assert http.get("/wx/v1/me/history", headers=auth).status_code == 200
    assert b"SK-" not in r.get(key) and 0 < r.ttl(key) <= 3600
    http.delete("/wx/v1/me/history", headers=auth)
    assert r.get(key) is None


@pytest.mark.parametrize("wx_app", ["embedded", "services"], indirect=True)
def test_an_identity_code_of_another_label_from_a_verified_session_marks_the_code(wx_app: Flask) -> None:
    """Issue 17: from the mini-program (a verified session) the identity_mismatch flag is
    `suspicious`, so every later shopper is told; from a public request it is a warning."""
    demo = seed(container(wx_app).admin, date.today())
    http = wx_app.test_client()
    token = http.post("/wx/v1/login", json={"js_code": "two-labels"}).get_json()["token"]
    body = {"input": demo["genuine"], "identity_code": "123-456-789"}
    got = http.post("/wx/v1/verify", json=body, headers={"Authorization": f"Bearer {token}"})
    assert got.status_code == 200, got.get_data(as_text=True)
    answer = got.get_json()
    assert answer["verdict"] == "suspicious" and answer["reason"] == "identity_mismatch"
    assert [(f["rule"], f["severity"]) for f in answer["flags"]] == [("identity_mismatch", "suspicious")]
    later = http.post("/api/v1/verify", json={"input": demo["genuine"]}).get_json()
    assert later["verdict"] == "suspicious" and later["reason"] is None
