"""A flag's page and the code lookup in a real browser: the evidence (record, travel map,
timeline, the scans that raised the flag, a shopper's report with its photo, the scans
since the flag), a review from the flag's page, the lookup of a code in scope and of one
outside it. No console errors; screenshots of each page."""

from __future__ import annotations

import io
from typing import Any

from PIL import Image

from tests.browser.conftest import Dashboard, shoot, sign_in
from webapp import container


def _report(dashboard: Dashboard, code: str) -> None:
    """A shopper's report with a photo, through the shoppers' use case (as the web form)."""
    photo = io.BytesIO()
    Image.new("RGB", (320, 240), (200, 60, 40)).save(photo, format="JPEG")
    container(dashboard.app).shoppers.report(
        "web:visitor-1",
        code,
        "标签印刷模糊，疑似假货",
        "杭州某超市",
        30.27,
        120.15,
        photo.getvalue(),
        "image/jpeg",
        channel="web",
    )


def _open_copied_flag(tab: Any, dashboard: Dashboard) -> None:
    copied = dashboard.codes["suspicious (copied)"]
    tab.goto(dashboard.base + "/dashboard/flags?rule=distinct_scanners")
    tab.click(f"#flag-table a:has-text('{copied}')")
    tab.wait_for_selector("#record")


def test_a_flags_page_shows_its_evidence_and_an_analyst_confirms_it_there(
    tab: Any, dashboard: Dashboard
) -> None:
    copied = dashboard.codes["suspicious (copied)"]
    _report(dashboard, copied)
    sign_in(tab, dashboard, "analyst")
    _open_copied_flag(tab, dashboard)
    assert copied in tab.inner_text("h1")
    record = tab.inner_text("#record")
    assert "有机大米" in record and "0123OP" in record and "可疑" in record  # the answer now
    assert int(tab.inner_text("#stat-scans")) == 5
    timeline = tab.inner_text("#timeline")
    assert "首次扫码" in timeline and "标记产生" in timeline and "消费者举报" in timeline
    assert tab.locator("#scan-table tbody tr").count() == 5
    assert tab.locator("#scan-table .badge", has_text="触发标记").count() >= 3
    # The report's photo is served to the signed-in scope.
    img = tab.locator("#reports img").first
    tab.wait_for_function("img => img.complete && img.naturalWidth === 320", arg=img.element_handle())
    # The travel map draws (ECharts on the vendored China map).
    tab.wait_for_selector("#travel-map[data-ready='1'] canvas")
    shoot(tab, "dashboard_flag_page")
    tab.fill("#note", "试买确认仿冒")
    with tab.expect_navigation():
        tab.click("#confirm-flag")
    assert tab.inner_text("#flag-status") == "已确认"
    assert "试买确认仿冒" in tab.inner_text("#timeline")
    assert tab.problems == []


def test_a_viewer_reads_a_flags_page_without_review_controls(tab: Any, dashboard: Dashboard) -> None:
    sign_in(tab, dashboard, "viewer")
    _open_copied_flag(tab, dashboard)
    assert tab.locator("#review-form").count() == 0
    assert tab.problems == []


def test_another_organization_gets_no_flag_page_and_no_photo(tab: Any, dashboard: Dashboard) -> None:
    copied = dashboard.codes["suspicious (copied)"]
    _report(dashboard, copied)
    ids = [
        f["id"] for f in container(dashboard.app).scan_sql.list_flags(None)["items"] if f["code"] == copied
    ]
    sign_in(tab, dashboard, "other")
    for flag_id in ids:
        answer = tab.goto(f"{dashboard.base}/dashboard/flags/{flag_id}")
        assert answer.status == 404
    photo = tab.request.get(dashboard.base + "/dashboard/reports/1/photo")
    assert photo.status == 404
    # Only the console's notes of the 404 answers.
    assert all("404" in p for p in tab.problems)


def test_code_lookup_shows_the_record_and_aggregated_history_of_a_code_in_scope(
    tab: Any, dashboard: Dashboard
) -> None:
    copied = dashboard.codes["suspicious (copied)"]
    sign_in(tab, dashboard, "body")
    tab.click("nav a[href='/dashboard/lookup']")
    tab.fill("#code", copied)
    tab.click(".lookup-form button[type=submit]")
    tab.wait_for_selector("#record")
    assert tab.inner_text("#lookup-scans") == "5"
    assert tab.locator("#places-table tbody tr").count() == 5
    assert "多人扫码" in tab.inner_text("#lookup-flags")
    page = tab.content()
    assert "demo-shopper" not in page  # no scanner, hashed or not
    shoot(tab, "dashboard_code_lookup")
    # A code of another body's numbering is not in this scope; not a code at all is said so.
    tab.fill("#code", "045626000000000001")
    tab.click(".lookup-form button[type=submit]")
    assert "您的范围内没有编码" in tab.inner_text("#lookup-error")
    tab.fill("#code", "12345")
    tab.click(".lookup-form button[type=submit]")
    assert "不是编码" in tab.inner_text("#lookup-error")
    assert all("40" in p for p in tab.problems)  # the console's notes of the 404 and 400


def test_a_flags_page_and_the_lookup_fit_a_tablet(browser: Any, dashboard: Dashboard) -> None:
    context = browser.new_context(locale="zh-CN", viewport={"width": 768, "height": 1024})
    page = context.new_page()
    sign_in(page, dashboard, "analyst")
    _open_copied_flag(page, dashboard)
    page.wait_for_selector("#travel-map[data-ready='1'] canvas")
    assert page.evaluate("document.documentElement.scrollWidth") <= 768
    shoot(page, "dashboard_flag_page_tablet")
    page.goto(dashboard.base + "/dashboard/lookup?code=" + dashboard.codes["suspicious (copied)"])
    assert page.evaluate("document.documentElement.scrollWidth") <= 768
    context.close()
