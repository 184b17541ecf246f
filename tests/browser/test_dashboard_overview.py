"""The Overview page in a real browser: its charts and China map draw from the aggregates with
no console errors or CSP violations, for an account of everything and of one organization
(which sees only its own), in Chinese and English, on a laptop and a tablet."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from anomaly.events import ScanEvent
from domain.scans import Flag
from tests.browser.conftest import Dashboard, shoot, sign_in
from webapp import container

PLACES = [
    ("杭州市", "浙江省"),
    ("上海市", "上海市"),
    ("北京市", "北京市"),
    ("广州市", "广东省"),
    ("成都市", "四川省"),
    ("哈尔滨市", "黑龙江省"),
    ("武汉市", "湖北省"),
    ("西安市", "陕西省"),
]


@pytest.fixture
def busy(dashboard: Dashboard) -> Dashboard:
    """A month of scans of the demo's codes across cities, and flags on them: what the
    worker would have counted (written through the same archive)."""
    sql = container(dashboard.app).scan_sql
    now = datetime.now(UTC)
    codes = [
        (dashboard.codes["genuine"], "genuine"),
        (dashboard.codes["genuine (legacy 17-digit)"], "genuine"),
        (dashboard.codes["certificate_suspended"], "certificate_suspended"),
        (dashboard.codes["not_found"], "not_found"),
        (dashboard.codes["suspicious (copied)"], "suspicious"),
    ]
    events = []
    for i in range(240):
        code, verdict = codes[(i * 7) % len(codes)]
        city, province = PLACES[(i * 5 + i // 9) % len(PLACES)]
        # Twenty days at most: every scan inside the default 30-day window whatever the
        # hour. Three hours apart reached 29.9 days back, and the window starts at a China
        # calendar day, so just after midnight in China the oldest two fell out of it.
        at = now - timedelta(hours=2 * i)
        events.append(
            ScanEvent(f"busy-{i}", code, at, "qr", verdict, f"c{i % 40}", None, None, None, city, province)
        )
    sql.write_events(events)
    sql.upsert_flag(dashboard.codes["genuine"], Flag("velocity", "warn", now - timedelta(days=3), {}))
    sql.upsert_flag(
        dashboard.codes["certificate_suspended"], Flag("off_market", "warn", now - timedelta(days=9), {})
    )
    return dashboard


def drawn(tab: Any) -> None:
    """Wait until every chart has drawn (the map after its GeoJSON arrived)."""
    tab.wait_for_selector("html[data-overview=drawn]")
    tab.wait_for_selector("#chart-map[data-drawn=true], #chart-map[data-empty=true]", timeout=15_000)


def canvases(tab: Any) -> dict[str, int]:
    ids = ["chart-scans", "chart-flags", "chart-map", "chart-certificates", "chart-products", "chart-gauge"]
    return {i: tab.locator(f"#{i} canvas").count() for i in ids}


def test_everything_draws_every_chart_and_the_map_with_no_console_errors(tab: Any, busy: Dashboard) -> None:
    tab.goto(busy.base + "/dashboard/overview")
    sign_in(tab, busy, "admin")
    if "/dashboard/overview" not in tab.url:
        tab.goto(busy.base + "/dashboard/overview")
    drawn(tab)
    assert tab.inner_text("h1") == "概览"
    assert all(n >= 1 for n in canvases(tab).values()), canvases(tab)
    assert tab.get_attribute("#chart-map", "data-drawn") == "true"
    # Totals come from the aggregates: the demo's copied code's five scans and the 240 above.
    assert int(tab.inner_text("[data-total=scans]").replace(",", "")) >= 240
    assert int(tab.inner_text("[data-total=flags]").replace(",", "")) >= 2
    assert "浙江省" in tab.inner_text(".map-table")
    # Charts that draw nothing say so rather than staying blank; these all have numbers.
    assert tab.locator(".chart[data-empty=true]").count() == 0
    shoot(tab, "dashboard_overview_laptop")
    # Another period is a link (keyboard reachable), and the page answers for it.
    tab.click("a.period:has-text('7')")
    drawn(tab)
    assert tab.get_attribute("a.period.current", "aria-current") == "true"
    assert "days=7" in tab.url
    assert tab.problems == []


def test_an_organization_sees_only_its_own_and_a_tablet_fits(browser: Any, busy: Dashboard) -> None:
    context = browser.new_context(locale="zh-CN", viewport={"width": 820, "height": 1180})
    page = context.new_page()
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.goto(busy.base + "/dashboard/overview?days=30")
    sign_in(page, busy, "other")  # the suspended certificate's holder
    if "/dashboard/overview" not in page.url:
        page.goto(busy.base + "/dashboard/overview?days=30")
    drawn(page)
    table = page.inner_text(".map-table")
    scans = int(page.inner_text("[data-total=scans]").replace(",", ""))
    # Only its own code's scans (every fifth of the 240) and flag, none of the demo holder's.
    assert scans == sum(1 for i in range(240) if (i * 7) % 5 == 2)
    assert page.inner_text("[data-total=flags]") == "1"
    assert table.count("\n") <= len(PLACES) + 1
    # The gauge: the demo holder's rice is not its product; its own scans were not genuine.
    assert "有机大米" not in page.inner_text(".gauge-table")
    assert page.evaluate("document.documentElement.scrollWidth") <= 820
    shoot(page, "dashboard_overview_tablet")
    assert problems == []
    context.close()


def test_english_on_request(tab: Any, busy: Dashboard) -> None:
    tab.goto(busy.base + "/dashboard/overview")
    sign_in(tab, busy, "analyst")
    tab.goto(busy.base + "/dashboard/lang/en?next=/dashboard/overview")
    drawn(tab)
    assert tab.inner_text("h1") == "Overview"
    assert "Over-quantity gauge" in tab.inner_text("#h-gauge")
    assert tab.problems == []


def test_a_period_not_offered_is_refused(tab: Any, busy: Dashboard) -> None:
    sign_in(tab, busy, "viewer")
    answer = tab.request.get(busy.base + "/dashboard/overview?days=13")
    assert answer.status == 400
