"""The Overview page over HTTP on both deployments: it counts what the worker stored (the
demo's copied code: five scans in five provinces and its flags), each account sees its own
scope only (another organization sees none of the demo holder's numbers, names or places;
the demo's body and everything see them), periods are the offered ones, and a visitor who
is not signed in is sent to sign in."""

from __future__ import annotations

import json
import re
from datetime import date
from typing import Any

import pytest
import redis as redis_lib
from flask import Flask
from flask.testing import FlaskClient

from anomaly.worker import StreamWorker
from webapp import container
from webapp.demo import seed

PASSWORD = "correct horse battery"
DEMO_ORG = "黑龙江龙泉有机农业有限公司"
OTHER_ORG = "吉林松原绿野米业有限公司"


@pytest.fixture
def demo(any_app: Flask) -> dict[str, str]:
    c = container(any_app)
    codes = seed(c.admin, date.today(), c.scan_admin)
    if c.redis is not None:  # what `flask worker` does: the streams into the database
        client = redis_lib.Redis.from_url(c.settings.redis_url or "")
        StreamWorker(client, c.scan_sql.write_events, c.scan_sql.upsert_flag, claim_idle_ms=0).drain()
        client.close()
    for login, kind, target in (
        ("all@example.com", "all", None),
        ("demo@example.com", "organization", DEMO_ORG),
        ("other@example.com", "organization", OTHER_ORG),
        ("body@example.com", "body", "0123"),
    ):
        c.accounts.create_user(login, PASSWORD, "viewer", kind, target)
    return codes


def signed_in(app: Flask, login: str) -> FlaskClient:
    http = app.test_client()
    page = http.get("/dashboard/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page)
    assert token
    answer = http.post(
        "/dashboard/login", data={"login": login, "password": PASSWORD, "csrf_token": token.group(1)}
    )
    assert answer.status_code == 302
    return http


def overview(http: FlaskClient, days: int = 30) -> tuple[str, dict[str, Any]]:
    page = http.get(f"/dashboard/overview?days={days}")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    found = re.search(r'<script type="application/json" id="overview-data">(.*?)</script>', html, re.S)
    assert found
    return html, json.loads(found.group(1))


def total(series: list[dict[str, Any]]) -> int:
    return sum(sum(s["data"]) for s in series)


def test_each_scope_sees_its_own_numbers(any_app: Flask, demo: dict[str, str]) -> None:
    html, mine = overview(signed_in(any_app, "demo@example.com"))
    # The copied code: five scans (the last ones suspicious) in five provinces, and its flags.
    assert total(mine["scans"]) == 5
    assert {p["name"] for p in mine["provinces"]} >= {"浙江省", "北京市", "广东省"}
    assert total(mine["flags"]) >= 1
    assert [r["detail"] for r in mine["top_certificates"]] == [DEMO_ORG]
    assert "浙江省" in html

    other_html, other = overview(signed_in(any_app, "other@example.com"))
    assert total(other["scans"]) == 0 and total(other["flags"]) == 0
    assert other["provinces"] == [] and other["cities"] == [] and other["top_certificates"] == []
    assert other["gauge"] == []
    # Nothing of the demo holder's reaches the page: not its name, certificate or places
    # (the data block's map names every province; the page around it names none).
    assert DEMO_ORG not in other_html and mine["top_certificates"][0]["name"] not in other_html
    around = re.sub(r'<script type="application/json".*?</script>', "", other_html, flags=re.S)
    assert "浙江省" not in around

    for login in ("body@example.com", "all@example.com"):
        _, seen = overview(signed_in(any_app, login))
        assert total(seen["scans"]) == 5 and total(seen["flags"]) == total(mine["flags"])


def test_periods_are_the_offered_ones_and_signing_in_comes_first(
    any_app: Flask, demo: dict[str, str]
) -> None:
    anonymous = any_app.test_client().get("/dashboard/overview")
    assert anonymous.status_code == 302 and "/dashboard/login" in anonymous.headers["Location"]
    http = signed_in(any_app, "demo@example.com")
    for days in (7, 30, 90, 365):
        _, data = overview(http, days)
        assert len(data["days"]) == days
    for bad in ("13", "0", "x", "-30", "99999999999999999999"):
        assert http.get(f"/dashboard/overview?days={bad}").status_code == 400
