"""The dashboard's people over HTTP: sign-in with CSRF, session cookies kept to the
dashboard, throttled failed sign-ins (per account and per IP, in Redis or in process),
disabled accounts, the audit log of reviews (from the dashboard and from the admin API),
scopes (another body's and another organization's accounts see and change nothing of the
demo's), invites, the create-user command and the demo account."""

from __future__ import annotations

import re
from datetime import date
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from domain.accounts import Account
from tests.api.test_admin_scope import persist
from tests.conftest import ADMIN
from webapp import container
from webapp.demo import DEMO_LOGIN, seed, seed_demo_account

PASSWORD = "correct horse battery"
DEMO_ORG = "黑龙江龙泉有机农业有限公司"
OTHER_ORG = "吉林松原绿野米业有限公司"


def _seeded(app: Flask) -> dict[str, str]:
    c = container(app)
    codes = seed(c.admin, date.today(), c.scan_admin)
    persist(app)  # the worker's part with Redis: the demo's scan events into SQL
    for login, role, kind, target in (
        ("admin@example.com", "admin", "all", None),
        ("org.admin@example.com", "admin", "organization", DEMO_ORG),
        ("analyst@example.com", "analyst", "organization", DEMO_ORG),
        ("viewer@example.com", "viewer", "organization", DEMO_ORG),
        ("other@example.com", "analyst", "organization", OTHER_ORG),
        ("other.admin@example.com", "admin", "organization", OTHER_ORG),
        ("body@example.com", "analyst", "body", "0123"),
    ):
        c.accounts.create_user(login, PASSWORD, role, kind, target)
    return codes


def _token(http: FlaskClient, path: str = "/dashboard/login") -> str:
    page = http.get(path)
    found = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page.get_data(as_text=True))
    assert found, page.get_data(as_text=True)[:500]
    return found.group(1)


def _sign_in(http: FlaskClient, login: str, password: str = PASSWORD, **extra: Any) -> Any:
    return http.post(
        "/dashboard/login", data={"login": login, "password": password, "csrf_token": _token(http)}, **extra
    )


def _account(app: Flask, login: str) -> Account:
    found = container(app).accounts.store.find_login(login)
    assert found is not None
    account = container(app).accounts.load(int(found["id"]))
    assert account is not None
    return account


def _flag_ids(http: FlaskClient, **filters: str) -> list[int]:
    page = http.get("/dashboard/flags", query_string=filters).get_data(as_text=True)
    return [int(i) for i in re.findall(r'name="ids" value="(\d+)"', page)]


def _review(http: FlaskClient, ids: list[int], action: str, note: str = "") -> Any:
    token = _token(http, "/dashboard/flags")
    return http.post(
        "/dashboard/flags/review",
        data={"csrf_token": token, "ids": [str(i) for i in ids], "action": action, "note": note},
    )


def test_signing_in_needs_the_forms_csrf_token(embedded_app: Flask) -> None:
    _seeded(embedded_app)
    http = embedded_app.test_client()
    refused = http.post("/dashboard/login", data={"login": "analyst@example.com", "password": PASSWORD})
    assert refused.status_code == 400
    assert http.get("/dashboard/flags").status_code == 302  # still signed out
    assert _sign_in(http, "analyst@example.com").status_code == 302
    assert http.get("/dashboard/flags").status_code == 200


def test_the_session_cookie_is_httponly_lax_kept_to_the_dashboard_and_secure_over_https(
    embedded_app: Flask,
) -> None:
    _seeded(embedded_app)
    http = embedded_app.test_client()
    signed = _sign_in(http, "analyst@example.com")
    cookie = next(c for c in signed.headers.getlist("Set-Cookie") if c.startswith("dashboard_session="))
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Path=/dashboard" in cookie
    assert "Secure" not in cookie  # plain http on a laptop
    tls = embedded_app.test_client()
    page = tls.get("/dashboard/login", base_url="https://dash.example.com")
    cookies = [c for c in page.headers.getlist("Set-Cookie") if c.startswith("dashboard_session=")]
    assert cookies and all("Secure" in c for c in cookies)
    # The API and the shopper's pages neither set nor read a session.
    for path in ("/healthz", "/", "/api/v1/admin/flags"):
        answer = http.get(path, headers=ADMIN)
        assert not any(c.startswith("dashboard_session=") for c in answer.headers.getlist("Set-Cookie")), path


def test_failed_sign_ins_are_throttled_per_account_even_with_the_right_password_after(any_app: Flask) -> None:
    _seeded(any_app)
    http = any_app.test_client()
    for _ in range(5):
        assert _sign_in(http, "analyst@example.com", "wrong password!").status_code == 401
    refused = _sign_in(http, "analyst@example.com")
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) > 0
    assert "登录失败次数过多" in refused.get_data(as_text=True)
    # Another account from the same address is not locked by these five.
    assert _sign_in(any_app.test_client(), "viewer@example.com").status_code == 302


def test_failed_sign_ins_are_throttled_per_ip_across_accounts(any_app: Flask) -> None:
    _seeded(any_app)
    http = any_app.test_client()
    for i in range(30):
        assert _sign_in(http, f"nobody{i}@example.com", "wrong password!").status_code == 401
    assert _sign_in(http, "viewer@example.com").status_code == 429
    elsewhere = {"REMOTE_ADDR": "10.1.2.3"}
    assert _sign_in(any_app.test_client(), "viewer@example.com", environ_base=elsewhere).status_code == 302


def test_an_unknown_login_and_a_wrong_password_get_the_same_answer(embedded_app: Flask) -> None:
    _seeded(embedded_app)
    unknown = _sign_in(embedded_app.test_client(), "nobody@example.com")
    wrong = _sign_in(embedded_app.test_client(), "analyst@example.com", "wrong password!")
    assert unknown.status_code == wrong.status_code == 401
    message = re.compile(r'id="signin-error">([^<]+)<')
    said = [message.findall(answer.get_data(as_text=True)) for answer in (unknown, wrong)]
    assert said[0] and said[0] == said[1]


def test_a_sign_in_goes_back_to_a_dashboard_page_never_to_another_site(embedded_app: Flask) -> None:
    _seeded(embedded_app)
    for target, expected in (
        ("/dashboard/flags?status=open", "/dashboard/flags?status=open"),
        ("//evil.example/x", "/dashboard/"),
        ("https://evil.example/dashboard", "/dashboard/"),
        ("/c/012326100000000001", "/dashboard/"),
    ):
        http = embedded_app.test_client()
        token = _token(http)
        answer = http.post(
            "/dashboard/login",
            data={"login": "viewer@example.com", "password": PASSWORD, "csrf_token": token, "next": target},
        )
        assert answer.headers["Location"] == expected, target


def test_dashboard_and_api_reviews_are_in_the_audit_log_with_before_and_after(any_app: Flask) -> None:
    _seeded(any_app)
    analyst = any_app.test_client()
    _sign_in(analyst, "analyst@example.com")
    ids = _flag_ids(analyst, rule="distinct_scanners")
    assert len(ids) == 1
    assert _review(analyst, ids, "confirmed", "试买确认").status_code == 302
    any_app.test_client().patch(
        f"/api/v1/admin/flags/{ids[0]}", json={"status": "dismissed", "note": "误报"}, headers=ADMIN
    )
    entries = container(any_app).audit.entries(_account(any_app, "admin@example.com").scope)
    assert [(e["actor_kind"], e["action"], e["target"]) for e in entries[:2]] == [
        ("token", "flag.review", f"flag:{ids[0]}"),
        ("user", "flag.review", f"flag:{ids[0]}"),
    ]
    api, dash = entries[0], entries[1]
    assert dash["actor_name"] == "analyst@example.com"
    assert dash["before"] == {"status": "open", "note": None}
    assert dash["after"] == {"status": "confirmed", "note": "试买确认"}
    assert api["before"] == {"status": "confirmed", "note": "试买确认"}
    assert api["after"] == {"status": "dismissed", "note": "误报"}
    # The organization's admin reads both on the audit page.
    admin = any_app.test_client()
    _sign_in(admin, "org.admin@example.com")
    page = admin.get("/dashboard/audit").get_data(as_text=True)
    assert page.count(f"flag:{ids[0]}") == 2


def test_a_viewer_cannot_review_and_reviewing_needs_a_csrf_token(embedded_app: Flask) -> None:
    _seeded(embedded_app)
    viewer = embedded_app.test_client()
    _sign_in(viewer, "viewer@example.com")
    page = viewer.get("/dashboard/flags").get_data(as_text=True)
    assert "confirm-selected" not in page and 'name="ids"' not in page
    assert _review(viewer, [1], "dismissed").status_code == 403
    analyst = embedded_app.test_client()
    _sign_in(analyst, "analyst@example.com")
    ids = _flag_ids(analyst)
    without = analyst.post("/dashboard/flags/review", data={"ids": [str(ids[0])], "action": "dismissed"})
    assert without.status_code == 400
    rows = re.findall(r"<tr>.*?</tr>", analyst.get("/dashboard/flags").text, re.S)[1:]
    assert rows and all("待处理" in row for row in rows)


@pytest.mark.parametrize("who", ["other@example.com", "other.admin@example.com"])
def test_another_organization_sees_and_reviews_none_of_the_demo_flags(any_app: Flask, who: str) -> None:
    codes = _seeded(any_app)
    analyst = any_app.test_client()
    _sign_in(analyst, "analyst@example.com")
    ids = _flag_ids(analyst)
    assert ids
    other = any_app.test_client()
    _sign_in(other, who)
    assert _flag_ids(other) == []
    assert codes["suspicious (copied)"] not in other.get("/dashboard/flags").get_data(as_text=True)
    answer = _review(other, ids, "dismissed", "不是我们的")
    assert answer.status_code == 302
    flashed = other.get("/dashboard/flags").get_data(as_text=True)
    assert f"{len(ids)} 条标记无法审核" in flashed
    # Unchanged: still open for the demo organization, and nothing in the audit log.
    assert _flag_ids(analyst, status="open") == ids
    everything = container(any_app).audit.entries(_account(any_app, "admin@example.com").scope)
    assert [e for e in everything if e["action"] == "flag.review"] == []


def test_the_certification_body_sees_its_codes_flags_and_another_body_none(embedded_app: Flask) -> None:
    _seeded(embedded_app)
    c = container(embedded_app)
    c.admin.upsert_bodies([{"code": "0456", "legacy_code": "456", "name": "乙认证中心"}], _all())
    c.accounts.create_user("body.b@example.com", PASSWORD, "analyst", "body", "0456")
    body = embedded_app.test_client()
    _sign_in(body, "body@example.com")
    assert _flag_ids(body)
    body_b = embedded_app.test_client()
    _sign_in(body_b, "body.b@example.com")
    assert _flag_ids(body_b) == []


def _all() -> Any:
    from domain.bulk import Scope

    return Scope("all", None, None, "test")


def test_an_organizations_admin_invites_only_into_its_own_scope_and_manages_only_its_accounts(
    embedded_app: Flask,
) -> None:
    _seeded(embedded_app)
    admin = embedded_app.test_client()
    _sign_in(admin, "org.admin@example.com")
    page = admin.get("/dashboard/users").get_data(as_text=True)
    assert "analyst@example.com" in page and "viewer@example.com" in page
    assert "other@example.com" not in page and "<td>admin@example.com</td>" not in page
    token = _token(admin, "/dashboard/users")
    # Asks for everything; gets its own organization.
    made = admin.post(
        "/dashboard/users",
        data={"csrf_token": token, "login": "New@Example.com", "role": "analyst", "scope_kind": "all"},
    )
    assert made.status_code == 200
    found = re.search(r'id="invite-link" value="([^"]+)"', made.get_data(as_text=True))
    assert found
    link = found.group(1)
    accounts = container(embedded_app).accounts
    invited = accounts.invitation(link.rsplit("/", 1)[1])
    assert invited is not None and invited.login == "new@example.com"
    assert invited.scope == _account(embedded_app, "org.admin@example.com").scope
    # Another organization's account is not there for this admin: 404, unchanged.
    other_id = _account(embedded_app, "other@example.com").id
    token = _token(admin, "/dashboard/users")
    assert admin.post(f"/dashboard/users/{other_id}/disable", data={"csrf_token": token}).status_code == 404
    assert accounts.load(other_id) is not None


def test_a_disabled_accounts_session_ends_and_it_cannot_sign_in(embedded_app: Flask) -> None:
    _seeded(embedded_app)
    viewer = embedded_app.test_client()
    _sign_in(viewer, "viewer@example.com")
    assert viewer.get("/dashboard/flags").status_code == 200
    admin = embedded_app.test_client()
    _sign_in(admin, "org.admin@example.com")
    viewer_id = _account(embedded_app, "viewer@example.com").id
    token = _token(admin, "/dashboard/users")
    assert admin.post(f"/dashboard/users/{viewer_id}/disable", data={"csrf_token": token}).status_code == 302
    assert viewer.get("/dashboard/flags").status_code == 302
    assert _sign_in(embedded_app.test_client(), "viewer@example.com").status_code == 401


def test_an_invite_link_sets_a_password_once(embedded_app: Flask) -> None:
    _seeded(embedded_app)
    accounts = container(embedded_app).accounts
    admin = _account(embedded_app, "admin@example.com")
    invitation = accounts.invite(admin, "13912345678", "张三", "viewer", "organization", DEMO_ORG)
    http = embedded_app.test_client()
    path = f"/dashboard/invite/{invitation.token}"
    token = _token(http, path)
    short = http.post(path, data={"csrf_token": token, "password": "short", "confirm": "short"})
    assert short.status_code == 400
    chosen = "long enough 123"
    done = http.post(path, data={"csrf_token": token, "password": chosen, "confirm": chosen})
    assert done.status_code == 302 and http.get("/dashboard/flags").status_code == 200
    assert embedded_app.test_client().get(path).status_code == 404  # used
    assert _sign_in(embedded_app.test_client(), "139 1234 5678", "long enough 123").status_code == 302


def test_create_user_makes_an_account_that_signs_in_and_says_what_is_wrong(embedded_app: Flask) -> None:
    _seeded(embedded_app)
    runner = embedded_app.test_cli_runner()
    made = runner.invoke(
        args=["create-user", "Chief@Example.com", "--role", "admin", "--scope", "body", "--target", "0123"],
        input="a long password\na long password\n",
    )
    assert made.exit_code == 0, made.output
    assert "chief@example.com: admin, scope body 0123" in made.output
    assert _sign_in(embedded_app.test_client(), "chief@example.com", "a long password").status_code == 302
    unknown = runner.invoke(
        args=["create-user", "x@example.com", "--role", "viewer", "--scope", "body", "--target", "9999"],
        input="a long password\na long password\n",
    )
    assert unknown.exit_code != 0 and "no body '9999'" in unknown.output
    again = runner.invoke(
        args=[
            "create-user",
            "chief@example.com",
            "--role",
            "viewer",
            "--scope",
            "all",
            "--password",
            "x" * 12,
        ],
    )
    assert again.exit_code != 0 and "exists" in again.output


def test_seed_demo_prints_a_demo_account_that_signs_in(embedded_app: Flask) -> None:
    printed = embedded_app.test_cli_runner().invoke(args=["seed-demo"])
    assert printed.exit_code == 0, printed.output
    found = re.search(r"account (\S+)\s+password (\S+)", printed.output)
    assert found and found.group(1) == DEMO_LOGIN
    assert _sign_in(embedded_app.test_client(), DEMO_LOGIN, found.group(2)).status_code == 302
    # Seeding again gives a new password; the old one no longer works.
    login, password = seed_demo_account(container(embedded_app).accounts)
    assert password != found.group(2)
    assert _sign_in(embedded_app.test_client(), login, found.group(2)).status_code == 401


def test_one_phone_number_written_two_ways_is_one_account_for_the_throttle(embedded_app: Flask) -> None:
    _seeded(embedded_app)
    http = embedded_app.test_client()
    for written in ("13800138000", "138 0013 8000", "138-0013-8000", "13800138000", "138 0013-8000"):
        assert _sign_in(http, written, "wrong password!").status_code == 401
    assert _sign_in(embedded_app.test_client(), "13800138000").status_code == 429
