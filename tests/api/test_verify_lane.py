"""The verify lane (verify_api.lane) answers exactly as Flask's own routes do, and hands
Flask whatever it is not sure of."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import date
from typing import Any

import pytest
from flask import Flask
from werkzeug.test import Client

from tests.conftest import make_app, settings_for
from verify_api.lane import VerifyLane
from webapp import container
from webapp.demo import seed

# Varies by request, whichever lane answers.
VOLATILE_HEADERS = {"X-Request-Id", "Content-Length"}


def _lane(app: Flask) -> VerifyLane:
    wsgi: Any = app.wsgi_app
    while not isinstance(wsgi, VerifyLane):
        wsgi = getattr(wsgi, "wsgi_app", None) or wsgi.app  # _Timed, ProxyFix
    return wsgi


def _answer(resp: Any) -> tuple[int, dict[str, str], Any]:
    headers = {k: v for k, v in resp.headers.items() if k not in VOLATILE_HEADERS}
    body = json.loads(resp.get_data()) if resp.get_data() else None
    if isinstance(body, dict) and isinstance(body.get("scans"), dict):
        # Both lanes record the scan: the second answer counts one more.
        body["scans"] = sorted(body["scans"])
    return resp.status_code, headers, body


REQUESTS: list[tuple[str, Callable[[dict[str, str]], dict[str, Any]]]] = [
    ("genuine", lambda d: {"json": {"input": d["genuine"], "channel": "qr", "client": "shopper-1"}}),
    ("genuine in English", lambda d: {"json": {"input": d["genuine"]}, "headers": {"Accept-Language": "en"}}),
    ("located", lambda d: {"json": {"input": d["genuine"], "location": {"lat": 39.9, "lng": 116.4}}}),
    ("voided", lambda d: {"json": {"input": d["voided"], "client": "shopper-2"}}),
    ("never issued", lambda d: {"json": {"input": d["not_found"], "client": "shopper-3"}}),
    ("BQ", lambda d: {"json": {"input": d["genuine (BQ A code)"]}}),
    ("identity of another label", lambda d: {"json": {"input": d["genuine"], "identity_code": "123456789"}}),
    ("invalid format", lambda d: {"json": {"input": "12345"}}),
    ("no input", lambda d: {"json": {"channel": "qr"}}),
    ("input too long", lambda d: {"json": {"input": "1" * 3000}}),
    ("bad channel", lambda d: {"json": {"input": d["genuine"], "channel": "fax"}}),
    ("impossible place", lambda d: {"json": {"input": d["genuine"], "location": {"lat": 91, "lng": 0}}}),
    ("a list", lambda d: {"json": [d["genuine"]]}),
    ("not JSON", lambda d: {"data": b"{input", "content_type": "application/json"}),
    ("a form", lambda d: {"data": {"input": d["genuine"]}}),
    ("too large", lambda d: {"json": {"input": d["genuine"], "pad": "x" * 20_000}}),
    ("nested deep", lambda d: {"json": {"input": d["genuine"], "x": json.loads("[" * 40 + "]" * 40)}}),
]
GETS: list[tuple[str, Callable[[dict[str, str]], str], dict[str, Any]]] = [
    ("genuine", lambda d: d["genuine"], {}),
    ("never issued", lambda d: d["not_found"], {}),
    ("revoked certificate", lambda d: d["certificate_revoked"], {}),
    ("too long", lambda d: "1" * 3000, {}),
    ("not a code", lambda d: "有机码", {}),
    ("percent-encoded", lambda d: "%E6%9C%89%E6%9C%BA%E7%A0%81" + d["genuine"], {}),
    # No route of Flask's matches a newline: a 404 there, not the code without it.
    ("a newline in it", lambda d: d["genuine"] + "%0A", {}),
    # A GET's body is bounded as a POST's is (a 413).
    ("with a large body", lambda d: d["genuine"], {"data": b"x" * 20_000, "content_type": "text/plain"}),
]


@pytest.fixture
def demo(any_app: Flask) -> dict[str, str]:
    return seed(container(any_app).admin, date.today())


@pytest.mark.parametrize("name", [n for n, _ in REQUESTS])
def test_a_post_is_answered_as_flasks_own_route_answers_it(
    any_app: Flask, demo: dict[str, str], name: str
) -> None:
    make = dict(REQUESTS)[name]
    flask_answer = Client(_lane(any_app).app).post("/api/v1/verify", **make(demo))
    lane_answer = any_app.test_client().post("/api/v1/verify", **make(demo))
    assert _answer(lane_answer) == _answer(flask_answer)
    assert lane_answer.headers["X-Request-Id"]


@pytest.mark.parametrize("name", [n for n, _, _ in GETS])
def test_a_get_is_answered_as_flasks_own_route_answers_it(
    any_app: Flask, demo: dict[str, str], name: str
) -> None:
    code_of, extra = next((c, e) for n, c, e in GETS if n == name)
    path = "/api/v1/codes/" + code_of(demo)
    flask_answer = Client(_lane(any_app).app).get(path, **extra)
    lane_answer = any_app.test_client().get(path, **extra)
    assert _answer(lane_answer) == _answer(flask_answer)


def test_a_content_length_that_is_no_number_is_flasks_400(embedded_app: Flask) -> None:
    # str.isdigit() holds for "²"; int() does not take it.
    given: dict[str, Any] = {
        "data": b"{}",
        "content_type": "application/json",
        "environ_overrides": {"CONTENT_LENGTH": "²"},
    }
    flask_answer = Client(_lane(embedded_app).app).post("/api/v1/verify", **given)
    lane_answer = embedded_app.test_client().post("/api/v1/verify", **given)
    assert _answer(lane_answer) == _answer(flask_answer)
    assert lane_answer.status_code == 400


def test_a_lookup_counts_in_the_same_windows_as_flasks_route(sqlite_url: str) -> None:
    # Rate limits on, no Redis: each worker counts in its own memory (webapp.limits).
    app = make_app(settings_for(sqlite_url, rate_limits=True))
    demo = seed(container(app).admin, date.today())
    counted = app.extensions["verify_limits"].fallback.storage
    windows = []
    for http in (app.test_client(), Client(_lane(app).app)):
        counted.reset()
        for extra in ({}, {"json": {"client": "zz"}}):  # a body's client id has windows of its own
            http.get("/api/v1/codes/" + demo["genuine"], environ_base={"REMOTE_ADDR": "10.7.1.1"}, **extra)
            http.post(
                "/api/v1/verify", json={"input": demo["genuine"]}, environ_base={"REMOTE_ADDR": "10.7.1.2"}
            )
        windows.append(sorted(counted.storage))
    assert windows[0] == windows[1]
    assert any("public.verify:client/c:zz" in w for w in windows[0])


def test_the_lane_serves_the_verify_requests_and_flask_the_rest(
    any_app: Flask, demo: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    served: list[str] = []
    for endpoint in ("public.verify", "public.get_code"):
        view = any_app.view_functions[endpoint]

        def counted(*args: Any, _view: Any = view, _name: str = endpoint, **kwargs: Any) -> Any:
            served.append(_name)
            return _view(*args, **kwargs)

        monkeypatch.setitem(any_app.view_functions, endpoint, counted)
    http = any_app.test_client()
    assert http.post("/api/v1/verify", json={"input": demo["genuine"]}).status_code == 200
    assert http.get("/api/v1/codes/" + demo["genuine"]).status_code == 200
    assert http.post("/api/v1/verify", json={"input": "12345"}).status_code == 200
    assert served == []
    # What the lane is not sure of, Flask serves: a JSON media type of another name, a
    # body with a byte-order mark, a code holding a slash.
    body = json.dumps({"input": demo["genuine"]}).encode()
    assert http.post("/api/v1/verify", data=body, content_type="application/vnd.x+json").status_code == 200
    assert (
        http.post("/api/v1/verify", data=b"\xef\xbb\xbf" + body, content_type="application/json").status_code
        == 200
    )
    assert http.get("/api/v1/codes/https://x.example/t/" + demo["genuine"]).status_code == 200
    assert served == ["public.verify", "public.verify", "public.get_code"]


def test_an_unexpected_error_in_the_lane_is_a_logged_500_problem(
    embedded_app: Flask, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("boom")

    monkeypatch.setattr(container(embedded_app).verify, "verify", broken)
    resp = embedded_app.test_client().post("/api/v1/verify", json={"input": "012326000000000001"})
    assert resp.status_code == 500
    assert resp.content_type == "application/problem+json"
    assert resp.get_json()["code"] == "internal_error"
    assert resp.get_json()["instance"] == "/api/v1/verify"
    assert resp.headers["X-Frame-Options"] == "DENY"
    assert any(r.getMessage() == "unhandled error" for r in caplog.records)
