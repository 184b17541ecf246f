"""Scoped admin tokens hold on every admin read and write: a token of one certification body
or one organization (brand) cannot read or change another's data, and that data is
unchanged afterwards (the public verify answers still show the original facts).

Two bodies (A 0123, B 0456), a certificate of each (held by organizations X and Y), and
tokens for body A, body B, organization X and organization Y.
"""

from __future__ import annotations

import io
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
import redis as redis_lib
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from anomaly.worker import StreamWorker
from domain.bulk import Scope
from domain.codes import CodeKind
from registry import schema as t
from tests.conftest import ADMIN
from webapp import container

BODIES = [
    {"code": "0123", "legacy_code": "123", "name": "甲认证中心"},
    {"code": "0456", "legacy_code": "456", "name": "乙认证中心"},
]
A_NO = "0123OP2600017"
B_NO = "0456OP2600018"
CERT_A = {
    "number": A_NO,
    "body_code": "0123",
    "holder": "甲农场",
    "producer": "甲农场",
    "valid_from": "2026-01-01",
    "valid_until": "2026-12-31",
    "products": [{"name": "有机大米"}],
}
CERT_B = {**CERT_A, "number": B_NO, "body_code": "0456", "holder": "乙农场", "producer": "乙农场"}
CODE_A = "012326000000000001"
CODE_B = "045626000000000001"
LEGACY_A = "12326000000000001"
# A code of body B's numbering that sits on body A's certificate: written before codes were
# checked against their body prefix (straight into the table here), as old data may be.
STRAY = "045626000000000099"
BATCH_X = {
    "number": "WCX2026A",
    "producer": "甲米业",
    "product": "五常大米",
    "net_content_kg": 5,
    "codes": [{"a_code": "XA12345678", "b_code": "XB12345678"}],
    "trace": {"inspection": "甲检测 2026-09"},
}
BATCH_Y = {
    "number": "WCY2026A",
    "producer": "乙米业",
    "product": "五常大米",
    "net_content_kg": 5,
    "codes": [{"a_code": "YA12345678", "b_code": "YB12345678"}],
    "trace": {"inspection": "乙检测 2026-09"},
}


@dataclass
class World:
    http: FlaskClient
    app: Flask
    a: dict[str, str]
    b: dict[str, str]
    x: dict[str, str]
    y: dict[str, str]


def bearer(raw: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {raw}"}


def code_row(code: str, cert: str, order: str) -> dict[str, str]:
    return {"code": code, "certificate": cert, "product": "有机大米", "order": order}


def verify(http: FlaskClient, code: str) -> dict:
    resp = http.post("/api/v1/verify", json={"input": code})
    assert resp.status_code == 200, resp.get_data(as_text=True)
    return resp.get_json()


def persist(app: Flask) -> None:
    """What `flask worker` does in production: drain the event and flag streams into SQL."""
    c = container(app)
    if c.redis is not None:
        client = redis_lib.Redis.from_url(c.settings.redis_url or "")
        StreamWorker(client, c.scan_sql.write_events, c.scan_sql.upsert_flag, claim_idle_ms=0).drain()
        client.close()


@pytest.fixture
def world(any_app: Flask) -> World:
    http = any_app.test_client()
    assert http.post("/api/v1/admin/bodies", json=BODIES, headers=ADMIN).get_json()["accepted"] == 2
    assert http.post("/api/v1/admin/certificates", json=[CERT_A, CERT_B], headers=ADMIN).get_json() == {
        "accepted": 2,
        "rejected": [],
    }
    admin = container(any_app).admin
    tokens = {
        "a": admin.create_token("body A", "body", "0123"),
        "b": admin.create_token("body B", "body", "0456"),
        "x": admin.create_token("brand X", "organization", "甲农场"),
        "y": admin.create_token("brand Y", "organization", "乙农场"),
    }
    w = World(http, any_app, *(bearer(tokens[k]) for k in "abxy"))
    rows = [code_row(CODE_A, A_NO, "A-001"), code_row(LEGACY_A, A_NO, "A-001")]
    assert http.post("/api/v1/admin/codes", json=rows, headers=w.a).get_json()["accepted"] == 2
    rows = [code_row(CODE_B, B_NO, "B-001")]
    assert http.post("/api/v1/admin/codes", json=rows, headers=w.b).get_json()["accepted"] == 1
    # Each company's raw-grain ledger holds enough for its marks (issue 17: the cap).
    for who in (w.x, w.y):
        grain = [{"reference": "R1", "purchased_on": "2026-09-01", "supplier": "农户", "quantity_kg": 1000}]
        assert http.post("/api/v1/admin/grain-purchases", json=grain, headers=who).get_json()["accepted"] == 1
    assert http.post("/api/v1/admin/batches", json=BATCH_X, headers=w.x).get_json()["accepted"] == 2
    assert http.post("/api/v1/admin/batches", json=BATCH_Y, headers=w.y).get_json()["accepted"] == 2
    report = {
        "report": (io.BytesIO(b"%PDF-1.4 report"), "r.pdf"),
        "report_number": "JC-1",
        "laboratory": "五常市质量技术监督检验检测中心",
        "result": "pass",
        "inspected_on": "2026-09-20",
    }
    assert http.post("/api/v1/admin/batches/WCY2026A/inspection", data=report, headers=w.y).status_code == 201
    assert http.post("/api/v1/admin/batches/WCY2026A/activate", headers=ADMIN).status_code == 200
    return w


def plant_stray_code(app: Flask) -> None:
    """STRAY on body A's certificate, as data loaded before prefixes were checked."""
    registry = container(app).registry
    with registry.engine.begin() as conn:
        group = conn.execute(t.label_groups.select().limit(1)).first()
        assert group is not None
        registry.write_codes(
            conn, [{"code": int(STRAY), "group_id": group.id, "issued_on": None, "identity_code": None}]
        )
    container(app).admin._changed("codes", "status", codes=[STRAY])


def assert_untouched(w: World) -> None:
    """The public answers still carry the owners' facts."""
    a = verify(w.http, CODE_A)
    assert a["verdict"] == "genuine" and a["certificate"]["number"] == A_NO
    assert a["certificate"]["holder"] == "甲农场" and a["certificate"]["status"] == "valid"
    b = verify(w.http, CODE_B)
    assert b["verdict"] == "genuine" and b["certificate"]["number"] == B_NO
    x = verify(w.http, "XB12345678")
    assert x["verdict"] == "not_activated" and x["trace"]["producer"] == "甲米业"
    y = verify(w.http, "YB12345678")
    assert y["verdict"] == "genuine" and y["trace"]["producer"] == "乙米业"
    # The uploaded report is the inspection the answer shows, not the company's own words.
    assert y["trace"]["inspection"]["report_number"] == "JC-1"
    assert x["trace"]["inspection"] == "甲检测 2026-09"  # no report yet: what the company wrote


# -- bodies and certificates -----------------------------------------------------------------


def test_only_the_regulator_registers_bodies(world: World) -> None:
    for who in (world.a, world.b, world.x, world.y):
        resp = world.http.post("/api/v1/admin/bodies", json=[{**BODIES[0], "name": "冒名"}], headers=who)
        assert resp.status_code == 403
    assert_untouched(world)
    assert verify(world.http, CODE_A)["certification_body"]["name"] == "甲认证中心"


def test_certificates_of_another_body_cannot_be_overwritten(world: World) -> None:
    forged = {**CERT_A, "holder": "冒名农场"}
    for who in (world.b, world.x, world.y):
        resp = world.http.post("/api/v1/admin/certificates", json=[forged], headers=who).get_json()
        assert resp["accepted"] == 0 and resp["rejected"][0]["code"] == "forbidden"
    assert_untouched(world)


def test_certificate_status_of_another_body_cannot_be_changed(world: World) -> None:
    for who in (world.b, world.x, world.y):
        resp = world.http.patch(f"/api/v1/admin/certificates/{A_NO}", json={"status": "revoked"}, headers=who)
        assert resp.status_code == 404
    assert_untouched(world)


# -- codes -----------------------------------------------------------------------------------


def test_a_body_token_cannot_take_over_another_bodys_code(world: World) -> None:
    # Body B's token points body A's code at B's certificate: refused, A's answer stays.
    rows = [code_row(CODE_A, B_NO, "B-001")]
    resp = world.http.post("/api/v1/admin/codes", json=rows, headers=world.b).get_json()
    assert resp["accepted"] == 0 and resp["rejected"][0]["code"] in {"forbidden", "code_body_mismatch"}
    assert_untouched(world)


def test_an_existing_code_of_another_body_is_refused_whatever_its_prefix(world: World) -> None:
    plant_stray_code(world.app)
    rows = [code_row(STRAY, B_NO, "B-001")]
    resp = world.http.post("/api/v1/admin/codes", json=rows, headers=world.b).get_json()
    assert resp["accepted"] == 0
    assert [(r["row"], r["key"], r["code"]) for r in resp["rejected"]] == [(0, STRAY, "forbidden")]
    assert verify(world.http, STRAY)["certificate"]["number"] == A_NO
    assert_untouched(world)


def test_a_code_whose_prefix_is_not_its_certificates_body_is_rejected_for_every_token(world: World) -> None:
    rows = [
        code_row("045626000000000050", A_NO, "A-001"),
        code_row("45626000000000050", A_NO, "A-001"),  # legacy 17 digits, body B's 456
        code_row("012326000000000050", A_NO, "A-001"),
        code_row("12326000000000050", A_NO, "A-001"),  # legacy 17 digits, body A's 123
    ]
    for who in (world.a, ADMIN):
        resp = world.http.post("/api/v1/admin/codes", json=rows, headers=who).get_json()
        assert resp["accepted"] == 2
        assert [(r["row"], r["code"]) for r in resp["rejected"]] == [
            (0, "code_body_mismatch"),
            (1, "code_body_mismatch"),
        ]
    assert verify(world.http, "045626000000000050")["verdict"] == "not_found"
    assert verify(world.http, "12326000000000050")["verdict"] == "genuine"


def test_organization_tokens_write_no_codes(world: World) -> None:
    for who in (world.x, world.y):
        rows = [code_row("012326000000000060", A_NO, "A-001")]
        resp = world.http.post("/api/v1/admin/codes", json=rows, headers=who).get_json()
        assert resp["accepted"] == 0 and resp["rejected"][0]["code"] == "forbidden"
    assert verify(world.http, "012326000000000060")["verdict"] == "not_found"


def test_a_csv_upload_cannot_take_over_another_bodys_code(world: World) -> None:
    plant_stray_code(world.app)
    csv_text = f"code,certificate,product,order\n{CODE_A},{B_NO},有机大米,B-001\n"
    csv_text += f"{STRAY},{B_NO},有机大米,B-001\n"
    resp = world.http.post(
        "/api/v1/admin/codes",
        headers=world.b,
        content_type="multipart/form-data",
        data={"file": (io.BytesIO(csv_text.encode()), "codes.csv")},
    ).get_json()
    assert resp["accepted"] == 0 and len(resp["rejected"]) == 2
    assert verify(world.http, STRAY)["certificate"]["number"] == A_NO
    assert_untouched(world)


def test_orders_of_another_body_cannot_be_voided(world: World) -> None:
    for who in (world.b, world.x, world.y):
        assert world.http.post("/api/v1/admin/orders/A-001/void", headers=who).status_code == 404
    assert_untouched(world)


# -- BQ batches ------------------------------------------------------------------------------


def test_body_tokens_write_no_bq_batches(world: World) -> None:
    forged = {**BATCH_Y, "producer": "冒名米业"}
    for who in (world.a, world.b):
        resp = world.http.post("/api/v1/admin/batches", json=forged, headers=who)
        assert resp.status_code == 403 and resp.get_json()["code"] == "forbidden"
        new = world.http.post(
            "/api/v1/admin/batches", json={**forged, "number": "WCNEW1", "codes": []}, headers=who
        )
        assert new.status_code == 403
    assert_untouched(world)


def test_an_organization_cannot_overwrite_another_organizations_batch(world: World) -> None:
    forged = {**BATCH_X, "producer": "冒名米业", "codes": [{"a_code": "ZA12345678", "b_code": "ZB12345678"}]}
    resp = world.http.post("/api/v1/admin/batches", json=forged, headers=world.y)
    assert resp.status_code == 404
    assert verify(world.http, "ZB12345678")["verdict"] == "not_found"
    assert_untouched(world)
    # The owner keeps its batch.
    mine = world.http.post(
        "/api/v1/admin/batches", json={**BATCH_X, "product": "五常稻花香"}, headers=world.x
    )
    assert mine.status_code == 200


def test_an_activated_batch_is_rewritten_by_the_regulator_only(world: World) -> None:
    forged = {**BATCH_Y, "producer": "改过的米业", "trace": {"inspection": "伪造"}}
    resp = world.http.post("/api/v1/admin/batches", json=forged, headers=world.y)
    assert resp.status_code == 409 and resp.get_json()["code"] == "batch_activated"
    assert_untouched(world)
    fixed = {**BATCH_Y, "producer": "乙米业（更正）"}
    assert world.http.post("/api/v1/admin/batches", json=fixed, headers=ADMIN).status_code == 200
    assert verify(world.http, "YB12345678")["trace"]["producer"] == "乙米业（更正）"


def test_a_regulator_update_keeps_the_batchs_owner(world: World) -> None:
    assert world.http.post("/api/v1/admin/batches", json=BATCH_X, headers=ADMIN).status_code == 200
    # Organization X still owns it: its own token may update it, Y's may not.
    assert world.http.post("/api/v1/admin/batches", json=BATCH_X, headers=world.x).status_code == 200
    assert world.http.post("/api/v1/admin/batches", json=BATCH_X, headers=world.y).status_code == 404


def test_bq_codes_of_another_batch_are_rejected_per_row(world: World) -> None:
    mine = {**BATCH_Y, "number": "WCY2026B", "codes": [{"a_code": "XA12345678", "b_code": "YB22345678"}]}
    resp = world.http.post("/api/v1/admin/batches", json=mine, headers=world.y).get_json()
    assert resp["accepted"] == 1
    assert [(r["key"], r["code"]) for r in resp["rejected"]] == [("XA12345678", "code_in_other_batch")]
    assert_untouched(world)


def test_only_the_regulator_activates_batches(world: World) -> None:
    for who in (world.a, world.b, world.x, world.y):
        assert world.http.post("/api/v1/admin/batches/WCX2026A/activate", headers=who).status_code == 403
    assert_untouched(world)


# -- scan events and flags -------------------------------------------------------------------


def events(code: str, prefix: str, n: int = 6) -> list[dict]:
    start = datetime(2026, 3, 1, tzinfo=UTC)
    return [
        {
            "event_id": f"{prefix}-{i}",
            "code": code,
            "at": (start + timedelta(hours=i)).isoformat(),
            "client": f"{prefix}{i}",
        }
        for i in range(n)
    ]


def test_scan_imports_are_refused_for_codes_outside_the_tokens_scope(world: World) -> None:
    for who, code in ((world.b, CODE_A), (world.y, CODE_A), (world.a, "XB12345678"), (world.x, "YB12345678")):
        resp = world.http.post("/api/v1/admin/scans", json=events(code, "rival"), headers=who).get_json()
        assert resp["accepted"] == 0
        assert {r["code"] for r in resp["rejected"]} == {"forbidden"}
    a = verify(world.http, CODE_A)
    assert a["verdict"] == "genuine" and a["scans"]["count"] == 1 and a["flags"] == []
    assert not a["scans"]["first_at"].startswith("2026-03-01")
    assert verify(world.http, "YB12345678")["flags"] == []


def test_scan_imports_in_scope_are_accepted(world: World) -> None:
    for who, code, prefix in (
        (world.a, CODE_A, "body"),
        (world.x, LEGACY_A, "brand"),
        (world.y, "YA12345678", "brand-bq"),
    ):
        resp = world.http.post("/api/v1/admin/scans", json=events(code, prefix, 2), headers=who).get_json()
        assert resp == {"accepted": 2, "rejected": []}


def test_scan_imports_for_never_issued_codes_are_refused_even_for_the_regulator(world: World) -> None:
    ghost = "012326000000000777"
    for who in (world.a, ADMIN):
        resp = world.http.post("/api/v1/admin/scans", json=events(ghost, "ghost", 2), headers=who).get_json()
        assert resp["accepted"] == 0 and {r["code"] for r in resp["rejected"]} == {"code_not_found"}


def test_flags_are_read_and_reviewed_within_scope_only(world: World) -> None:
    resp = world.http.post("/api/v1/admin/scans", json=events(CODE_A, "copy"), headers=ADMIN).get_json()
    assert resp["accepted"] == 6
    persist(world.app)
    own = world.http.get("/api/v1/admin/flags", headers=world.a).get_json()["items"]
    assert own and {f["code"] for f in own} == {CODE_A}
    assert {
        f["code"] for f in world.http.get("/api/v1/admin/flags", headers=world.x).get_json()["items"]
    } == {CODE_A}
    for who in (world.b, world.y):
        assert world.http.get("/api/v1/admin/flags", headers=who).get_json()["items"] == []
        page = world.http.get(f"/api/v1/admin/flags?certificate={A_NO}", headers=who).get_json()
        assert page["items"] == []
        resp = world.http.patch(
            f"/api/v1/admin/flags/{own[0]['id']}", json={"status": "dismissed"}, headers=who
        )
        assert resp.status_code == 404
    after = world.http.get("/api/v1/admin/flags", headers=world.a).get_json()["items"]
    assert [f["status"] for f in after] == [f["status"] for f in own]
    assert verify(world.http, CODE_A)["verdict"] == "suspicious"


# -- tokens ----------------------------------------------------------------------------------


def test_token_lists_show_own_scope_tokens_without_secrets(world: World) -> None:
    listed = world.http.get("/api/v1/admin/tokens", headers=world.b)
    assert listed.status_code == 200
    items = listed.get_json()["items"]
    assert [i["name"] for i in items] == ["body B"]
    assert "token_hash" not in items[0] and "token" not in items[0]
    assert {
        i["name"] for i in world.http.get("/api/v1/admin/tokens", headers=world.y).get_json()["items"]
    } == {"brand Y"}
    everyone = world.http.get("/api/v1/admin/tokens", headers=ADMIN).get_json()["items"]
    assert {i["name"] for i in everyone} == {"body A", "body B", "brand X", "brand Y"}


def test_tokens_of_another_scope_cannot_be_revoked(world: World) -> None:
    ids = {
        i["name"]: i["id"] for i in world.http.get("/api/v1/admin/tokens", headers=ADMIN).get_json()["items"]
    }
    for who, victim in ((world.b, "body A"), (world.x, "body A"), (world.y, "brand X"), (world.a, "brand X")):
        assert world.http.delete(f"/api/v1/admin/tokens/{ids[victim]}", headers=who).status_code == 404
    assert world.http.get("/api/v1/admin/tokens", headers=world.a).status_code == 200
    assert world.http.get("/api/v1/admin/tokens", headers=world.x).status_code == 200


def test_the_guarded_upsert_leaves_another_bodys_code_alone_even_without_the_service_check(
    world: World,
) -> None:
    # The race the per-chunk check cannot see: a code moved to body A after body B's check.
    plant_stray_code(world.app)
    registry = container(world.app).registry
    body_b = registry.scope_target_id("body", "0456")
    with registry.engine.begin() as conn:
        group_b = conn.execute(
            t.label_groups.select().where(
                t.label_groups.c.certificate_id
                == t.certificates.select()
                .with_only_columns(t.certificates.c.id)
                .where(t.certificates.c.number == B_NO)
                .scalar_subquery()
            )
        ).first()
        assert group_b is not None
        rows = [
            {"code": int(STRAY), "group_id": group_b.id, "issued_on": None, "identity_code": "forged"},
            {"code": int(CODE_B), "group_id": group_b.id, "issued_on": None, "identity_code": "B-own"},
        ]
        registry.write_codes(conn, rows, body_id=body_b)
    container(world.app).admin._changed("codes", "status", codes=[STRAY, CODE_B])
    stray = verify(world.http, STRAY)
    assert stray["certificate"]["number"] == A_NO
    assert registry.find_code(STRAY, CodeKind.ORGANIC).identity_code is None  # type: ignore[union-attr]
    assert registry.find_code(CODE_B, CodeKind.ORGANIC).identity_code == "B-own"  # type: ignore[union-attr]


# -- review findings: scope follows current ownership, orders only for rows that land ---------


def raise_copy_flag(w: World) -> None:
    """A suspicious copy flag on CODE_A (six distinct clients), stored as `flask worker` does."""
    resp = w.http.post("/api/v1/admin/scans", json=events(CODE_A, "copy"), headers=ADMIN).get_json()
    assert resp["accepted"] == 6
    persist(w.app)
    assert verify(w.http, CODE_A)["verdict"] == "suspicious"


def flag_codes(w: World, who: dict[str, str]) -> set[str]:
    return {f["code"] for f in w.http.get("/api/v1/admin/flags", headers=who).get_json()["items"]}


def test_a_former_owner_neither_sees_nor_reviews_flags_after_the_certificate_changes_holder(
    world: World,
) -> None:
    raise_copy_flag(world)
    flag_id = world.http.get("/api/v1/admin/flags", headers=world.x).get_json()["items"][0]["id"]
    moved = {**CERT_A, "holder": "丙农场", "producer": "丙农场"}
    assert world.http.post("/api/v1/admin/certificates", json=[moved], headers=world.a).get_json() == {
        "accepted": 1,
        "rejected": [],
    }
    z = bearer(container(world.app).admin.create_token("brand Z", "organization", "丙农场"))
    assert flag_codes(world, world.x) == set()
    resp = world.http.patch(f"/api/v1/admin/flags/{flag_id}", json={"status": "dismissed"}, headers=world.x)
    assert resp.status_code == 404
    assert verify(world.http, CODE_A)["verdict"] == "suspicious"
    assert flag_codes(world, z) == {CODE_A}
    assert flag_codes(world, world.a) == {CODE_A}
    resp = world.http.patch(f"/api/v1/admin/flags/{flag_id}", json={"status": "dismissed"}, headers=z)
    assert resp.status_code == 200


def test_flags_follow_a_code_moved_to_another_certificate(world: World) -> None:
    raise_copy_flag(world)
    # Body A issues a second certificate, held by brand Y, and moves CODE_A onto it.
    other = {**CERT_A, "number": "0123OP2600019", "holder": "乙农场", "producer": "乙农场"}
    assert (
        world.http.post("/api/v1/admin/certificates", json=[other], headers=world.a).get_json()["accepted"]
        == 1
    )
    rows = [code_row(CODE_A, other["number"], "A-009")]
    assert world.http.post("/api/v1/admin/codes", json=rows, headers=world.a).get_json()["accepted"] == 1
    assert flag_codes(world, world.x) == set()
    assert flag_codes(world, world.y) == {CODE_A}
    flag_id = world.http.get("/api/v1/admin/flags", headers=world.y).get_json()["items"][0]["id"]
    resp = world.http.patch(f"/api/v1/admin/flags/{flag_id}", json={"status": "dismissed"}, headers=world.x)
    assert resp.status_code == 404
    page = world.http.get(f"/api/v1/admin/flags?certificate={other['number']}", headers=world.y).get_json()
    assert {f["code"] for f in page["items"]} == {CODE_A}


def test_a_rejected_row_creates_no_order_another_body_could_need(world: World) -> None:
    # Body A sends rows that are themselves refused, naming an order number body B will use.
    squat = [
        code_row("045626000000000005", A_NO, "B-002"),  # body B's prefix on A's certificate
        code_row(CODE_B, A_NO, "B-003"),  # body B's code
    ]
    resp = world.http.post("/api/v1/admin/codes", json=squat, headers=world.a).get_json()
    assert resp["accepted"] == 0
    assert [r["code"] for r in resp["rejected"]] == ["code_body_mismatch", "code_body_mismatch"]
    rows = [code_row("045626000000000002", B_NO, "B-002"), code_row("045626000000000003", B_NO, "B-003")]
    assert world.http.post("/api/v1/admin/codes", json=rows, headers=world.b).get_json() == {
        "accepted": 2,
        "rejected": [],
    }
    assert verify(world.http, "045626000000000002")["certificate"]["number"] == B_NO


def test_a_row_refused_as_another_bodys_code_creates_no_order(world: World) -> None:
    plant_stray_code(world.app)  # body B's numbering, on body A's certificate
    rows = [code_row(STRAY, B_NO, "A-777")]
    resp = world.http.post("/api/v1/admin/codes", json=rows, headers=world.b).get_json()
    assert [r["code"] for r in resp["rejected"]] == ["forbidden"]
    rows = [code_row("012326000000000007", A_NO, "A-777")]
    assert world.http.post("/api/v1/admin/codes", json=rows, headers=world.a).get_json() == {
        "accepted": 1,
        "rejected": [],
    }


def test_a_code_the_guard_skips_is_reported_forbidden_not_accepted(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The race: STRAY moved to body A after body B's per-chunk owner check, which here
    # kept every row, as it did before the move.
    plant_stray_code(world.app)
    admin = container(world.app).admin
    monkeypatch.setattr(admin, "_own_codes", lambda _body, out, *_rest: list(range(len(out))))
    rows = [code_row(STRAY, B_NO, "B-001"), code_row("045626000000000004", B_NO, "B-001")]
    resp = world.http.post("/api/v1/admin/codes", json=rows, headers=world.b).get_json()
    assert resp["accepted"] == 1
    assert [(r["row"], r["key"], r["code"]) for r in resp["rejected"]] == [(0, STRAY, "forbidden")]
    assert verify(world.http, STRAY)["certificate"]["number"] == A_NO


def test_an_import_through_a_file_writer_is_refused_for_a_body_scope(world: World) -> None:
    body_a = container(world.app).registry.scope_target_id("body", "0123")
    with pytest.raises(ValueError, match="all scope"):
        container(world.app).admin.import_codes(
            [code_row(CODE_A, A_NO, "A-001")], Scope("body", body_a), writer=lambda *_: None
        )


def test_create_token_with_an_expiry_past_year_9999_says_so_without_a_traceback(world: World) -> None:
    result = world.app.test_cli_runner().invoke(
        args=["create-token", "x", "--scope", "all", "--expires-in-days", "3000000"]
    )
    assert result.exit_code != 0 and isinstance(result.exception, SystemExit), result.exception
    assert "Error:" in result.output


def test_two_calls_creating_the_same_new_batch_on_mariadb_get_one_batch_and_one_409(
    service_app: Flask,
) -> None:
    http = service_app.test_client()
    registry = container(service_app).registry
    both_locked = threading.Barrier(2, timeout=10)

    def after_both_locked(conn, cursor, statement, *args):  # type: ignore[no-untyped-def]
        # Both calls have run SELECT ... FOR UPDATE on the missing number (a gap lock each)
        # before either inserts: the interleaving that deadlocks, made certain.
        if statement.startswith("INSERT INTO batches"):
            both_locked.wait()

    sa.event.listen(registry.engine, "before_cursor_execute", after_both_locked)
    try:
        with ThreadPoolExecutor(2) as pool:
            answers = list(
                pool.map(
                    lambda n: service_app.test_client().post(
                        "/api/v1/admin/batches",
                        json={**BATCH_X, "codes": [{"a_code": f"QA{n}345678", "b_code": f"QB{n}345678"}]},
                        headers=ADMIN,
                    ),
                    (1, 2),
                )
            )
    finally:
        sa.event.remove(registry.engine, "before_cursor_execute", after_both_locked)
    assert sorted(a.status_code for a in answers) == [200, 409]
    assert [a.get_json()["code"] for a in answers if a.status_code == 409] == ["batch_conflict"]
    assert http.post("/api/v1/verify", json={"input": "QA1345678"}).status_code == 200
