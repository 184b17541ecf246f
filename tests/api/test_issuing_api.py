"""Label issuance through the admin API (issue 17), seed 000's story: an organization
creates product specs and an order that is rejected automatically for quantity, fixes and
resubmits it; the certification body rejects it once (the quantity comes back), approves
it, allocates it with generated codes, exports the order sheet and the CNCA filing record;
a printer's code file is loaded for a second order; printing losses and a voided order
verify `voided` and the quantity is returned. Every step is also tried with the tokens of
another body and another organization, which see nothing.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from flask import Flask
from flask.testing import FlaskClient
from openpyxl import load_workbook
from werkzeug.datastructures import FileStorage
from werkzeug.test import encode_multipart

from domain.bulk import Scope
from domain.china_time import china_today
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
    "holder": "演示企业",
    "valid_from": "2026-01-01",
    "valid_until": "2099-12-31",
    "products": [
        {"name": "大米", "description": "大米", "certified_tonnes": "0.05"},
        {"name": "绿豆", "description": "绿豆", "certified_tonnes": "50"},
    ],
}
CERT_B = {**CERT_A, "number": B_NO, "body_code": "0456", "holder": "乙企业", "products": [{"name": "大米"}]}
SHIPPING = {
    "address": "浙江省杭州市上城区沈家路159号",
    "postcode": "123456",
    "contact": "企业",
    "phone": "0571-1234567",
}
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


@dataclass
class World:
    http: FlaskClient
    app: Flask
    a: dict[str, str]  # body A (certifies the order)
    b: dict[str, str]  # another body
    x: dict[str, str]  # the organization holding certificate A
    y: dict[str, str]  # another organization
    rice: int = 0
    beans: int = 0


def bearer(raw: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {raw}"}


@pytest.fixture
def world(any_app: Flask) -> World:
    http = any_app.test_client()
    assert http.post("/api/v1/admin/bodies", json=BODIES, headers=ADMIN).get_json()["accepted"] == 2
    got = http.post("/api/v1/admin/certificates", json=[CERT_A, CERT_B], headers=ADMIN).get_json()
    assert got == {"accepted": 2, "rejected": []}
    admin = container(any_app).admin
    w = World(
        http,
        any_app,
        bearer(admin.create_token("body A", "body", "0123")),
        bearer(admin.create_token("body B", "body", "0456")),
        bearer(admin.create_token("org X", "organization", "演示企业")),
        bearer(admin.create_token("org Y", "organization", "乙企业")),
    )
    specs = [
        {
            "certificate": A_NO,
            "product": "大米",
            "trade_name": "大米",
            "package_spec": "10千克",
            "weight_kg": "10",
            "label_spec": "25*16mm椭圆标",
        },
        {
            "certificate": A_NO,
            "product": "绿豆",
            "trade_name": "绿豆",
            "package_spec": "1千克",
            "weight_kg": 1,
            "label_spec": "25*17mm有机二维码",
        },
    ]
    got = http.post("/api/v1/admin/product-specs", json=specs, headers=w.x).get_json()
    assert got["accepted"] == 2 and got["rejected"] == []
    w.rice, w.beans = (item["id"] for item in got["items"])
    # The same rows again are the same specs (idempotent).
    again = http.post("/api/v1/admin/product-specs", json=specs, headers=w.x).get_json()
    assert [item["id"] for item in again["items"]] == [w.rice, w.beans]
    return w


def verify(http: FlaskClient, code: str) -> dict:
    resp = http.post("/api/v1/verify", json={"input": code})
    assert resp.status_code == 200, resp.get_data(as_text=True)
    return resp.get_json()


def quantities(w: World) -> dict[str, dict]:
    got = w.http.get(f"/api/v1/admin/certificates/{A_NO}/quantities", headers=w.x)
    assert got.status_code == 200, got.get_data(as_text=True)
    return {p["product"]: p for p in got.get_json()["products"]}


def order(w: World, lines: list[dict], headers: dict[str, str] | None = None) -> dict:
    got = w.http.post(
        "/api/v1/admin/orders",
        json={"certificate": A_NO, **SHIPPING, "lines": lines},
        headers=headers or w.x,
    )
    assert got.status_code == 201, got.get_data(as_text=True)
    return got.get_json()


def test_specs_are_scoped_and_bad_rows_are_reported_one_by_one(world: World) -> None:
    w = world
    rows = [
        {
            "certificate": A_NO,
            "product": "小米",
            "trade_name": "t",
            "package_spec": "1",
            "weight_kg": 1,
            "label_spec": "s",
        },
        {
            "certificate": A_NO,
            "product": "大米",
            "trade_name": "t",
            "package_spec": "1",
            "weight_kg": 0,
            "label_spec": "s",
        },
        {
            "certificate": A_NO,
            "product": "大米",
            "trade_name": "t2",
            "package_spec": "1",
            "weight_kg": 1,
            "label_spec": "s",
        },
    ]
    got = w.http.post("/api/v1/admin/product-specs", json=rows, headers=w.x).get_json()
    assert got["accepted"] == 1 and [(e["row"], e["code"]) for e in got["rejected"]] == [
        (0, "unknown_product"),
        (1, "invalid_row"),
    ]
    # Another organization, and the certifying body itself, write no spec of this certificate.
    for headers, code in ((w.y, "unknown_product"), (w.b, "unknown_product"), (w.a, "forbidden")):
        got = w.http.post("/api/v1/admin/product-specs", json=rows[2:], headers=headers).get_json()
        assert [e["code"] for e in got["rejected"]] == [code]
    assert len(w.http.get("/api/v1/admin/product-specs", headers=w.a).get_json()["items"]) == 3
    assert w.http.get("/api/v1/admin/product-specs", headers=w.y).get_json()["items"] == []
    assert w.http.get("/api/v1/admin/product-specs", headers=w.b).get_json()["items"] == []


def test_spec_photos_are_sniffed_and_bounded(world: World) -> None:
    w = world
    url = f"/api/v1/admin/product-specs/{w.rice}/photos"
    got = w.http.post(url, data={"photo": (io.BytesIO(PNG), "label.jpg")}, headers=w.x)
    assert got.status_code == 201 and got.get_json()["content_type"] == "image/png"  # the bytes, not the name
    assert w.http.get(got.get_json()["url"], headers=w.a).data == PNG
    assert w.http.get(got.get_json()["url"], headers=w.y).status_code == 404
    fake = w.http.post(url, data={"photo": (io.BytesIO(b"<svg/>"), "label.png")}, headers=w.x)
    assert fake.status_code == 415 and fake.mimetype == "application/problem+json"
    # Encoded here: the test client would spool a body this large to a file it never closes.
    boundary, body = encode_multipart({"photo": FileStorage(io.BytesIO(PNG + b"\0" * 6 * 2**20), "a.png")})
    big = w.http.post(url, data=body, content_type=f"multipart/form-data; boundary={boundary}", headers=w.x)
    assert big.status_code == 413
    assert w.http.post(url, data={"photo": (io.BytesIO(PNG), "a.png")}, headers=w.y).status_code == 404
    for n in range(5):
        assert (
            w.http.post(url, data={"photo": (io.BytesIO(PNG + bytes([n])), "a.png")}, headers=w.x).status_code
            == 201
        )
    assert w.http.post(url, data={"photo": (io.BytesIO(PNG + b"x"), "a.png")}, headers=w.x).status_code == 409


def test_seed_000_story_from_order_to_void(world: World) -> None:
    w = world
    created = order(
        w,
        [
            {"spec_id": w.rice, "quantity": 6, "unit_price": "0.06"},
            {"spec_id": w.beans, "quantity": 2, "unit_price": 1},
        ],
    )
    number = created["number"]
    assert created["status"] == "new" and len(number) == 12 and number[8] == "-"
    assert [line["label_number"] for line in created["lines"]] == [f"{number}-1", f"{number}-2"]
    assert created["total_price"] == "2.36"
    for headers in (w.y, w.b):
        assert w.http.get(f"/api/v1/admin/orders/{number}", headers=headers).status_code == 404
        assert w.http.post(f"/api/v1/admin/orders/{number}/submit", headers=headers).status_code == 404

    # 6 x 10 kg of rice, 50 kg certified: rejected automatically, saying by how much.
    got = w.http.post(f"/api/v1/admin/orders/{number}/submit", headers=w.x).get_json()
    assert got["status"] == "auto_rejected"
    assert got["shortfalls"] == [
        {
            "product": "大米",
            "needed_tonnes": "0.060000",
            "available_tonnes": "0.050000",
            "over_by_tonnes": "0.010000",
        }
    ]
    assert quantities(w)["大米"]["used_tonnes"] == "0.000000"

    # The organization edits the line and resubmits: approved, and the quantity is used.
    lines = [
        {"spec_id": w.rice, "quantity": 5, "unit_price": "0.06"},
        {"spec_id": w.beans, "quantity": 2, "unit_price": 1},
    ]
    edit = w.http.put(f"/api/v1/admin/orders/{number}", json={**SHIPPING, "lines": lines}, headers=w.x)
    assert edit.status_code == 200, edit.get_data(as_text=True)
    got = w.http.post(f"/api/v1/admin/orders/{number}/submit", headers=w.x).get_json()
    assert got["status"] == "auto_approved" and got["shortfalls"] == []
    q = quantities(w)
    assert (q["大米"]["used_tonnes"], q["大米"]["available_tonnes"]) == ("0.050000", "0.000000")
    assert (q["绿豆"]["used_tonnes"], q["绿豆"]["available_tonnes"]) == ("0.002000", "49.998000")
    # An auto-approved order is no longer edited.
    again = w.http.put(f"/api/v1/admin/orders/{number}", json={**SHIPPING, "lines": lines}, headers=w.x)
    assert again.status_code == 409 and again.get_json()["code"] == "order_state"

    # The organization does not review its own order; the body rejects it with a reason.
    assert (
        w.http.post(
            f"/api/v1/admin/orders/{number}/review", json={"decision": "approve"}, headers=w.x
        ).status_code
        == 403
    )
    assert (
        w.http.post(
            f"/api/v1/admin/orders/{number}/review", json={"decision": "reject"}, headers=w.a
        ).status_code
        == 400
    )
    got = w.http.post(
        f"/api/v1/admin/orders/{number}/review",
        json={"decision": "reject", "reason": "缺少协议书"},
        headers=w.a,
    ).get_json()
    assert got["status"] == "manually_rejected" and got["history"][-1]["reason"] == "缺少协议书"
    assert quantities(w)["大米"]["used_tonnes"] == "0.000000"  # returned

    # Attachments: the signed agreement (a PDF), sniffed.
    att = w.http.post(
        f"/api/v1/admin/orders/{number}/attachments",
        data={"kind": "agreement", "file": (io.BytesIO(b"%PDF-1.4 signed"), "a.pdf")},
        headers=w.x,
    )
    assert att.status_code == 201 and att.get_json()["content_type"] == "application/pdf"
    assert w.http.get(att.get_json()["url"], headers=w.a).data == b"%PDF-1.4 signed"

    assert (
        w.http.post(f"/api/v1/admin/orders/{number}/submit", headers=w.x).get_json()["status"]
        == "auto_approved"
    )
    assert (
        w.http.post(f"/api/v1/admin/orders/{number}/allocate", headers=w.a).status_code == 409
    )  # not approved yet
    got = w.http.post(
        f"/api/v1/admin/orders/{number}/review", json={"decision": "approve"}, headers=w.a
    ).get_json()
    assert got["status"] == "manually_approved"
    statuses = [h["status"] for h in got["history"]]
    assert statuses == [
        "new",
        "auto_rejected",
        "auto_rejected",  # edited
        "auto_approved",
        "manually_rejected",
        "auto_approved",
        "manually_approved",
    ]

    # Allocation: contiguous segments, codes generated; they verify at once.
    for headers in (w.x, w.b):
        assert w.http.post(f"/api/v1/admin/orders/{number}/allocate", headers=headers).status_code in (
            403,
            404,
        )
    got = w.http.post(f"/api/v1/admin/orders/{number}/allocate", json={"codes": "generated"}, headers=w.a)
    assert got.status_code == 200, got.get_data(as_text=True)
    allocated = got.get_json()
    assert allocated["status"] == "allocated"
    segs = [(int(line["identity_start"]), int(line["identity_end"])) for line in allocated["lines"]]
    assert segs == [(100000001, 100000005), (100000006, 100000007)]
    codes_file = w.http.get(f"/api/v1/admin/orders/{number}/printer-codes.csv", headers=w.a)
    assert codes_file.status_code == 200
    rows = list(csv.DictReader(io.StringIO(codes_file.data.decode("utf-8-sig"))))
    assert [r["identity_code"] for r in rows] == [f"{i:09d}" for i in range(100000001, 100000008)]
    assert all(len(r["code"]) == 18 and r["code"].startswith("0123") for r in rows)
    assert len({r["code"] for r in rows}) == 7
    assert w.http.get(f"/api/v1/admin/orders/{number}/printer-codes.csv", headers=w.x).status_code == 403
    for r in rows:
        answer = verify(w.http, r["code"])
        assert answer["verdict"] == "genuine", answer

    # The order sheet, in the seed's layout.
    sheet = w.http.get(f"/api/v1/admin/orders/{number}/sheet.xlsx", headers=w.x)
    assert sheet.status_code == 200
    ws = load_workbook(io.BytesIO(sheet.data)).active
    assert ws["A1"].value == "认证产品防伪追溯标志订单"
    assert (ws["A2"].value, ws["B2"].value, ws["D2"].value, ws["E2"].value) == (
        "订单编号",
        number,
        "企业名称",
        "演示企业",
    )
    assert (ws["A3"].value, ws["B3"].value, ws["K3"].value, ws["L3"].value) == (
        "发货地址",
        SHIPPING["address"],
        "邮编",
        "123456",
    )
    assert [c.value for c in ws[6]][-2:] == ["起始身份码", "结束身份码"]
    assert [c.value for c in ws[7]] == [
        f"{number}-1",
        A_NO,
        "大米",
        "大米",
        "10千克",
        "10.000",
        "25*16mm椭圆标",
        "0.0600",
        5,
        "0.30",
        "100000001",
        "100000005",
    ]

    # The CNCA filing record: annex 2's 14 fields, XLSX and CSV.
    filing = w.http.get(f"/api/v1/admin/orders/{number}/filing.csv", headers=w.a)
    assert filing.status_code == 200
    table = list(csv.reader(io.StringIO(filing.data.decode("utf-8-sig"))))
    assert len(table[0]) == 14 and len(table) == 3
    record = dict(zip(table[0], table[1], strict=True))
    assert record["认证证书编号"] == A_NO and record["本次认证标志发放数量"] == "5"
    assert record["本次发放认证标志编码信息"] == "身份码 100000001-100000005"
    assert record["认证标志已发放数量"] == "5" and record["认证标志使用方式"] == "加贴"
    xlsx = load_workbook(
        io.BytesIO(w.http.get(f"/api/v1/admin/orders/{number}/filing.xlsx", headers=w.a).data)
    ).active
    assert [c.value for c in xlsx[1]] == table[0]
    assert w.http.get(f"/api/v1/admin/orders/{number}/filing.csv", headers=w.x).status_code == 403
    assert w.http.get(f"/api/v1/admin/orders/{number}/filing.csv", headers=w.b).status_code == 404

    # A printing loss: that label's code verifies voided, the others stay genuine.
    got = w.http.post(
        f"/api/v1/admin/orders/{number}/losses", json={"identity_codes": ["100000002"]}, headers=w.a
    )
    assert got.status_code == 200 and got.get_json()["voided_codes"] == 1
    assert verify(w.http, rows[1]["code"])["verdict"] == "voided"
    assert verify(w.http, rows[0]["code"])["verdict"] == "genuine"
    stray = w.http.post(
        f"/api/v1/admin/orders/{number}/losses", json={"identity_codes": ["100000099"]}, headers=w.a
    )
    assert stray.status_code == 400

    # Void (退订): the codes verify voided and the quantity comes back.
    assert w.http.post(f"/api/v1/admin/orders/{number}/void", headers=w.x).status_code == 404
    assert (
        w.http.post(f"/api/v1/admin/orders/{number}/void", json={"reason": "退订"}, headers=w.a).status_code
        == 200
    )
    assert verify(w.http, rows[0]["code"])["verdict"] == "voided"
    q = quantities(w)
    assert (q["大米"]["used_tonnes"], q["绿豆"]["used_tonnes"]) == ("0.000000", "0.000000")
    w.http.post(f"/api/v1/admin/orders/{number}/void", headers=w.a)  # twice: returned once
    assert quantities(w)["绿豆"]["available_tonnes"] == "50.000000"


def test_printer_codes_are_loaded_one_to_one_within_the_segments(world: World) -> None:
    w = world
    number = order(w, [{"spec_id": w.beans, "quantity": 3, "unit_price": 1}])["number"]
    w.http.post(f"/api/v1/admin/orders/{number}/submit", headers=w.x)
    w.http.post(f"/api/v1/admin/orders/{number}/review", json={"decision": "approve"}, headers=w.a)
    got = w.http.post(
        f"/api/v1/admin/orders/{number}/allocate", json={"codes": "printer"}, headers=w.a
    ).get_json()
    start = int(got["lines"][0]["identity_start"])
    codes = [f"0123260000000001{n:02d}" for n in range(4)]
    text = "identity_code,code\n" + "\n".join(
        [
            f"{start:09d},{codes[0]}",
            f"{start + 1:09d},{codes[1]}",
            f"{start + 1:09d},{codes[2]}",  # identity twice
            f"{start + 2:09d},{codes[0]}",  # code twice
            f"{start + 9:09d},{codes[3]}",  # stray
            f"{start + 2:09d},045626000000000001",  # another body's numbering
            f"{start + 2:09d},{codes[2]}",
        ]
    )
    url = f"/api/v1/admin/orders/{number}/printer-codes"
    got = w.http.post(url, data={"file": (io.BytesIO(text.encode()), "printer.csv")}, headers=w.a).get_json()
    assert got["accepted"] == 3
    assert [(e["row"], e["code"]) for e in got["rejected"]] == [
        (2, "duplicate_identity"),
        (3, "duplicate_code"),
        (4, "stray_identity"),
        (5, "code_body_mismatch"),
    ]
    assert [verify(w.http, c)["verdict"] for c in codes] == ["genuine", "genuine", "genuine", "not_found"]
    # The same file again is idempotent; a code bound to another identity is refused.
    again = w.http.post(
        url, data={"file": (io.BytesIO(text.encode()), "printer.csv")}, headers=w.a
    ).get_json()
    assert again["accepted"] == 3
    swap = [{"identity_code": f"{start:09d}", "code": codes[3]}]
    assert w.http.post(url, json=swap, headers=w.a).get_json()["rejected"][0]["code"] == "identity_taken"
    assert w.http.post(url, json=swap, headers=w.x).status_code == 403
    assert w.http.post(url, json=swap, headers=w.b).status_code == 404


def test_segments_of_one_body_never_overlap(world: World) -> None:
    w = world
    numbers = []
    for qty in (3, 4):
        number = order(w, [{"spec_id": w.beans, "quantity": qty, "unit_price": 1}])["number"]
        w.http.post(f"/api/v1/admin/orders/{number}/submit", headers=w.x)
        w.http.post(f"/api/v1/admin/orders/{number}/review", json={"decision": "approve"}, headers=w.a)
        w.http.post(f"/api/v1/admin/orders/{number}/allocate", json={"codes": "printer"}, headers=w.a)
        numbers.append(number)
    segs = [
        (int(x["identity_start"]), int(x["identity_end"]))
        for n in numbers
        for x in w.http.get(f"/api/v1/admin/orders/{n}", headers=w.a).get_json()["lines"]
    ]
    assert segs == [(100000001, 100000003), (100000004, 100000007)]


def test_orders_are_scoped(world: World) -> None:
    w = world
    number = order(w, [{"spec_id": w.beans, "quantity": 1, "unit_price": 1}])["number"]
    assert [o["number"] for o in w.http.get("/api/v1/admin/orders", headers=w.a).get_json()["items"]] == [
        number
    ]
    assert w.http.get("/api/v1/admin/orders", headers=w.b).get_json()["items"] == []
    assert w.http.get("/api/v1/admin/orders", headers=w.y).get_json()["items"] == []
    # A body places no order; another organization cannot see the certificate.
    lines = [{"spec_id": w.beans, "quantity": 1, "unit_price": 1}]
    body = {"certificate": A_NO, **SHIPPING, "lines": lines}
    assert w.http.post("/api/v1/admin/orders", json=body, headers=w.a).status_code == 403
    assert w.http.post("/api/v1/admin/orders", json=body, headers=w.y).status_code == 404
    assert w.http.get(f"/api/v1/admin/certificates/{A_NO}/quantities", headers=w.y).status_code == 404
    # A spec of another certificate is not on this order.
    bad = w.http.post("/api/v1/admin/orders", json={**body, "certificate": B_NO}, headers=ADMIN)
    assert bad.status_code == 409 and bad.get_json()["code"] == "spec_certificate_mismatch"
    assert Decimal(quantities(w)["绿豆"]["used_tonnes"]) == 0


def test_a_drawn_code_already_issued_is_drawn_again(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    import services.issuing as issuing_module

    w = world
    year = china_today(datetime.now(UTC)).year % 100  # the year the service draws under
    taken = f"0123{year:02d}000000000001"
    row = {"code": taken, "certificate": A_NO, "product": "绿豆", "order": "OLD-1"}
    assert w.http.post("/api/v1/admin/codes", json=[row], headers=w.a).get_json()["accepted"] == 1
    real = issuing_module._random12
    draws = iter([[1, 1, 2]])  # the first draw: a taken code, and one code twice

    def scripted(n: int) -> list[int]:
        return next(draws, None) or real(n)

    monkeypatch.setattr(issuing_module, "_random12", scripted)
    number = order(w, [{"spec_id": w.beans, "quantity": 3, "unit_price": 1}])["number"]
    w.http.post(f"/api/v1/admin/orders/{number}/submit", headers=w.x)
    w.http.post(f"/api/v1/admin/orders/{number}/review", json={"decision": "approve"}, headers=w.a)
    assert w.http.post(f"/api/v1/admin/orders/{number}/allocate", headers=w.a).status_code == 200
    rows = list(
        csv.DictReader(
            io.StringIO(
                w.http.get(f"/api/v1/admin/orders/{number}/printer-codes.csv", headers=w.a).data.decode(
                    "utf-8-sig"
                )
            )
        )
    )
    codes = [r["code"] for r in rows]
    assert len(codes) == 3 and len(set(codes)) == 3 and taken not in codes
    assert f"0123{year:02d}000000000002" in codes
    assert verify(w.http, taken)["verdict"] == "genuine"


def test_a_taken_code_in_a_chunk_of_thousands_is_drawn_again(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The taken keys are found by reading the chunk's keys back 5,000 at a time; the chunk
    # and its progress roll back and go again with that code drawn anew (a progress put back
    # to the last page's offset once had the redrawn chunk refused as another generation's).
    import services.issuing as issuing_module

    w = world
    year = china_today(datetime.now(UTC)).year % 100
    taken = f"0123{year:02d}000000000001"
    row = {"code": taken, "certificate": A_NO, "product": "绿豆", "order": "OLD-1"}
    assert w.http.post("/api/v1/admin/codes", json=[row], headers=w.a).get_json()["accepted"] == 1
    real = issuing_module._random12
    scripted_once = [True]

    def scripted(n: int) -> list[int]:
        drawn = real(n)
        if scripted_once.pop() if scripted_once else False:
            drawn[0] = 1  # the first draw's first code is the one already issued
        return drawn

    monkeypatch.setattr(issuing_module, "_random12", scripted)
    number = order(w, [{"spec_id": w.beans, "quantity": 5002, "unit_price": 1}])["number"]
    w.http.post(f"/api/v1/admin/orders/{number}/submit", headers=w.x)
    w.http.post(f"/api/v1/admin/orders/{number}/review", json={"decision": "approve"}, headers=w.a)
    got = w.http.post(f"/api/v1/admin/orders/{number}/allocate", headers=w.a)
    assert got.status_code == 200, got.get_data(as_text=True)
    resp = w.http.get(f"/api/v1/admin/orders/{number}/printer-codes.csv", headers=w.a)
    codes = [r["code"] for r in csv.DictReader(io.StringIO(resp.data.decode("utf-8-sig")))]
    assert len(codes) == len(set(codes)) == 5002 and taken not in codes
    assert verify(w.http, taken)["verdict"] == "genuine"


@pytest.mark.parametrize("fails", ["insert_new_codes", "before_saving"])
def test_a_generation_that_fails_midway_keeps_what_landed_verifiable_and_completes_on_retry(
    world: World, monkeypatch: pytest.MonkeyPatch, fails: str
) -> None:
    # Chunks load in a worker thread while the next is drawn: a failed load, or a failure
    # drawing the next chunk while one loads, must leave every committed chunk answering
    # genuine, and asking again must finish the rest.
    import services.issuing as issuing_module

    w = world
    monkeypatch.setattr(issuing_module, "GENERATE_CHUNK", 2)
    monkeypatch.setattr(issuing_module, "ANNOUNCE_CODES", 2)  # a batch told to the filter per chunk
    issuing = container(w.app).issuing
    target = issuing.registry if fails == "insert_new_codes" else issuing.codes
    real = getattr(target, fails)
    calls = {"n": 0}

    def failing_third(*args: object, **kwargs: object) -> object:
        calls["n"] += 1
        if calls["n"] == 3:
            raise OSError("the database went away")
        return real(*args, **kwargs)

    monkeypatch.setattr(target, fails, failing_third)
    number = order(w, [{"spec_id": w.beans, "quantity": 7, "unit_price": 1}])["number"]
    w.http.post(f"/api/v1/admin/orders/{number}/submit", headers=w.x)
    w.http.post(f"/api/v1/admin/orders/{number}/review", json={"decision": "approve"}, headers=w.a)
    assert w.http.post(f"/api/v1/admin/orders/{number}/allocate", headers=w.a).status_code == 500

    def printer_codes() -> list[str]:
        resp = w.http.get(f"/api/v1/admin/orders/{number}/printer-codes.csv", headers=w.a)
        return [r["code"] for r in csv.DictReader(io.StringIO(resp.data.decode("utf-8-sig")))]

    landed = printer_codes()
    assert len(landed) == 4  # two chunks committed before the third failed
    monkeypatch.setattr(target, fails, real)
    assert {verify(w.http, code)["verdict"] for code in landed} == {"genuine"}
    assert w.http.post(f"/api/v1/admin/orders/{number}/allocate", headers=w.a).status_code == 200
    codes = printer_codes()
    assert len(codes) == len(set(codes)) == 7 and set(landed) <= set(codes)
    assert {verify(w.http, code)["verdict"] for code in codes} == {"genuine"}


def test_labels_are_taken_into_use_and_rolled_back(world: World) -> None:
    w = world
    number = order(w, [{"spec_id": w.beans, "quantity": 10, "unit_price": 1}])["number"]
    url = f"/api/v1/admin/orders/{number}/uses"
    use = {"line": 1, "quantity": 3, "batch": "B2026-01", "person": "张三"}
    assert w.http.post(url, json=use, headers=w.x).status_code == 409  # not allocated yet
    w.http.post(f"/api/v1/admin/orders/{number}/submit", headers=w.x)
    w.http.post(f"/api/v1/admin/orders/{number}/review", json={"decision": "approve"}, headers=w.a)
    w.http.post(f"/api/v1/admin/orders/{number}/allocate", json={"codes": "printer"}, headers=w.a)
    # Automatically: the lowest identities in stock.
    first = w.http.post(url, json={**use, "used_on": "2026-12-01"}, headers=w.x)
    assert first.status_code == 201, first.get_data(as_text=True)
    assert (first.get_json()["first_identity"], first.get_json()["last_identity"]) == (
        "100000001",
        "100000003",
    )
    # Manually, by identity range; an overlapping or stray range is refused.
    manual = {
        "line": 1,
        "first_identity": "100000006",
        "last_identity": "100000007",
        "batch": "B2",
        "person": "李四",
    }
    assert w.http.post(url, json=manual, headers=w.x).status_code == 201
    assert w.http.post(url, json=manual, headers=w.x).get_json()["code"] == "already_in_use"
    stray = {**manual, "first_identity": "100000009", "last_identity": "100000011"}
    assert w.http.post(url, json=stray, headers=w.x).get_json()["code"] == "outside_segment"
    assert w.http.post(url, json={**use, "quantity": 4}, headers=w.x).get_json()["code"] == "not_enough_stock"
    both = {**manual, "quantity": 1}
    assert w.http.post(url, json=both, headers=w.x).status_code == 400
    # The body reads the records but takes nothing into use; others see nothing.
    assert w.http.post(url, json=use, headers=w.a).status_code == 403
    assert w.http.post(url, json=use, headers=w.y).status_code == 404
    assert w.http.get(url, headers=w.b).status_code == 404
    got = w.http.get(url, headers=w.a).get_json()
    assert got["stock"] == [{"label_number": f"{number}-1", "quantity": 10, "in_use": 5, "in_stock": 5}]
    # 回退: the record goes, its labels are in stock again and are taken first.
    rolled = w.http.delete(f"{url}/{first.get_json()['id']}", headers=w.x)
    assert rolled.status_code == 200 and rolled.get_json()["stock"][0]["in_stock"] == 8
    assert w.http.delete(f"{url}/{first.get_json()['id']}", headers=w.x).status_code == 404
    assert w.http.post(url, json={**use, "quantity": 6}, headers=w.x).status_code == 409  # 5 + 3 free
    again = w.http.post(url, json={**use, "quantity": 5}, headers=w.x).get_json()
    assert (again["first_identity"], again["last_identity"]) == ("100000001", "100000005")
    again = w.http.post(url, json={**use, "quantity": 3}, headers=w.x).get_json()
    assert (again["first_identity"], again["last_identity"]) == ("100000008", "100000010")


def test_issuance_changes_are_in_the_audit_log_as_the_token_within_its_scopes(world: World) -> None:
    w = world
    number = order(w, [{"spec_id": w.beans, "quantity": 3, "unit_price": 1}])["number"]
    w.http.post(f"/api/v1/admin/orders/{number}/submit", headers=w.x)
    w.http.post(
        f"/api/v1/admin/orders/{number}/review",
        json={"decision": "reject", "reason": "缺少协议书"},
        headers=w.a,
    )
    w.http.post(f"/api/v1/admin/orders/{number}/submit", headers=w.x)
    w.http.post(f"/api/v1/admin/orders/{number}/review", json={"decision": "approve"}, headers=w.a)
    assert (
        w.http.post(f"/api/v1/admin/orders/{number}/void", json={"reason": "退订"}, headers=w.a).status_code
        == 200
    )
    audit = container(w.app).audit
    entries = list(reversed(audit.entries(Scope("all"), target=f"order:{number}")))
    assert [(e["action"], e["actor_kind"], e["actor_name"]) for e in entries] == [
        ("order.create", "token", "org X"),
        ("order.submit", "token", "org X"),
        ("order.review", "token", "body A"),
        ("order.submit", "token", "org X"),
        ("order.review", "token", "body A"),
        ("order.void", "token", "body A"),
    ]
    rejected = entries[2]
    assert rejected["before"] == {"status": "auto_approved"}
    assert rejected["after"] == {"status": "manually_rejected", "reason": "缺少协议书"}
    assert entries[-1]["before"] == {"status": "manually_approved"}
    # The holder and the certifying body read these entries; another body reads none.
    body_a = Scope("body", entries[0]["body_id"])
    holder = Scope("organization", entries[0]["organization_id"])
    assert len(audit.entries(body_a, target=f"order:{number}")) == 6
    assert len(audit.entries(holder, target=f"order:{number}")) == 6
    other_body = Scope("body", (entries[0]["body_id"] or 0) + 1)
    assert audit.entries(other_body, target=f"order:{number}") == []


def test_certificates_with_their_quantities_are_listed_per_scope(world: World) -> None:
    """What the dashboard's quantities page and spec form read (IssuingService.certificates)."""
    w = world
    number = order(w, [{"spec_id": w.beans, "quantity": 3, "unit_price": 1}])["number"]
    w.http.post(f"/api/v1/admin/orders/{number}/submit", headers=w.x)
    issuing = container(w.app).issuing
    registry = container(w.app).registry
    body_a = Scope("body", registry.scope_target_id("body", "0123"))
    holder = Scope("organization", registry.scope_target_id("organization", "演示企业"))
    other = Scope("organization", registry.scope_target_id("organization", "乙企业"))
    assert [c["certificate"] for c in issuing.certificates(Scope("all"))] == [A_NO, B_NO]
    assert [c["certificate"] for c in issuing.certificates(other)] == [B_NO]
    for scope, may_order in ((body_a, False), (holder, True)):
        (cert,) = issuing.certificates(scope)
        assert (cert["certificate"], cert["holder"], cert["may_order"]) == (A_NO, "演示企业", may_order)
        beans = next(p for p in cert["products"] if p["product"] == "绿豆")
        assert (beans["certified_tonnes"], beans["used_tonnes"], beans["available_tonnes"]) == (
            "50.000000",
            "0.003000",
            "49.997000",
        )
    # The order list names the holder (the body's review queue shows whose order it is).
    listed = w.http.get("/api/v1/admin/orders", headers=w.a).get_json()["items"]
    assert [(o["number"], o["organization"]) for o in listed] == [(number, "演示企业")]


def test_each_printer_file_download_is_in_the_audit_log(world: World) -> None:
    """The printer's file is every scratch-off code of an order: who took it, and when, is
    kept; a refused request, or a HEAD (no code sent), leaves no entry."""
    w = world
    number = order(w, [{"spec_id": w.beans, "quantity": 3, "unit_price": 1}])["number"]
    w.http.post(f"/api/v1/admin/orders/{number}/submit", headers=w.x)
    w.http.post(f"/api/v1/admin/orders/{number}/review", json={"decision": "approve"}, headers=w.a)
    assert w.http.post(f"/api/v1/admin/orders/{number}/allocate", headers=w.a).status_code == 200
    assert w.http.get(f"/api/v1/admin/orders/{number}/printer-codes.csv", headers=w.a).status_code == 200
    assert w.http.get(f"/api/v1/admin/orders/{number}/printer-codes.csv", headers=w.x).status_code == 403
    assert w.http.head(f"/api/v1/admin/orders/{number}/printer-codes.csv", headers=w.a).status_code == 200
    entries = container(w.app).audit.entries(Scope("all"), target=f"order:{number}")
    downloads = [e for e in entries if e["action"] == "order.printer_file"]
    assert [(e["actor_kind"], e["actor_name"], e["after"]) for e in downloads] == [
        ("token", "body A", {"lines": 1, "labels": 3})
    ]
