"""Exports, evidence packs and webhooks in a real browser: an analyst exports the filtered
flag queue as CSV and XLSX and fetches a flag's evidence pack; an organization's admin
adds a webhook (its secret shown once), a new suspicious flag reaches a local receiver
and shows in the delivery log; another organization, a certification body and a viewer
see or change none of it. Every page without console errors."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from openpyxl import load_workbook
from pypdf import PdfReader

from domain.alerts import verify_signature
from domain.bulk import Scope
from tests.browser.conftest import DEMO_ORG, PASSWORD, Dashboard, shoot, sign_in
from tests.conftest import make_app, settings_for
from tests.webhook_receiver import receiver
from webapp import container


@pytest.fixture
def embedded_app(sqlite_url: str) -> Flask:
    """The dashboard's demo app, allowed to send alerts to a receiver on this machine."""
    return make_app(settings_for(sqlite_url, webhook_allow_private=True))


def _download(tab: Any, selector: str) -> tuple[str, bytes]:
    with tab.expect_download() as info:
        tab.click(selector)
    download = info.value
    return download.suggested_filename, Path(download.path()).read_bytes()


def test_an_analyst_exports_the_filtered_queue_and_a_flags_evidence_pack(
    tab: Any, dashboard: Dashboard
) -> None:
    copied = dashboard.codes["suspicious (copied)"]
    sign_in(tab, dashboard, "analyst")
    tab.goto(dashboard.base + "/dashboard/flags?severity=suspicious")
    assert tab.is_visible("#export-csv") and tab.is_visible("#export-xlsx")
    shoot(tab, "dashboard_flag_queue_exports")
    name, data = _download(tab, "#export-csv")
    assert name.startswith("flags-") and name.endswith(".csv")
    rows = list(csv.reader(io.StringIO(data.decode("utf-8-sig"))))
    assert rows[0][:3] == ["id", "code", "rule"]
    assert {r[1] for r in rows[1:]} == {copied} and {r[3] for r in rows[1:]} == {"suspicious"}
    name, data = _download(tab, "#export-xlsx")
    assert name.endswith(".xlsx")
    sheet = load_workbook(io.BytesIO(data), read_only=True)["flags"]
    assert {r[1] for r in list(sheet.iter_rows(values_only=True))[1:]} == {copied}
    # The evidence pack from the flag's page.
    flag_id = int(rows[1][0])
    tab.goto(f"{dashboard.base}/dashboard/flags/{flag_id}")
    assert tab.is_visible("#evidence-pack")
    shoot(tab, "dashboard_flag_page_evidence_button")
    name, data = _download(tab, "#evidence-pack")
    assert name == f"evidence-flag-{flag_id}-{copied}.pdf"
    pdf = PdfReader(io.BytesIO(data))
    text = "\n".join(p.extract_text() for p in pdf.pages)
    assert copied in text and "证据包" in text and "杭州市" in text
    assert tab.problems == []


def test_another_organization_and_a_body_get_no_export_rows_nor_evidence(
    tab: Any, dashboard: Dashboard
) -> None:
    copied = dashboard.codes["suspicious (copied)"]
    flag_id = next(
        f["id"]
        for f in container(dashboard.app).scan_admin.list_flags(Scope("all"), {})["items"]
        if f["code"] == copied
    )
    sign_in(tab, dashboard, "other")
    tab.goto(dashboard.base + "/dashboard/flags")
    _name, data = _download(tab, "#export-csv")
    assert [r[1] for r in csv.reader(io.StringIO(data.decode("utf-8-sig")))][1:] == []
    answer = tab.request.get(f"{dashboard.base}/dashboard/flags/{flag_id}/evidence.pdf")
    assert answer.status == 404
    answer = tab.request.get(f"{dashboard.base}/dashboard/webhooks")
    assert answer.status == 200 and "尚无 Webhook" in answer.text()
    assert tab.problems == []


def test_an_organizations_admin_adds_a_webhook_and_a_new_suspicious_flag_reaches_it(
    tab: Any, dashboard: Dashboard
) -> None:
    c = container(dashboard.app)
    c.accounts.create_user("brand-admin@example.com", PASSWORD, "admin", "organization", DEMO_ORG)
    with receiver() as hook:
        sign_in(tab, dashboard, "brand-admin@example.com")
        tab.click("nav.nav >> text=Webhook 告警")
        tab.wait_for_url("**/dashboard/webhooks")
        assert tab.inner_text("h1") == "Webhook 告警"
        tab.fill("#url", hook.url)
        tab.fill("#description", "品牌保护值班")
        tab.click("#add-webhook")
        tab.wait_for_load_state()
        secret = tab.inner_text("#webhook-secret").strip()
        assert len(secret) == 64
        shoot(tab, "dashboard_webhook_secret_once")
        # Post/Redirect/Get: a reload asks for the page again, it does not post the form again.
        tab.reload()
        assert tab.locator("#webhook-secret").count() == 0  # shown once
        assert tab.inner_text("#webhook-table").count(hook.url) == 1
        assert len(c.alerts.list_webhooks(Scope("all"))["items"]) == 1
        # A new secret the same way: shown once, not rotated again by a reload.
        tab.click("#webhook-table >> button:has-text('更换密钥')")
        tab.wait_for_load_state()
        rotated = tab.inner_text("#webhook-secret").strip()
        assert len(rotated) == 64 and rotated != secret
        tab.reload()
        assert tab.locator("#webhook-secret").count() == 0
        secret = rotated
        assert hook.url in tab.inner_text("#webhook-table")
        # A genuine demo code of the organization copied by six shoppers: a new suspicious flag.
        code = dashboard.codes["genuine"]
        start = datetime.now(UTC) - timedelta(hours=6)
        events = [
            {
                "event_id": f"web-{i}",
                "code": code,
                "at": (start + timedelta(hours=i)).isoformat(),
                "client": f"w{i}",
            }
            for i in range(6)
        ]
        assert c.scan_admin.import_events(events, Scope("all")).accepted == 6
        # What the web process's deliverer thread does every second (embedded: no worker).
        assert c.alerts.deliver_due() == 1
        got = hook.wait_for(1, 60)
        assert len(got) == 1 and verify_signature(got[0].body, secret, got[0].headers["X-Signature"])
        assert json.loads(got[0].body)["flag"]["code"] == code
        tab.goto(dashboard.base + "/dashboard/webhooks")
        log = tab.inner_text("#delivery-table")
        assert code in log and "已送达" in log and "200" in log
        shoot(tab, "dashboard_webhooks")
        tab.click("#webhook-table >> text=投递记录")
        tab.wait_for_url("**/deliveries")
        assert code in tab.inner_text("#delivery-table")
        shoot(tab, "dashboard_webhook_delivery_log")
        # Paused: the change is in the audit log.
        tab.goto(dashboard.base + "/dashboard/webhooks")
        tab.click("#webhook-table >> button:has-text('暂停')")
        tab.wait_for_load_state()
        assert "已暂停" in tab.inner_text("#webhook-table")
        tab.goto(dashboard.base + "/dashboard/audit")
        audit = tab.inner_text("#audit-table")
        assert "添加 Webhook" in audit and "修改 Webhook" in audit and secret not in audit
    assert tab.problems == []


def test_a_viewer_and_a_body_have_no_webhook_settings(tab: Any, dashboard: Dashboard) -> None:
    sign_in(tab, dashboard, "viewer")
    assert tab.locator("nav.nav >> text=Webhook 告警").count() == 0
    assert tab.request.get(f"{dashboard.base}/dashboard/webhooks").status == 403
    tab.click("form.signout button")
    tab.wait_for_url("**/dashboard/login")
    sign_in(tab, dashboard, "body")
    assert tab.request.get(f"{dashboard.base}/dashboard/webhooks").status == 404
    # An analyst of the organization sees the page but cannot change it.
    tab.click("form.signout button")
    tab.wait_for_url("**/dashboard/login")
    sign_in(tab, dashboard, "analyst")
    tab.goto(dashboard.base + "/dashboard/webhooks")
    assert tab.locator("#webhook-form").count() == 0
    shoot(tab, "dashboard_webhooks_analyst")
    # A tablet: the page fits its width (the tables scroll inside their cards).
    tab.set_viewport_size({"width": 820, "height": 1180})
    tab.goto(dashboard.base + "/dashboard/flags")
    assert tab.evaluate("document.documentElement.scrollWidth") <= 820
    assert tab.is_visible("#export-xlsx")
    shoot(tab, "dashboard_flag_queue_exports_tablet")
    assert tab.problems == []
