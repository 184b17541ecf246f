"""The admin API: authentication, scoping, idempotent bulk upserts with per-row errors."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from typing import Any

import openpyxl
import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from registry import schema as t
from tests.conftest import ADMIN
from webapp import container

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
    # Activation follows a passed inspection (seed 002): the report first.
    refused = admin.post("/api/v1/admin/batches/WCMY20261001A/activate", headers=ADMIN)
    assert refused.status_code == 409 and refused.get_json()["code"] == "inspection_required"
    report = {
        "report": (io.BytesIO(b"\xff\xd8\xff\xe0 a scan"), "r.jpg"),
        "report_number": "JC-1",
        "laboratory": "检验检测中心",
        "result": "pass",
        "inspected_on": "2026-10-02",
    }
    got = admin.post("/api/v1/admin/batches/WCMY20261001A/inspection", data=report, headers=ADMIN)
    assert got.status_code == 201, got.get_data(as_text=True)
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


# -- token lifecycle -------------------------------------------------------------------------


def _token_row(app: Flask, name: str) -> Any:
    a = t.api_tokens
    with container(app).registry.engine.connect() as conn:
        return conn.execute(sa.select(a).where(a.c.name == name)).one()


def test_an_expired_token_is_refused(any_app: Flask, admin: FlaskClient) -> None:
    c = container(any_app)
    past = datetime.now(UTC) - timedelta(minutes=1)
    expired = c.admin.create_token("old", "body", "0123", expires_at=past)
    live = c.admin.create_token("new", "body", "0123", expires_at=past + timedelta(days=2))
    assert (
        admin.get("/api/v1/admin/tokens", headers={"Authorization": f"Bearer {expired}"}).status_code == 401
    )
    assert admin.get("/api/v1/admin/tokens", headers={"Authorization": f"Bearer {live}"}).status_code == 200


def test_a_revoked_token_is_refused_from_its_next_call(any_app: Flask, admin: FlaskClient) -> None:
    c = container(any_app)
    own = {"Authorization": f"Bearer {c.admin.create_token('own', 'body', '0123')}"}
    spare = {"Authorization": f"Bearer {c.admin.create_token('spare', 'body', '0123')}"}
    spare_id = _token_row(any_app, "spare").id
    resp = admin.delete(f"/api/v1/admin/tokens/{spare_id}", headers=own)
    assert resp.status_code == 200 and resp.get_json()["revoked_at"]
    assert admin.get("/api/v1/admin/tokens", headers=spare).status_code == 401
    again = admin.delete(f"/api/v1/admin/tokens/{spare_id}", headers=ADMIN)
    assert again.get_json()["revoked_at"] == resp.get_json()["revoked_at"]  # idempotent
    assert admin.delete("/api/v1/admin/tokens/999999", headers=ADMIN).status_code == 404
    assert admin.get("/api/v1/admin/tokens", headers=own).status_code == 200


def test_last_use_is_recorded_at_most_once_a_minute(any_app: Flask, admin: FlaskClient) -> None:
    c = container(any_app)
    headers = {"Authorization": f"Bearer {c.admin.create_token('used', 'body', '0123')}"}
    assert _token_row(any_app, "used").last_used_at is None
    admin.get("/api/v1/admin/tokens", headers=headers)
    first = _token_row(any_app, "used").last_used_at
    assert first is not None
    a = t.api_tokens
    recent = first - timedelta(seconds=30)
    with c.registry.engine.begin() as conn:
        conn.execute(a.update().where(a.c.name == "used").values(last_used_at=recent))
    admin.get("/api/v1/admin/tokens", headers=headers)
    assert _token_row(any_app, "used").last_used_at == recent  # within the minute: no write
    with c.registry.engine.begin() as conn:
        conn.execute(a.update().where(a.c.name == "used").values(last_used_at=first - timedelta(minutes=5)))
    listed = admin.get("/api/v1/admin/tokens", headers=headers).get_json()["items"]
    assert _token_row(any_app, "used").last_used_at > first - timedelta(minutes=1)
    assert listed[0]["name"] == "used" and "last_used_at" in listed[0]


def test_create_token_with_an_unknown_target_says_so_without_a_traceback(
    any_app: Flask, admin: FlaskClient
) -> None:
    runner = any_app.test_cli_runner()
    for args in (
        ["create-token", "x", "--scope", "body", "--target", "9999"],
        ["create-token", "x", "--scope", "organization", "--target", "无此公司"],
        ["create-token", "x", "--scope", "body"],
    ):
        result = runner.invoke(args=args)
        assert result.exit_code != 0
        # A handled exit with a message, not an exception escaping with its traceback.
        assert isinstance(result.exception, SystemExit), result.exception
        assert "Error:" in result.output


def test_cli_tokens_expire_in_a_year_by_default_and_are_revoked_by_name(
    any_app: Flask, admin: FlaskClient
) -> None:
    runner = any_app.test_cli_runner()
    made = runner.invoke(args=["create-token", "cqc ops", "--scope", "body", "--target", "0123"])
    assert made.exit_code == 0, made.output
    raw = made.output.splitlines()[0]
    expires = _token_row(any_app, "cqc ops").expires_at
    assert timedelta(days=364) < expires - datetime.now(UTC).replace(tzinfo=None) <= timedelta(days=365)
    forever = runner.invoke(args=["create-token", "forever", "--scope", "all", "--expires-in-days", "0"])
    assert forever.exit_code == 0 and _token_row(any_app, "forever").expires_at is None
    headers = {"Authorization": f"Bearer {raw}"}
    assert admin.get("/api/v1/admin/tokens", headers=headers).status_code == 200
    revoked = runner.invoke(args=["revoke-token", "cqc ops"])
    assert revoked.exit_code == 0 and "revoked" in revoked.output
    assert admin.get("/api/v1/admin/tokens", headers=headers).status_code == 401
    missing = runner.invoke(args=["revoke-token", "nobody"])
    assert missing.exit_code != 0 and "Traceback" not in missing.output


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("PATCH", "/api/v1/admin/flags/{n}"),
        ("GET", "/api/v1/admin/flags/{n}/evidence.pdf"),
        ("GET", "/api/v1/admin/webhooks/{n}"),
        ("DELETE", "/api/v1/admin/tokens/{n}"),
    ],
)
def test_a_row_id_past_any_row_is_a_404_problem_not_a_500(any_app: Flask, method: str, path: str) -> None:
    # SQLite cannot bind an integer past 2**63; MariaDB's keys end at 2**31 - 1.
    client = any_app.test_client()
    for n in (2**31, 2**70):
        resp = client.open(path.format(n=n), method=method, json={"status": "confirmed"}, headers=ADMIN)
        assert resp.status_code == 404, (path, n, resp.status_code)
        assert resp.mimetype == "application/problem+json"
