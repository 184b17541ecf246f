"""The dashboard's shell and people in a real browser: signing in and out, the flag queue,
reviewing flags, what a viewer and another organization see, accounts, the audit log,
Chinese by default and English on request. Every page without console errors."""

from __future__ import annotations

from typing import Any

from tests.browser.conftest import Dashboard, shoot, sign_in


def test_an_analyst_signs_in_sees_the_flag_queue_in_chinese_confirms_a_flag_and_signs_out(
    tab: Any, dashboard: Dashboard
) -> None:
    copied = dashboard.codes["suspicious (copied)"]
    tab.goto(dashboard.base + "/dashboard/flags")
    assert tab.url.startswith(dashboard.base + "/dashboard/login")  # not signed in: sign in first
    assert tab.inner_text("h1") == "登录"
    shoot(tab, "dashboard_login")
    sign_in(tab, dashboard, "analyst")
    assert tab.url.endswith("/dashboard/flags")
    assert tab.inner_text("h1") == "标记"
    row = tab.locator("#flag-table tbody tr", has_text=copied).first
    assert "待处理" in row.inner_text()
    shoot(tab, "dashboard_flag_queue")
    row.locator("input[name=ids]").check()
    tab.fill("#note", "杭州试买确认为仿冒")
    tab.click("#confirm-selected")
    tab.wait_for_load_state()
    assert "已设为“已确认”" in tab.inner_text(".flashes")
    row = tab.locator("#flag-table tbody tr", has_text=copied).first
    assert "已确认" in row.inner_text() and "杭州试买确认为仿冒" in row.inner_text()
    # The shopper's answer follows the review at once: a confirmed copy is still suspicious.
    tab.click("form.signout button")
    tab.wait_for_url("**/dashboard/login")
    assert "您已退出登录" in tab.inner_text(".flashes")
    tab.goto(dashboard.base + "/dashboard/flags")
    assert "/dashboard/login" in tab.url
    assert tab.problems == []


def test_a_viewer_sees_the_queue_but_no_review_controls_and_cannot_review(
    tab: Any, dashboard: Dashboard
) -> None:
    sign_in(tab, dashboard, "viewer")
    assert tab.locator("#flag-table tbody tr").count() >= 1
    assert tab.locator("#review-form input[name=ids]").count() == 0
    assert tab.locator("#confirm-selected").count() == 0
    # A review sent anyway (a hand-made form with a valid CSRF token) is refused.
    token = tab.get_attribute("#review-form input[name=csrf_token]", "value")
    answer = tab.request.post(
        dashboard.base + "/dashboard/flags/review",
        form={"csrf_token": token, "ids": "1", "action": "dismissed"},
        max_redirects=0,
    )
    assert answer.status == 403
    assert tab.problems == []


def test_another_organization_sees_none_of_the_demo_flags(tab: Any, dashboard: Dashboard) -> None:
    sign_in(tab, dashboard, "other")
    assert dashboard.codes["suspicious (copied)"] not in tab.inner_text("#flag-table")
    assert "没有符合筛选条件的标记" in tab.inner_text("#flag-table")
    assert tab.problems == []


def test_english_on_request_and_filters_keep_their_values(tab: Any, dashboard: Dashboard) -> None:
    sign_in(tab, dashboard, "body")
    tab.click("a.lang[lang=en]")
    tab.wait_for_load_state()
    assert tab.inner_text("h1") == "Flags"
    assert tab.get_attribute("html", "lang") == "en"
    tab.select_option("#f-status", "open")
    tab.click(".filters button[type=submit]")
    tab.wait_for_load_state()
    assert "status=open" in tab.url
    assert tab.input_value("#f-status") == "open"
    assert dashboard.codes["suspicious (copied)"] in tab.inner_text("#flag-table")
    assert tab.problems == []


def test_a_wrong_password_is_refused_with_a_message_and_no_session(tab: Any, dashboard: Dashboard) -> None:
    sign_in(tab, dashboard, "analyst", password="not the password")
    assert "/dashboard/login" in tab.url
    assert "不匹配" in tab.inner_text("#signin-error")
    tab.goto(dashboard.base + "/dashboard/flags")
    assert "/dashboard/login" in tab.url
    # Only the console's note of the 401 answer to the form.
    assert all("401" in p for p in tab.problems)


def test_an_admin_invites_a_viewer_who_sets_a_password_and_is_then_disabled(
    browser: Any, tab: Any, dashboard: Dashboard
) -> None:
    sign_in(tab, dashboard, "admin")
    tab.click("nav a[href='/dashboard/users']")
    tab.fill("#login", "new.viewer@example.com")
    tab.fill("#name", "新同事")
    tab.select_option("#role", "viewer")
    tab.select_option("#scope_kind", "organization")
    tab.fill("#target", "黑龙江龙泉有机农业有限公司")
    tab.click("form.grid-form button[type=submit]")
    tab.wait_for_load_state()
    link = tab.input_value("#invite-link")
    assert "/dashboard/invite/" in link
    shoot(tab, "dashboard_users")

    invitee = browser.new_context(locale="zh-CN").new_page()
    invitee.goto(link)
    invitee.fill("#password", "a new password 1")
    invitee.fill("#confirm", "a new password 1")
    invitee.click("button[type=submit]")
    invitee.wait_for_url("**/dashboard/flags")
    assert invitee.locator("#confirm-selected").count() == 0  # a viewer

    tab.goto(dashboard.base + "/dashboard/users")
    row = tab.locator("#user-table tbody tr", has_text="new.viewer@example.com")
    row.locator("button").click()
    tab.wait_for_load_state()
    assert "已停用" in tab.locator("#user-table tbody tr", has_text="new.viewer@example.com").inner_text()
    # Its session ends at its next request.
    invitee.goto(dashboard.base + "/dashboard/flags")
    assert "/dashboard/login" in invitee.url
    invitee.context.close()

    tab.click("nav a[href='/dashboard/audit']")
    log = tab.inner_text("#audit-table")
    assert "邀请账号" in log and "停用账号" in log
    shoot(tab, "dashboard_audit")
    assert tab.problems == []


def test_the_pages_fit_a_tablet(browser: Any, dashboard: Dashboard) -> None:
    context = browser.new_context(locale="zh-CN", viewport={"width": 768, "height": 1024})
    page = context.new_page()
    sign_in(page, dashboard, "analyst")
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 768
    shoot(page, "dashboard_flag_queue_tablet")
    context.close()
