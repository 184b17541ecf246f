"""The admin API: authentication, scoping, idempotent bulk upserts with per-row errors."""

from __future__ import annotations

import io

import openpyxl
import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.conftest import ADMIN
from verify_api.app import container

BODY = {"code": "0123", "name": "示范认证中心", "approval_number": "CNCA-R-2002-123"}
OTHER_BODY = {"code": "0456", "name": "另一认证中心"}
CERT = {
    "number": "0123OP2600017",
    "body_code": "0123",
    "holder": "示范农场",
    "kind": "organic",
    "valid_from": "2026-01-01",
    "valid_until": "2026-12-31",
    "products": [{"name": "有机大米", "certified_tonnes": "100"}],
}


def code_row(i: int, **extra: object) -> dict:
    return {
        "code": f"0123260000{i:08d}",
        "certificate": "0123OP2600017",
        "product": "有机大米",
        "issued_on": "2026-03-01",
        "order": "20260301-001",
        "package": "5kg",
        "label_spec": "25*16mm oval",
        **extra,
    }


@pytest.fixture
def admin(any_app: Flask) -> FlaskClient:
    client = any_app.test_client()
    assert (
        client.post("/api/v1/admin/bodies", json=[BODY, OTHER_BODY], headers=ADMIN).get_json()["accepted"]
        == 2
    )
    assert client.post("/api/v1/admin/certificates", json=[CERT], headers=ADMIN).get_json() == {
        "accepted": 1,
        "rejected": [],
    }
    return client


def verdict(client: FlaskClient, code: str) -> str:
    return client.post("/api/v1/verify", json={"input": code}).get_json()["verdict"]


def test_admin_calls_need_a_valid_bearer_token(any_app: Flask) -> None:
    client = any_app.test_client()
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic abc"}):
        resp = client.post("/api/v1/admin/bodies", json=[BODY], headers=headers)
        assert resp.status_code == 401
        assert resp.mimetype == "application/problem+json"
        assert resp.headers["WWW-Authenticate"].startswith("Bearer")


def test_code_import_is_idempotent_and_reports_bad_rows_without_dropping_good_ones(
    admin: FlaskClient,
) -> None:
    rows = [
        code_row(1),
        code_row(2),
        {"code": "12ab", "certificate": "0123OP2600017", "product": "有机大米"},
        code_row(3, product="不存在的产品"),
        code_row(4, certificate="0123OP2600099"),
        "not an object",
    ]
    first = admin.post("/api/v1/admin/codes", json=rows, headers=ADMIN).get_json()
    assert first["accepted"] == 2
    assert sorted((r["row"], r["code"]) for r in first["rejected"]) == [
        (2, "invalid_code"),
        (3, "unknown_product"),
        (4, "unknown_certificate"),
        (5, "invalid_row"),
    ]
    second = admin.post("/api/v1/admin/codes", json=rows, headers=ADMIN).get_json()
    assert second["accepted"] == 2 and len(second["rejected"]) == 4
    assert verdict(admin, code_row(1)["code"]) == "genuine"
    assert verdict(admin, code_row(3)["code"]) == "not_found"


def test_codes_upload_as_csv_and_xlsx(admin: FlaskClient) -> None:
    csv_text = (
        "code,certificate,product,issued_on,order\n"
        + "\n".join(
            f"{code_row(i)['code']},0123OP2600017,有机大米,2026-03-01,20260301-002" for i in range(10, 15)
        )
        + "\nbad,0123OP2600017,有机大米,,\n"
    )
    resp = admin.post(
        "/api/v1/admin/codes",
        headers=ADMIN,
        content_type="multipart/form-data",
        data={"file": (io.BytesIO(csv_text.encode()), "codes.csv")},
    ).get_json()
    assert resp["accepted"] == 5 and resp["rejected"][0]["row"] == 5
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(["code", "certificate", "product"])
    sheet.append([code_row(20)["code"], "0123OP2600017", "有机大米"])
    sheet.append([123260000000021, "0123OP2600017", "有机大米"])  # a number cell: digits already lost
    buf = io.BytesIO()
    book.save(buf)
    resp = admin.post(
        "/api/v1/admin/codes",
        headers=ADMIN,
        content_type="multipart/form-data",
        data={"file": (io.BytesIO(buf.getvalue()), "codes.xlsx")},
    ).get_json()
    assert resp["accepted"] == 1
    assert "text" in resp["rejected"][0]["detail"]
    assert verdict(admin, code_row(20)["code"]) == "genuine"


def test_status_change_void_and_activation_show_in_the_next_answer(admin: FlaskClient) -> None:
    admin.post("/api/v1/admin/codes", json=[code_row(1), code_row(2, order="20260301-009")], headers=ADMIN)
    assert verdict(admin, code_row(1)["code"]) == "genuine"
    resp = admin.patch(
        "/api/v1/admin/certificates/0123OP2600017",
        headers=ADMIN,
        json={"status": "suspended", "reason": "监督抽查不合格", "effective_on": "2026-06-01"},
    )
    assert resp.status_code == 200 and resp.get_json()["status"] == "suspended"
    assert verdict(admin, code_row(1)["code"]) == "certificate_suspended"
    admin.patch("/api/v1/admin/certificates/0123OP2600017", headers=ADMIN, json={"status": "valid"})
    assert verdict(admin, code_row(1)["code"]) == "genuine"
    assert admin.post("/api/v1/admin/orders/20260301-009/void", headers=ADMIN).status_code == 200
    assert verdict(admin, code_row(2)["code"]) == "voided"
    assert verdict(admin, code_row(1)["code"]) == "genuine"
    admin.patch("/api/v1/admin/certificates/0123OP2600017", headers=ADMIN, json={"status": "revoked"})
    final = admin.patch("/api/v1/admin/certificates/0123OP2600017", headers=ADMIN, json={"status": "valid"})
    assert final.status_code == 409 and final.get_json()["code"] == "status_final"


def test_batches_verify_not_activated_until_activated(admin: FlaskClient) -> None:
    batch = {
        "number": "WCMY20261001A",
        "producer": "五常米业",
        "product": "五常大米",
        "net_content_kg": "5",
        "codes": [{"a_code": "Aa1234567890", "b_code": "Bb1234567890"}],
        "trace": {"seed": "五优稻4号"},
    }
    assert admin.post("/api/v1/admin/batches", json=batch, headers=ADMIN).get_json()["accepted"] == 2
    assert verdict(admin, "Bb1234567890") == "not_activated"
    assert admin.post("/api/v1/admin/batches/WCMY20261001A/activate", headers=ADMIN).status_code == 200
    assert verdict(admin, "Bb1234567890") == "genuine"
    other = {**batch, "number": "WCMY20261001B"}
    resp = admin.post("/api/v1/admin/batches", json=other, headers=ADMIN).get_json()
    assert resp["accepted"] == 0 and {r["code"] for r in resp["rejected"]} == {"code_in_other_batch"}


def test_tokens_are_scoped_to_one_body(any_app: Flask, admin: FlaskClient) -> None:
    c = container(any_app)
    own = c.admin.create_token("own", "body", "0123")
    other = c.admin.create_token("other", "body", "0456")
    assert (
        admin.post(
            "/api/v1/admin/codes", json=[code_row(1)], headers={"Authorization": f"Bearer {own}"}
        ).get_json()["accepted"]
        == 1
    )
    foreign = admin.post(
        "/api/v1/admin/codes", json=[code_row(2)], headers={"Authorization": f"Bearer {other}"}
    ).get_json()
    assert foreign["accepted"] == 0 and foreign["rejected"][0]["code"] == "forbidden"
    resp = admin.patch(
        "/api/v1/admin/certificates/0123OP2600017",
        json={"status": "suspended"},
        headers={"Authorization": f"Bearer {other}"},
    )
    assert resp.status_code == 404
    assert (
        admin.post(
            "/api/v1/admin/bodies", json=[BODY], headers={"Authorization": f"Bearer {own}"}
        ).status_code
        == 403
    )


@pytest.mark.parametrize(
    ("path", "payload", "code"),
    [
        ("/api/v1/admin/certificates", [{"number": "bad"}], "invalid_certificate_number"),
        ("/api/v1/admin/certificates", [{**CERT, "valid_until": "2025-01-01"}], "invalid_row"),
        ("/api/v1/admin/bodies", [{"name": "x"}], "invalid_row"),
    ],
)
def test_bad_rows_are_reported_per_row(admin: FlaskClient, path: str, payload: list, code: str) -> None:
    resp = admin.post(path, json=payload, headers=ADMIN)
    assert resp.status_code == 200
    body = resp.get_json()
    assert body["accepted"] == 0 and body["rejected"][0]["code"] == code


@pytest.mark.parametrize(
    ("method", "path", "kwargs"),
    [
        ("patch", "/api/v1/admin/certificates/0123OP2600017", {"json": {"status": "maybe"}}),
        ("patch", "/api/v1/admin/certificates/bad", {"json": {"status": "valid"}}),
        ("post", "/api/v1/admin/batches", {"json": {"number": "x"}}),
        ("post", "/api/v1/admin/codes", {"data": "x", "content_type": "text/plain"}),
        ("post", "/api/v1/admin/codes", {"data": {"nofile": "1"}, "content_type": "multipart/form-data"}),
        ("post", "/api/v1/admin/orders/nope/void", {}),
        ("post", "/api/v1/admin/batches/nope/activate", {}),
    ],
)
def test_malformed_admin_calls_are_4xx_problems(
    admin: FlaskClient, method: str, path: str, kwargs: dict
) -> None:
    resp = getattr(admin, method)(path, headers=ADMIN, **kwargs)
    assert 400 <= resp.status_code < 500, resp.get_data(as_text=True)
    assert resp.mimetype == "application/problem+json"
