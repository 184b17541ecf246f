"""The shopper's web pages over HTTP (issue 19): China time, the visitor's own checks, a
reload that is no new scan, channels, friendly pages for bad input, reports from the web.

A browser opening a page sends Fetch Metadata; `NAV` is what Chromium sends for a
top-level navigation (tests/browser/ drives a real one through the same paths)."""

from __future__ import annotations

import io
import re
from datetime import UTC, date, datetime
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from PIL import Image

from cache.recent_visits import MemoryRecentVisits
from services.verify import VerifyRequest
from tests.conftest import ADMIN
from webapp import container
from webapp.demo import ALL, seed

NAV = {"Sec-Fetch-Mode": "navigate", "Sec-Fetch-Dest": "document", "Sec-Fetch-Site": "none"}
EN = {"Accept-Language": "en-US,en;q=0.9"}


def _demo(app: Flask, today: date | None = None) -> dict[str, str]:
    return seed(container(app).admin, today or date.today())


def _count(app: Flask, code: str) -> int:
    # Asked of the service: GET /api/v1/codes memoizes an answer for a few seconds.
    scans = container(app).verify.verify(VerifyRequest(input=code), record=False).scans
    return scans.count if scans else 0


def _scans_line(html: str) -> str:
    found = re.search(r'<p id="scans"[^>]*>(.*?)</p>', html, re.S)
    assert found, html
    return found.group(1)


def test_a_first_check_at_00_30_china_time_shows_the_china_date_and_time(any_app: Flask) -> None:
    # 2026-12-02 16:30 UTC is 2026-12-03 00:30 in Beijing: UTC's date is "yesterday".
    frozen = datetime(2026, 12, 2, 16, 30, tzinfo=UTC)
    demo = _demo(any_app, date(2026, 12, 3))
    container(any_app).verify.clock = lambda: frozen
    html = any_app.test_client().get(f"/c/{demo['genuine']}", headers=NAV).get_data(as_text=True)
    line = _scans_line(html)
    assert "第一次查询，就是您这次（2026-12-03 00:30" in line, line
    assert "2026-12-02" not in line
    # The API keeps the instant in UTC, with its offset.
    api = any_app.test_client().get(f"/api/v1/codes/{demo['genuine']}").get_json()
    assert api["scans"]["first_at"] == "2026-12-02T16:30:00Z"


def test_a_certificate_ends_at_midnight_china_time_not_utc(embedded_app: Flask) -> None:
    _demo(embedded_app, date(2026, 12, 3))  # the certification body
    c = container(embedded_app)
    until = date(2026, 12, 2)
    rows = [
        {
            "number": "0123OP2600031",
            "body_code": "0123",
            "holder": "浙江安吉溪龙白茶有限公司",
            "kind": "organic",
            "valid_from": "2025-12-03",
            "valid_until": until.isoformat(),
            "status": "valid",
            "products": [{"name": "有机白茶", "certified_tonnes": "2"}],
        }
    ]
    c.admin.upsert_certificates(rows, ALL)
    code = "012325000000000031"
    c.admin.import_codes(
        [{"code": code, "certificate": "0123OP2600031", "product": "有机白茶", "issued_on": "2025-12-20"}],
        ALL,
    )
    # 00:30 on 3 December in China: the certificate's last day (2 December) is over there.
    c.verify.clock = lambda: datetime(2026, 12, 2, 16, 30, tzinfo=UTC)
    body = embedded_app.test_client().get(f"/api/v1/codes/{code}").get_json()
    assert body["verdict"] == "certificate_expired"


def test_a_reload_within_ten_minutes_is_not_a_second_scan(any_app: Flask) -> None:
    demo = _demo(any_app)
    code = demo["genuine"]
    http = any_app.test_client()
    first = http.get(f"/c/{code}", headers=NAV)
    again = http.get(f"/c/{code}", headers=NAV)
    assert _count(any_app, code) == 1
    # The same answer on both: one check, and it was this visitor's.
    assert "这是该码的第一次查询，就是您这次" in _scans_line(again.get_data(as_text=True))
    assert _scans_line(first.get_data(as_text=True)) == _scans_line(again.get_data(as_text=True))
    # Another visitor (no cookie) is a new check; the first visitor's count stays theirs.
    other = any_app.test_client().get(f"/c/{code}", headers=NAV).get_data(as_text=True)
    assert "该码已被查询 2 次" in _scans_line(other) and "其中 1 次是您本人" in _scans_line(other)
    en = any_app.test_client().get(f"/c/{code}", headers={**NAV, **EN}).get_data(as_text=True)
    assert "This code was checked 3 times" in _scans_line(en) and "1 of them were you" in _scans_line(en)


def test_the_same_visitor_after_the_window_is_a_new_scan(embedded_app: Flask) -> None:
    demo = _demo(embedded_app)
    now = [0.0]
    embedded_app.extensions["web_visits"] = MemoryRecentVisits(b"k", clock=lambda: now[0])
    http = embedded_app.test_client()
    http.get(f"/c/{demo['genuine']}", headers=NAV)
    now[0] = 599.0
    http.get(f"/c/{demo['genuine']}", headers=NAV)
    assert _count(embedded_app, demo["genuine"]) == 1
    now[0] = 601.0
    page = http.get(f"/c/{demo['genuine']}", headers=NAV).get_data(as_text=True)
    assert _count(embedded_app, demo["genuine"]) == 2
    assert "该码已被查询 2 次" in _scans_line(page) and "都是您本人" in _scans_line(page)


@pytest.mark.parametrize(
    ("method", "headers"),
    [
        ("GET", {}),  # a link preview, a chat unfurler, curl: no Fetch Metadata
        ("GET", {**NAV, "Sec-Purpose": "prefetch"}),  # Chromium's prefetch
        ("GET", {**NAV, "Sec-Purpose": "prefetch;prerender"}),  # speculation rules
        ("GET", {**NAV, "Purpose": "prefetch"}),  # older prefetch header
        ("GET", {"Sec-Fetch-Mode": "no-cors", "Sec-Fetch-Dest": "image"}),  # embedded as an image
        ("HEAD", NAV),
    ],
)
def test_previews_prefetches_and_head_requests_record_no_scan(
    any_app: Flask, method: str, headers: dict[str, str]
) -> None:
    demo = _demo(any_app)
    resp = any_app.test_client().open(f"/c/{demo['genuine']}", method=method, headers=headers)
    assert resp.status_code == 200
    assert _count(any_app, demo["genuine"]) == 0
    # A person opening the page is a scan.
    any_app.test_client().get(f"/c/{demo['genuine']}", headers=NAV)
    assert _count(any_app, demo["genuine"]) == 1


def test_the_page_carries_the_answer_with_no_script_to_change_it(any_app: Flask) -> None:
    demo = _demo(any_app)
    html = any_app.test_client().get(f"/c/{demo['suspicious (copied)']}", headers=NAV).get_data(as_text=True)
    assert "<script" not in html
    assert "真品" in html or "疑似" in html
    assert "第一次查询" in _scans_line(html)


def test_the_channel_says_how_the_code_arrived(embedded_app: Flask) -> None:
    demo = _demo(embedded_app)
    typed, scanned = embedded_app.test_client(), embedded_app.test_client()
    assert typed.get(f"/search?code={demo['voided']}", headers=NAV).status_code == 200
    assert scanned.get(f"/c/{demo['genuine']}", headers=NAV).status_code == 200
    channels = {
        e["code"]: e["channel"]
        for e in container(embedded_app).scan_sql.iter_events()
        if e["code"] in (demo["voided"], demo["genuine"])
    }
    assert channels == {demo["voided"]: "web", demo["genuine"]: "qr"}


def test_the_visitor_cookie_is_first_party_httponly_lax_and_secure_over_https(embedded_app: Flask) -> None:
    demo = _demo(embedded_app)
    plain = embedded_app.test_client().get(f"/c/{demo['genuine']}", headers=NAV)
    cookie = plain.headers["Set-Cookie"]
    assert re.match(r"vid=[A-Za-z0-9_-]{22};", cookie), cookie
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" not in cookie
    secure = embedded_app.test_client().get(
        f"/c/{demo['genuine']}", headers=NAV, base_url="https://verify.example.cn"
    )
    assert "Secure" in secure.headers["Set-Cookie"]
    assert plain.headers["Cache-Control"] == "no-store"


def _friendly(resp: Any, status: int, *texts: str) -> None:
    assert resp.status_code == status, resp.get_data(as_text=True)[:300]
    assert resp.mimetype == "text/html"
    html = resp.get_data(as_text=True)
    for text in texts:
        assert text in html, (text, html[:600])
    assert not html.lstrip().startswith("{")


@pytest.mark.parametrize(
    ("path", "zh", "en"),
    [
        ("/c/", "请输入标志上的编码", "Enter the code printed on the label"),
        ("/c", "请输入标志上的编码", "Enter the code printed on the label"),
        ("/search?code=", "请输入标志上的编码", "Enter the code printed on the label"),
        ("/search?code=%20%20", "请输入标志上的编码", "Enter the code printed on the label"),
        ("/search?code=" + "1" * 2049, "输入太长了", "That is too long"),
        ("/c/" + "1" * 2049, "输入太长了", "That is too long"),
        ("/c/?code=" + "1" * 2049, "输入太长了", "That is too long"),
    ],
)
def test_every_bad_input_on_the_web_paths_answers_a_friendly_page(
    embedded_app: Flask, path: str, zh: str, en: str
) -> None:
    http = embedded_app.test_client()
    _friendly(http.get(path), 400, zh, 'lang="zh-CN"', 'id="lookup"')
    _friendly(http.get(path, headers=EN), 400, en, 'lang="en"')


def test_a_rate_limited_page_is_friendly_and_says_when_to_come_back(embedded_app: Flask) -> None:
    from domain.errors import TooManyRequests

    def refuse(*_: object, **__: object) -> None:
        raise TooManyRequests("guessing", code="enumeration_throttled", retry_after_s=3600)

    container(embedded_app).verify.verify = refuse  # type: ignore[method-assign, assignment]
    resp = embedded_app.test_client().get("/c/012326999999999999", headers=NAV)
    _friendly(resp, 429, "一小时后再试")
    assert resp.headers["Retry-After"] == "3600"


def test_a_bq_code_in_the_wrong_case_gets_a_case_hint(any_app: Flask) -> None:
    demo = _demo(any_app)
    http = any_app.test_client()
    wrong = http.get(f"/c/{demo['genuine (BQ A code)'].upper()}", headers=NAV).get_data(as_text=True)
    assert 'id="case-hint"' in wrong and "大小写" in wrong
    right = http.get(f"/search?code={demo['genuine (BQ A code)']}", headers=NAV).get_data(as_text=True)
    assert "真品" in right and 'id="case-hint"' not in right
    api = http.post("/api/v1/verify", json={"input": demo["genuine (BQ A code)"].lower()}, headers=EN)
    assert "upper and lower case" in api.get_json()["message"]


def test_a_not_found_answer_has_no_scan_history(any_app: Flask) -> None:
    demo = _demo(any_app)
    body = (
        any_app.test_client()
        .post("/api/v1/verify", json={"input": demo["not_found"], "client": "a"})
        .get_json()
    )
    assert body["verdict"] == "not_found" and body["scans"] is None


def _jpeg() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (64, 48), (200, 40, 40)).save(out, "JPEG")
    return out.getvalue()


def _report(http: FlaskClient, fields: dict[str, Any], origin: str | None = "http://localhost") -> Any:
    headers = {"Origin": origin} if origin else {}
    return http.post("/report", data=fields, headers=headers, content_type="multipart/form-data")


def test_a_web_report_with_a_photo_reaches_the_brand_on_the_code_flag(any_app: Flask) -> None:
    demo = _demo(any_app)
    http = any_app.test_client()
    fields = {
        "code": demo["genuine"],
        "text": "包装印刷模糊，价格明显偏低",
        "shop": "某某生鲜超市",
        "place": "杭州市西湖区",
        "photo": (io.BytesIO(_jpeg()), "label.jpg"),
    }
    resp = _report(http, fields)
    assert resp.status_code == 303 and resp.headers["Location"].startswith("/reported?code=")
    _friendly(http.get(resp.headers["Location"]), 200, "举报已提交")
    flags = http.get("/api/v1/admin/flags?rule=shopper_report", headers=ADMIN).get_json()["items"]
    (flag,) = [f for f in flags if f["code"] == demo["genuine"]]
    (evidence,) = flag["evidence"]["reports"]
    assert evidence["channel"] == "web" and evidence["photo"] is True
    assert evidence["place"] == "杭州市西湖区" and evidence["shop"] == "某某生鲜超市"
    assert evidence["at"].endswith("Z")


def test_web_reports_are_refused_cross_site_empty_oversized_or_not_an_image(embedded_app: Flask) -> None:
    demo = _demo(embedded_app)
    http = embedded_app.test_client()
    base = {"code": demo["genuine"], "text": "可疑"}
    _friendly(_report(http, base, origin="https://evil.example"), 403, "请在查询结果页面上提交举报")
    _friendly(_report(http, base, origin=None), 403)
    _friendly(_report(http, {"code": demo["genuine"]}), 400, "至少一项")
    # Past 8 MB: refused from its Content-Length, before the body is read (raw bytes: the
    # test client would spool a large form to a temporary file of its own).
    big = (
        b'--b\r\nContent-Disposition: form-data; name="photo"; filename="big.jpg"\r\n'
        b"Content-Type: image/jpeg\r\n\r\n" + b"\xff\xd8\xff" + b"0" * (9 * 1024 * 1024) + b"\r\n--b--\r\n"
    )
    resp = http.post(
        "/report",
        data=big,
        content_type="multipart/form-data; boundary=b",
        headers={"Origin": "http://localhost"},
    )
    _friendly(resp, 413, "照片太大")
    text = {**base, "photo": (io.BytesIO(b"#!/bin/sh\necho hi\n"), "x.jpg")}
    _friendly(_report(http, text), 415, "照片格式不支持")
    _friendly(_report(http, {**base, "text": "x" * 2001}), 400)
    flags = http.get("/api/v1/admin/flags?rule=shopper_report", headers=ADMIN).get_json()["items"]
    assert flags == []


def test_public_json_bodies_are_bounded_to_a_few_kilobytes(any_app: Flask) -> None:
    http = any_app.test_client()
    padded = {"input": "012326000000000001", "pad": "x" * 20_000}
    resp = http.post("/api/v1/verify", json=padded)
    assert resp.status_code == 413 and resp.get_json()["code"] == "body_too_large"
    # The largest legitimate body (a 2,048-character input, all escaped) still passes.
    ok = http.post(
        "/api/v1/verify",
        data='{"input": "' + "\\u6709" * 2048 + '"}',
        content_type="application/json",
    )
    assert ok.status_code == 200, ok.get_data(as_text=True)


def test_the_openapi_servers_entry_follows_the_request_host(embedded_app: Flask) -> None:
    spec = (
        embedded_app.test_client().get("/openapi.json", base_url="https://verify.example.cn:8443").get_json()
    )
    assert spec["servers"] == [{"url": "https://verify.example.cn:8443"}]


def test_the_demo_data_reads_like_real_labels(embedded_app: Flask) -> None:
    demo = _demo(embedded_app)
    http = embedded_app.test_client()
    seen = []
    for name in ("genuine", "certificate_suspended", "certificate_expired", "conversion_certificate"):
        body = http.get(f"/api/v1/codes/{demo[name]}").get_json()
        holder = body["certificate"]["holder"]
        assert "（" not in holder and "示范" not in holder, holder  # no status notes in names
        assert re.search(r"[\u4e00-\u9fff]", body["product"]["label_spec"]), body["product"]
        seen.append((holder, body["product"]["name"]))
    # A tea company is certified for tea, not rice.
    assert ("山东日照青山茶业有限公司", "有机绿茶") in seen
    bq = http.get(f"/api/v1/codes/{demo['genuine (BQ A code)']}").get_json()
    assert bq["product"]["label_spec"] == "50×50毫米方形溯源防伪标签"


def test_a_typed_identity_code_is_checked_against_the_label(any_app: Flask) -> None:
    """Issue 17, item 7, on the web form: the identity code printed beside the 有机码, when
    the shopper types it too. The label's own passes; another label's makes the page say
    suspicious; something that is not an identity code is sent back with a message and
    what was typed."""
    demo = _demo(any_app)
    http = any_app.test_client()
    code = demo["genuine"]
    # The demo numbers its labels' identity codes from 100000001 (webapp/demo.py).
    own = f"{100_000_000 + int(code[-12:]) % 100_000_000:09d}"
    same = http.get(f"/search?code={code}&identity={own[:3]} {own[3:]}", headers=NAV)
    assert same.status_code == 200 and 'class="badge ok"' in same.get_data(as_text=True)
    other = http.get(f"/search?code={code}&identity=123456789", headers=NAV).get_data(as_text=True)
    assert 'class="badge bad"' in other or 'class="badge warn"' in other, other
    assert "同一枚标志" in other
    bad = http.get(f"/search?code={code}&identity=12345", headers=NAV)
    page = bad.get_data(as_text=True)
    assert bad.status_code == 400 and "身份码是标签上印的9位数字" in page
    assert f'value="{code}"' in page and 'value="12345"' in page
