"""Label issuance through the dashboard (issue 17, item 8), seed 000's story in a real
browser: the organization adds a product spec with a photo and orders labels; the order is
rejected automatically for quantity (the page says which product and by how much), it is
fixed and submitted again; the certification body approves it from its review queue,
allocates it for the printer's codes, imports the printer's file (its bad rows listed one by
one) and downloads the order sheet (opened with openpyxl), the printer's file and the CNCA
filing record; a code verifies genuine through the public API; the organization takes
labels into use by quantity and by identity range and rolls one record back; the body voids
the order, its code verifies `voided` and the quantity is returned. A viewer sees and cannot
act, another organization does not find the order, every change is in the audit log under
the account that made it, and no page has a console error, at laptop and tablet widths.
"""

from __future__ import annotations

import csv
import io
import secrets
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from openpyxl import load_workbook
from PIL import Image

from domain.bulk import Scope
from tests.browser.conftest import DEMO_ORG, PASSWORD, Dashboard, shoot, sign_in
from webapp import container

TABLET = {"width": 768, "height": 1024}
AGREEMENT = b"%PDF-1.4 signed mark-use agreement"


def _certificate() -> str:
    return f"0123OP{date.today().year % 100:02d}00017"  # the demo organization's (webapp/demo.py)


def _png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (120, 90), (31, 111, 67)).save(out, "PNG")
    return out.getvalue()


@pytest.fixture
def people(browser: Any, dashboard: Dashboard, request: pytest.FixtureRequest) -> Iterator[Any]:
    """open(who): a signed-in tab of one of the fixture's accounts (console errors noted)."""
    opened: list[tuple[str, Any, Any]] = []

    def open_tab(who: str) -> Any:
        context = browser.new_context(locale="zh-CN", viewport={"width": 1280, "height": 800})
        page = context.new_page()
        page.problems = []
        page.on("console", lambda m: page.problems.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: page.problems.append(str(e)))
        sign_in(page, dashboard, who)
        opened.append((who, context, page))
        return page

    yield open_tab
    for who, context, page in opened:
        shoot(page, f"{request.node.name}_{who.split('@')[0]}")
        context.close()


def _download(page: Any, selector: str) -> tuple[str, bytes]:
    with page.expect_download() as info:
        page.click(selector)
    download = info.value
    return download.suggested_filename, Path(download.path()).read_bytes()


def _verify(page: Any, site: Dashboard, code: str) -> str:
    got = page.request.post(site.base + "/api/v1/verify", data={"input": code})
    assert got.status == 200, got.text()
    return str(got.json()["verdict"])


def _quantity_row(page: Any, site: Dashboard) -> tuple[str, str]:
    page.goto(site.base + "/dashboard/quantities")
    row = page.locator('tr[data-product="有机大米"]').first
    return row.locator("td.used").inner_text(), row.locator("td.available").inner_text()


def _no_overflow(page: Any) -> None:
    """The page fits its width (a table may scroll inside its card, the page does not)."""
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= page.viewport_size["width"], width


def test_seed_000_story_through_the_dashboard(tab: Any, dashboard: Dashboard, people: Any) -> None:
    site = dashboard
    cert = _certificate()
    org = tab
    sign_in(org, site, "analyst")
    used_before, available_before = _quantity_row(org, site)
    assert available_before == "120.000" and used_before == "0.000"

    # Product spec with a photo of the labelled package.
    org.goto(site.base + "/dashboard/specs")
    org.select_option("#product", f"{cert}|有机大米")
    org.fill("#trade_name", "五常稻花香")
    org.fill("#package_spec", "5千克真空包装")
    org.fill("#weight_kg", "5")
    org.fill("#label_spec", "25×16毫米椭圆形")
    org.set_input_files("#photo", files=[{"name": "label.png", "mimeType": "image/png", "buffer": _png()}])
    org.click("#save-spec")
    assert "已保存" in org.inner_text(".flashes")
    row = org.locator("#spec-table tbody tr", has_text="五常稻花香")
    assert row.locator("img").count() == 1
    # Loaded (or failed: then complete with no width) before it is measured; a busy host
    # once measured it still loading.
    org.wait_for_function("document.querySelector('#spec-table img').complete")
    assert org.evaluate("document.querySelector('#spec-table img').naturalWidth") == 120
    shoot(org, "dashboard_issuing_specs")

    # An order over the certified quantity: 30,000 × 5 kg = 150 t of 120 t.
    org.goto(site.base + "/dashboard/orders")
    org.click("#new-order")
    spec_id = org.locator("#lines-0-spec_id option", has_text="五常稻花香").get_attribute("value")
    org.select_option("#lines-0-spec_id", spec_id)
    org.fill("#lines-0-quantity", "30000")
    org.fill("#lines-0-unit_price", "0.06")
    org.fill("#address", "黑龙江省哈尔滨市五常市龙泉路1号")
    org.fill("#postcode", "150200")
    org.fill("#contact", "王经理")
    org.fill("#phone", "0451-5555666")
    shoot(org, "dashboard_issuing_order_form")
    org.click("#save-submit")
    org.wait_for_selector("#auto-rejection")
    number = org.locator("h1 .mono").inner_text()
    assert org.inner_text("#order-status") == "自动审核不通过"
    over = org.locator("#auto-rejection .shortfalls tbody tr")
    assert over.count() == 1
    assert over.locator("th").inner_text() == "有机大米"
    assert over.locator("td.over").inner_text() == "30.000"
    shoot(org, "dashboard_issuing_auto_rejected")
    assert _quantity_row(org, site) == ("0.000", "120.000")  # nothing used by a rejected order

    # The signed mark-use agreement, attached while the order can still change.
    org.goto(f"{site.base}/dashboard/orders/{number}")
    org.select_option("#attachment-kind", "agreement")
    org.set_input_files(
        "#attachment-file", files=[{"name": "协议.pdf", "mimeType": "application/pdf", "buffer": AGREEMENT}]
    )
    org.click("#add-attachment")
    assert "附件已添加" in org.inner_text(".flashes")
    assert "签章的认证标志使用协议" in org.inner_text("#attachments")

    # Fixed: 20 labels, submitted again; auto-approved and no longer editable.
    org.goto(f"{site.base}/dashboard/orders/{number}")
    org.click("#fix-order")
    org.fill("#lines-0-quantity", "20")
    org.click("#save-submit")
    assert org.inner_text("#order-status") == "自动审核通过"
    assert org.locator("#edit-order").count() == 0 and org.locator("#submit-order").count() == 0
    assert _quantity_row(org, site) == ("0.100", "119.900")

    # A viewer of the organization sees the order and no form; another organization finds nothing.
    viewer = people("viewer")
    viewer.goto(f"{site.base}/dashboard/orders/{number}")
    assert viewer.inner_text("#order-status") == "自动审核通过"
    assert viewer.locator("main form").count() == 0
    # (Asked without opening a page: a refused page is a console error, which these tabs count.)
    assert viewer.request.get(f"{site.base}/dashboard/orders/new").status == 403
    token = viewer.locator("form.signout input[name=csrf_token]").get_attribute("value")
    refused = viewer.request.post(f"{site.base}/dashboard/orders/{number}/submit", form={"csrf_token": token})
    assert refused.status == 403
    other = people("other")
    assert other.request.get(f"{site.base}/dashboard/orders/{number}").status == 404
    other.goto(f"{site.base}/dashboard/orders")
    assert number not in other.inner_text("#order-table")
    # Nor does a certification body whose certificate it is not.
    c = container(site.app)
    c.admin.upsert_bodies([{"code": "0456", "legacy_code": "456", "name": "乙认证中心"}], Scope("all"))
    c.accounts.create_user("other-body@example.com", PASSWORD, "admin", "body", "0456")
    other_body = people("other-body@example.com")
    assert other_body.request.get(f"{site.base}/dashboard/orders/{number}").status == 404
    assert other_body.request.get(f"{site.base}/dashboard/orders/{number}/sheet.xlsx").status == 404
    other_body.goto(f"{site.base}/dashboard/orders")
    assert number not in other_body.inner_text("#order-table")

    # The certification body: its review queue opens first; approve, allocate for the printer.
    body = people("body")
    body.goto(site.base + "/dashboard/orders")
    assert body.locator('.tabs a[aria-current="page"]').inner_text().startswith("待审核")
    shoot(body, "dashboard_issuing_review_queue")
    body.click(f"#order-table a:text('{number}')")
    assert body.locator("#submit-order").count() == 0  # an organization's step
    body.click("#reject-order")  # without a reason
    assert "需要理由" in body.inner_text(".flashes")
    body.click("#approve-order")
    assert body.inner_text("#order-status") == "人工审核通过"
    body.check("#codes-printer")
    body.click("#allocate-order")
    assert body.inner_text("#order-status") == "已分配"
    segment = body.locator("#line-table .segment").inner_text()
    first, last = (int(x) for x in segment.split("–"))
    assert last - first + 1 == 20

    # The printer's file: 20 good rows, a stray identity and an identity twice.
    yy = date.today().year % 100
    codes = {ident: f"0123{yy:02d}{secrets.randbelow(10**12):012d}" for ident in range(first, last + 1)}
    rows = [f"{ident:09d},{code}" for ident, code in codes.items()]
    rows += [f"{last + 5:09d},0123{yy:02d}000000000001", f"{first:09d},0123{yy:02d}000000000002"]
    printer_file = ("identity_code,code\n" + "\n".join(rows)).encode()
    body.set_input_files(
        "#printer-file", files=[{"name": "printer.csv", "mimeType": "text/csv", "buffer": printer_file}]
    )
    body.click("#import-printer")
    assert "已载入 20 个码" in body.inner_text("#import-result")
    problems = body.locator("#import-errors tbody tr")
    assert problems.count() == 2
    assert "不在号段内" in problems.nth(0).inner_text() and "文件中重复" in problems.nth(1).inner_text()
    shoot(body, "dashboard_issuing_printer_import")

    # The order sheet (seed 000's layout), the printer's file and the filing record.
    name, data = _download(body, "#download-sheet")
    assert name == f"{number}.xlsx"
    sheet = load_workbook(io.BytesIO(data)).active
    assert sheet["A1"].value == "认证产品防伪追溯标志订单"
    assert (sheet["B2"].value, sheet["E2"].value) == (number, DEMO_ORG)
    assert sheet["B3"].value == "黑龙江省哈尔滨市五常市龙泉路1号" and sheet["L3"].value == "150200"
    line = [c.value for c in sheet[7]]
    assert line[0] == f"{number}-1" and line[1] == cert and line[8] == 20
    assert (line[10], line[11]) == (f"{first:09d}", f"{last:09d}")
    name, data = _download(body, "#download-printer")
    table = list(csv.DictReader(io.StringIO(data.decode("utf-8-sig"))))
    assert {int(r["identity_code"]): r["code"] for r in table} == codes
    name, data = _download(body, "#download-filing-xlsx")
    filing = [[c.value for c in r] for r in load_workbook(io.BytesIO(data)).active.iter_rows()]
    assert len(filing[0]) == 14 and filing[1][2] == cert and filing[1][6] == 20
    name, data = _download(body, "#download-filing-csv")
    assert data.decode("utf-8-sig").startswith("认证委托人机构代码")

    # The body reads the agreement; a printing loss voids that label's code.
    name, data = _download(body, "#attachments a")
    assert data == AGREEMENT and name.endswith(".pdf")
    body.fill("#loss-identities", f"{last:09d}")
    body.click("#record-losses")
    assert body.inner_text("#loss-list") == f"{last:09d}"
    assert _verify(body, site, codes[last]) == "voided"

    # A printed code verifies genuine at once.
    sample = codes[first + 10]
    assert _verify(body, site, sample) == "genuine"

    # The organization takes labels into use by quantity and by range, and rolls one back.
    org.goto(f"{site.base}/dashboard/orders/{number}")
    org.fill("#quantity-quantity", "5")
    org.fill("#quantity-batch", "WC-2026-01")
    org.fill("#quantity-person", "张三")
    org.click("#take-quantity")
    assert f"{first:09d}–{first + 4:09d}" in org.inner_text(".flashes")
    org.fill("#range-first", f"{first + 10:09d}")
    org.fill("#range-last", f"{first + 14:09d}")
    org.fill("#range-batch", "WC-2026-02")
    org.fill("#range-person", "李四")
    org.click("#take-range")
    stock = org.locator(f'#stock-table tr[data-label="{number}-1"]')
    assert (stock.locator(".in-use").inner_text(), stock.locator(".in-stock").inner_text()) == ("10", "10")
    assert org.locator("#use-table tbody tr").count() == 2
    shoot(org, "dashboard_issuing_use_records")
    org.locator("#use-table tbody tr", has_text="WC-2026-01").locator("button").click()
    assert "已回退" in org.inner_text(".flashes")
    assert stock.locator(".in-use").inner_text() == "5"
    assert org.locator("#use-table tbody tr").count() == 1
    assert org.locator("#void-form").count() == 0  # voiding is the body's

    # The order at a tablet's width: everything reachable, nothing wider than the screen.
    org.set_viewport_size(TABLET)
    org.goto(f"{site.base}/dashboard/orders/{number}")
    _no_overflow(org)
    shoot(org, "dashboard_issuing_order_tablet")
    org.set_viewport_size({"width": 1280, "height": 800})

    # The body voids the order (退订): the code verifies voided, the quantity comes back.
    body.goto(f"{site.base}/dashboard/orders/{number}")
    body.click(".void-card summary")
    body.fill("#void-reason", "企业退订")
    body.click("#void-order")
    assert body.inner_text("#order-status") == "已退订"
    assert _verify(body, site, sample) == "voided"
    assert _quantity_row(org, site) == ("0.000", "120.000")
    shoot(body, "dashboard_issuing_voided")

    # Every step in the audit log under the account that took it; the history names it too.
    audit = container(site.app).audit.entries(Scope("all"), target=f"order:{number}", limit=50)
    done = [(e["action"], e["actor_name"]) for e in reversed(audit)]
    org_login, body_login = site.logins["analyst"], site.logins["body"]
    assert done == [
        ("order.create", org_login),
        ("order.submit", org_login),
        ("order.attachment", org_login),
        ("order.edit", org_login),
        ("order.submit", org_login),
        ("order.review", body_login),
        ("order.allocate", body_login),
        ("order.printer_codes", body_login),
        ("order.printer_file", body_login),
        ("order.losses", body_login),
        ("order.use", org_login),
        ("order.use", org_login),
        ("order.use_rollback", org_login),
        ("order.void", body_login),
    ], done
    assert body_login in body.inner_text("#order-history")
    for page in (org, viewer, other, other_body, body):
        assert page.problems == []


def test_the_pages_fit_a_tablet_and_read_in_english(tab: Any, dashboard: Dashboard) -> None:
    tab.set_viewport_size(TABLET)
    sign_in(tab, dashboard, "analyst")
    for path in ("/dashboard/quantities", "/dashboard/specs", "/dashboard/orders/new", "/dashboard/orders"):
        tab.goto(dashboard.base + path)
        _no_overflow(tab)
        shoot(tab, "dashboard_issuing_tablet" + path.replace("/", "_"))
    tab.goto(dashboard.base + "/dashboard/lang/en?next=/dashboard/quantities")
    assert tab.locator("h1").inner_text() == "Certified quantities"
    assert tab.problems == []


def test_the_regulator_sees_both_sides_in_english(tab: Any, dashboard: Dashboard) -> None:
    """The all scope: every certificate's quantities, specs of any holder, every order, and
    both sides' forms on an order (here one the demo organization's token placed)."""
    c = container(dashboard.app)
    holder = Scope("organization", c.registry.scope_target_id("organization", DEMO_ORG))
    spec = c.issuing.upsert_specs(
        [
            {
                "certificate": _certificate(),
                "product": "有机大米",
                "trade_name": "五常稻花香",
                "package_spec": "5千克真空包装",
                "weight_kg": "5",
                "label_spec": "25×16毫米椭圆形",
            }
        ],
        holder,
    )["items"][0]["id"]
    body = {
        "address": "哈尔滨",
        "contact": "王",
        "phone": "0451-1",
        "lines": [{"spec_id": spec, "quantity": 2, "unit_price": "0.1"}],
    }
    number = c.issuing.create_order({**body, "certificate": _certificate()}, holder)["number"]
    c.issuing.submit(number, holder)
    sign_in(tab, dashboard, "admin")
    tab.goto(dashboard.base + "/dashboard/lang/en?next=/dashboard/quantities")
    assert tab.locator(".card-head h2").count() >= 7  # every demo certificate
    tab.goto(f"{dashboard.base}/dashboard/orders/{number}")
    assert tab.inner_text("#order-status") == "Auto-approved"
    assert tab.locator("#approve-order").is_visible() and tab.locator("#void-order").count() == 1
    tab.goto(dashboard.base + "/dashboard/orders/new")
    assert tab.locator("#lines-0-spec_id option", has_text="五常稻花香").count() == 1
    shoot(tab, "dashboard_issuing_regulator_new_order_en")
    assert tab.problems == []
