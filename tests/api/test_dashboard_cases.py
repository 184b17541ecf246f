"""A flag's page, a report's photo and the code lookup over HTTP, on both deployments:
the demo organization and its certification body read them; another organization and
another body get 404 for each, exactly as for a flag or code that does not exist; the
lookup shows no scanner."""

from __future__ import annotations

import io
import re

import pytest
from flask import Flask
from PIL import Image

from domain.bulk import Scope
from tests.api.test_dashboard_people import PASSWORD, _seeded, _sign_in
from webapp import container


def _photo_report(app: Flask, code: str) -> int:
    photo = io.BytesIO()
    Image.new("RGB", (64, 48), (10, 200, 10)).save(photo, format="PNG")
    receipt = container(app).shoppers.report(
        "web:visitor-2", code, "假货", "某店", None, None, photo.getvalue(), "image/png", channel="web"
    )
    return int(receipt.report_id)


def _case(app: Flask, code: str) -> tuple[int, int]:
    flag_id = next(f["id"] for f in container(app).scan_sql.list_flags(None)["items"] if f["code"] == code)
    return flag_id, _photo_report(app, code)


@pytest.mark.parametrize("who", ["analyst@example.com", "body@example.com", "admin@example.com"])
def test_the_owner_its_body_and_the_regulator_read_the_case_and_the_photo(any_app: Flask, who: str) -> None:
    codes = _seeded(any_app)
    copied = codes["suspicious (copied)"]
    flag_id, report_id = _case(any_app, copied)
    http = any_app.test_client()
    _sign_in(http, who)
    page = http.get(f"/dashboard/flags/{flag_id}")
    assert page.status_code == 200 and copied in page.text
    photo = http.get(f"/dashboard/reports/{report_id}/photo")
    assert photo.status_code == 200 and photo.mimetype == "image/png" and photo.data.startswith(b"\x89PNG")
    assert "private" in photo.headers["Cache-Control"]
    lookup = http.get("/dashboard/lookup", query_string={"code": copied})
    assert lookup.status_code == 200 and 'id="lookup-scans">5<' in lookup.text
    assert not re.search(r"\b[0-9a-f]{8}\b", lookup.text.split('id="places-table"')[1])  # no scanner


@pytest.mark.parametrize("who", ["other@example.com", "body.b@example.com"])
def test_another_organization_and_another_body_get_404_for_every_part_of_the_case(
    any_app: Flask, who: str
) -> None:
    codes = _seeded(any_app)
    c = container(any_app)
    c.admin.upsert_bodies([{"code": "0456", "legacy_code": "456", "name": "乙认证中心"}], Scope("all"))
    c.accounts.create_user("body.b@example.com", PASSWORD, "analyst", "body", "0456")
    copied = codes["suspicious (copied)"]
    flag_id, report_id = _case(any_app, copied)
    http = any_app.test_client()
    _sign_in(http, who)
    assert http.get(f"/dashboard/flags/{flag_id}").status_code == 404
    assert http.get("/dashboard/flags/999999").status_code == 404  # the same as none at all
    assert http.get(f"/dashboard/reports/{report_id}/photo").status_code == 404
    assert http.get("/dashboard/lookup", query_string={"code": copied}).status_code == 404
    assert http.get("/dashboard/lookup", query_string={"code": codes["genuine"]}).status_code == 404


def test_the_lookup_says_what_is_not_a_code(embedded_app: Flask) -> None:
    _seeded(embedded_app)
    http = embedded_app.test_client()
    _sign_in(http, "admin@example.com")
    assert http.get("/dashboard/lookup", query_string={"code": "12345"}).status_code == 400
    assert http.get("/dashboard/lookup").status_code == 200  # the empty form
