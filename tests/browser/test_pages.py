"""The shopper's pages in a real browser: Debian's chromium driven by Playwright (launched
by path; Playwright's own browser download cannot run here). The app is served by a real
HTTP server in a thread, on the embedded deployment with the demo data.

BROWSER_SHOTS=<dir> keeps a screenshot of every page for a person to look at.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
from flask import Flask
from werkzeug.serving import make_server

from webapp import container
from webapp.demo import seed


@pytest.fixture
def site(embedded_app: Flask) -> Iterator[tuple[str, dict[str, str]]]:
    codes = seed(container(embedded_app).admin, date.today())
    server = make_server("127.0.0.1", 0, embedded_app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}", codes
    finally:
        server.shutdown()
        thread.join(5)


@pytest.fixture
def page(browser, request: pytest.FixtureRequest):  # type: ignore[no-untyped-def]
    context = browser.new_context(locale="zh-CN", viewport={"width": 390, "height": 844})
    tab = context.new_page()
    tab.problems = []  # console errors and CSP violations: a finished page has none
    tab.on("console", lambda m: tab.problems.append(m.text) if m.type == "error" else None)
    tab.on("pageerror", lambda e: tab.problems.append(str(e)))
    yield tab
    shots = os.environ.get("BROWSER_SHOTS")
    if shots:
        Path(shots).mkdir(parents=True, exist_ok=True)
        tab.screenshot(path=str(Path(shots) / f"{request.node.name}.png"), full_page=True)
    context.close()


def _scans(page) -> str:  # type: ignore[no-untyped-def]
    return str(page.inner_text("#scans"))


def test_a_shopper_types_a_code_and_sees_it_genuine_with_this_check_counted(page, site) -> None:  # type: ignore[no-untyped-def]
    base, codes = site
    page.goto(base + "/")
    page.fill("input[name=code]", codes["genuine"])
    page.click("button[type=submit]")
    page.wait_for_url(f"**/search?code={codes['genuine']}")
    assert "真品" in page.inner_text(".badge")
    # Rendered by the server with this check counted: no script changes it afterwards.
    assert "这是该码的第一次查询，就是您这次" in _scans(page)
    assert page.locator("script").count() == 0
    assert page.problems == []


def test_a_shopper_types_the_identity_code_of_another_label_and_is_told(page, site) -> None:  # type: ignore[no-untyped-def]
    """Issue 17: the 有机码 of one label with the identity code of another (a label made of
    two) is suspicious; the shopper's own typing mistake in it is sent back."""
    base, codes = site
    page.goto(base + "/")
    page.fill("input[name=code]", codes["genuine"])
    page.fill("input[name=identity]", "12345")
    page.click("button[type=submit]")
    assert page.inner_text("#lookup-error") == "身份码是标签上印的9位数字。"
    assert page.input_value("input[name=code]") == codes["genuine"]
    page.fill("input[name=identity]", "123 456 789")
    page.click("button[type=submit]")
    page.wait_for_url("**/search?code=*&identity=*")
    assert "两码不符" in page.inner_text(".badge")
    assert "同一枚标志" in page.inner_text("main")
    assert page.problems == []


def test_a_label_url_opens_the_answer_and_a_reload_is_not_a_second_scan(page, site) -> None:  # type: ignore[no-untyped-def]
    base, codes = site
    page.goto(f"{base}/c/{codes['voided']}")
    assert "已作废" in page.inner_text(".badge")
    first = _scans(page)
    assert "第一次查询" in first
    page.reload()
    page.goto(f"{base}/c/{codes['voided']}")
    assert _scans(page) == first  # the same visitor, within ten minutes: the same check
    assert page.problems == []


def test_an_empty_search_is_stopped_on_the_home_page_with_a_message(page, site) -> None:  # type: ignore[no-untyped-def]
    base, _ = site
    page.goto(base + "/")
    page.click("button[type=submit]")
    assert page.inner_text("#lookup-error") == "请输入标志上的编码。"
    assert page.url == base + "/"
    assert page.problems == []


def test_an_over_long_search_is_stopped_on_the_home_page_with_a_message(page, site) -> None:  # type: ignore[no-untyped-def]
    base, _ = site
    page.goto(base + "/")
    page.fill("input[name=code]", "1" * 2100)
    page.click("button[type=submit]")
    assert "输入太长了" in page.inner_text("#lookup-error")
    assert page.url == base + "/"
    # Without the script (or past it) the server says the same on a page, never JSON.
    page.goto(base + "/search?code=" + "1" * 2100)
    assert "输入太长了" in page.inner_text("#lookup-error")
    page.goto(base + "/c/")
    assert "请输入标志上的编码" in page.inner_text("#lookup-error")
    assert all("400" in p for p in page.problems)  # only the console's note of the 400s


def test_a_bq_code_typed_in_the_wrong_case_gets_a_hint_and_the_right_case_the_trace(page, site) -> None:  # type: ignore[no-untyped-def]
    base, codes = site
    page.goto(base + "/")
    assert "区分大小写" in page.inner_text("#formats")
    page.fill("input[name=code]", codes["genuine (BQ A code)"].lower())
    page.click("button[type=submit]")
    page.wait_for_selector("#case-hint")
    assert "查无此码" in page.inner_text(".badge") and "大小写" in page.inner_text("#case-hint")
    page.goto(base + "/")
    page.fill("input[name=code]", codes["genuine (BQ A code)"])
    page.click("button[type=submit]")
    page.wait_for_selector(".badge")
    assert "真品" in page.inner_text(".badge") and "五优稻4号" in page.inner_text("body")
    assert page.problems == []


def test_a_shopper_reports_a_suspected_fake_with_a_photo(page, site, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from PIL import Image

    base, codes = site
    photo = tmp_path / "label.jpg"
    Image.new("RGB", (320, 240), (180, 30, 30)).save(photo, "JPEG")
    page.goto(f"{base}/c/{codes['genuine']}")
    page.click("#report summary")
    page.fill("#r-text", "标签印刷模糊，价格只有正常的一半")
    page.fill("#r-shop", "某某生鲜超市")
    page.fill("#r-place", "杭州市西湖区")
    page.set_input_files("#r-photo", str(photo))
    page.click("#report button[type=submit]")
    page.wait_for_url("**/reported?code=*")
    assert "举报已提交" in page.inner_text(".badge")
    assert page.problems == []


def test_the_api_docs_render_every_operation_from_local_assets(page, site) -> None:  # type: ignore[no-untyped-def]
    base, _ = site
    external: list[str] = []
    page.on("request", lambda r: None if r.url.startswith(base) else external.append(r.url))
    page.goto(base + "/docs")
    page.wait_for_selector(".opblock-summary-path")
    assert page.locator(".opblock").count() > 10
    assert external == []  # no CDN: nothing outside this server is fetched
    assert page.problems == []
