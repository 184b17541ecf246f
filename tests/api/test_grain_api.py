"""Wuchang rice total-quantity control through the admin API (issue 17, item 6; seed 002):
a company's raw-grain purchase ledger caps its BQ marks (marks × net content ≤ raw grain ×
milling yield); a batch over the cap is refused with how far over it is; activation needs
a passed inspection report and a balance that still holds; the A code answers with the
chain purchase → batch → inspection. On both deployments, and concurrently on MariaDB."""

from __future__ import annotations

import io
import threading
from dataclasses import dataclass

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.datastructures import FileStorage
from werkzeug.test import encode_multipart

from tests.conftest import ADMIN
from webapp import container

BODY = [{"code": "0123", "legacy_code": "123", "name": "甲认证中心"}]
CERT = {
    "number": "0123OP2600031",
    "body_code": "0123",
    "holder": "民乐米业",
    "valid_from": "2026-01-01",
    "valid_until": "2099-12-31",
    "products": [{"name": "大米"}],
}
OTHER = {**CERT, "number": "0123OP2600032", "holder": "乙米业"}
PDF = b"%PDF-1.4\n1 0 obj << >> endobj\n%%EOF\n"


@dataclass
class Mill:
    http: FlaskClient
    app: Flask
    org: dict[str, str]  # the company
    other: dict[str, str]  # another company
    body: dict[str, str]  # a certification body


def bearer(raw: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {raw}"}


def make_mill(app: Flask) -> Mill:
    http = app.test_client()
    assert http.post("/api/v1/admin/bodies", json=BODY, headers=ADMIN).get_json()["accepted"] == 1
    assert (
        http.post("/api/v1/admin/certificates", json=[CERT, OTHER], headers=ADMIN).get_json()["accepted"] == 2
    )
    admin = container(app).admin
    return Mill(
        http,
        app,
        bearer(admin.create_token("mill", "organization", "民乐米业")),
        bearer(admin.create_token("other mill", "organization", "乙米业")),
        bearer(admin.create_token("body", "body", "0123")),
    )


@pytest.fixture
def mill(any_app: Flask) -> Mill:
    return make_mill(any_app)


def batch(number: str, pairs: int, net: object = 5, **extra: object) -> dict:
    return {
        "number": number,
        "producer": "五常市民乐乡稻花香米业有限公司",
        "product": "五常大米",
        "net_content_kg": net,
        "codes": [{"a_code": f"{number}A{i:04d}", "b_code": f"{number}B{i:04d}"} for i in range(pairs)],
        **extra,
    }


def purchase(ref: str, kg: object, on: str = "2026-09-20", supplier: str = "农户张三") -> dict:
    return {"reference": ref, "purchased_on": on, "supplier": supplier, "quantity_kg": kg}


def buy(m: Mill, rows: list[dict], headers: dict[str, str] | None = None) -> dict:
    got = m.http.post("/api/v1/admin/grain-purchases", json=rows, headers=headers or m.org)
    return dict(got.get_json(), status=got.status_code)


def make_batch(m: Mill, body: dict, headers: dict[str, str] | None = None) -> int:
    return int(m.http.post("/api/v1/admin/batches", json=body, headers=headers or m.org).status_code)


def ledger(m: Mill, headers: dict[str, str] | None = None) -> dict:
    got = m.http.get("/api/v1/admin/grain-ledger", headers=headers or m.org)
    assert got.status_code == 200, got.get_data(as_text=True)
    return got.get_json()


def verify(http: FlaskClient, code: str) -> dict:
    got = http.post("/api/v1/verify", json={"input": code})
    assert got.status_code == 200
    return got.get_json()


def report(result: str = "pass", data: bytes = PDF, number: str = "WC-2026-0917") -> dict:
    return {
        "report": (io.BytesIO(data), "report.pdf"),
        "report_number": number,
        "laboratory": "五常市质量技术监督检验检测中心",
        "result": result,
        "inspected_on": "2026-10-08",
    }


def test_the_ledger_takes_purchases_in_bulk_with_errors_per_row(mill: Mill) -> None:
    m = mill
    rows = [
        purchase("R1", 100),
        purchase("R2", -1),
        purchase("R3", "12.5", on="2026-13-01"),
        purchase("R4", 10, on="2999-01-01"),
        {"reference": "R5", "purchased_on": "2026-09-21", "quantity_kg": 5},  # no supplier
        purchase("R6", "50.25", supplier="五常市民乐乡合作社"),
    ]
    got = m.http.post("/api/v1/admin/grain-purchases", json=rows, headers=m.org).get_json()
    assert got["accepted"] == 2
    assert [(e["row"], e["code"]) for e in got["rejected"]] == [
        (1, "invalid_row"),
        (2, "invalid_row"),
        (3, "future_date"),
        (4, "invalid_row"),
    ]
    # The same rows again: the same ledger (idempotent by reference).
    m.http.post("/api/v1/admin/grain-purchases", json=rows, headers=m.org)
    got = ledger(m)
    assert got["organization"] == "民乐米业" and got["raw_grain_kg"] == "150.25"
    assert got["milling_yield"] == "0.60" and got["capacity_kg"] == "90.15"
    assert [p["reference"] for p in got["purchases"]] == ["R1", "R6"]
    # A CSV upload, with a corrected quantity for R1.
    csv_text = "reference,purchased_on,supplier,quantity_kg\nR1,2026-09-20,农户张三,200\nR7,,x,1\n"
    files = {"file": (io.BytesIO(csv_text.encode()), "ledger.csv")}
    got = m.http.post("/api/v1/admin/grain-purchases", data=files, headers=m.org).get_json()
    assert got["accepted"] == 1 and got["rejected"][0]["code"] == "invalid_row"
    assert ledger(m)["raw_grain_kg"] == "250.25"
    # The regulator names the company; the other company and a body see none of it.
    regulator = m.http.post(
        "/api/v1/admin/grain-purchases", json=[{**purchase("G1", 1), "organization": "乙米业"}], headers=ADMIN
    )
    assert regulator.get_json()["accepted"] == 1
    assert ledger(m, m.other)["raw_grain_kg"] == "1" and ledger(m)["raw_grain_kg"] == "250.25"
    assert m.http.post("/api/v1/admin/grain-purchases", json=rows, headers=m.body).status_code == 403
    assert m.http.get("/api/v1/admin/grain-ledger", headers=m.body).status_code == 403
    unnamed = m.http.get("/api/v1/admin/grain-ledger", headers=ADMIN)
    assert unnamed.status_code == 404 and unnamed.get_json()["code"] == "organization_required"


def test_a_batch_over_the_raw_grain_cap_is_refused_saying_by_how_much(mill: Mill) -> None:
    m = mill
    m.http.post(
        "/api/v1/admin/grain-purchases", json=[purchase("R1", 100), purchase("R2", 50)], headers=m.org
    )
    # 150 kg raw grain × 0.60 = 90 kg of milled rice: 18 bags of 5 kg.
    over = m.http.post("/api/v1/admin/batches", json=batch("WCMLA", 20), headers=m.org)
    assert over.status_code == 409 and over.mimetype == "application/problem+json"
    problem = over.get_json()
    assert problem["code"] == "over_grain_cap"
    assert (problem["over_marks"], problem["over_kg"], problem["marks_allowed"]) == (2, "10", 18)
    assert (problem["capacity_kg"], problem["batch_marks"]) == ("90", 20)
    assert "over by 10 kg (2 marks of 5 kg)" in problem["detail"]
    # Nothing of it was saved.
    assert verify(m.http, "WCMLAA0000")["verdict"] == "not_found"
    assert ledger(m)["marked_kg"] == "0"

    ok = m.http.post("/api/v1/admin/batches", json=batch("WCMLA", 18), headers=m.org)
    assert ok.status_code == 200 and ok.get_json()["accepted"] == 36
    got = ledger(m)
    assert (got["marked_kg"], got["available_kg"]) == ("90", "0")
    assert got["marks"] == [{"net_content_kg": "5", "marks": 18}]
    # The same batch again is the same state (not counted twice).
    assert m.http.post("/api/v1/admin/batches", json=batch("WCMLA", 18), headers=m.org).status_code == 200
    one_more = m.http.post("/api/v1/admin/batches", json=batch("WCMLB", 1, net="2.5"), headers=m.org)
    assert one_more.status_code == 409 and one_more.get_json()["over_marks"] == 1

    # The regulator sets the company's yield; the company cannot.
    assert (
        m.http.patch("/api/v1/admin/grain-ledger", json={"milling_yield": 0.9}, headers=m.org).status_code
        == 403
    )
    url = "/api/v1/admin/grain-ledger?organization=民乐米业"
    assert m.http.patch(url, json={"milling_yield": 2}, headers=ADMIN).status_code == 400
    assert m.http.patch(url, json={"milling_yield": "0.65"}, headers=ADMIN).status_code == 400  # a string
    raised = m.http.patch(url, json={"milling_yield": 0.65}, headers=ADMIN)
    assert raised.status_code == 200 and raised.get_json()["capacity_kg"] == "97.5"
    # 7.5 kg more: three bags of 2.5 kg fit, four do not.
    assert (
        m.http.post("/api/v1/admin/batches", json=batch("WCMLB", 4, net="2.5"), headers=m.org).status_code
        == 409
    )
    assert (
        m.http.post("/api/v1/admin/batches", json=batch("WCMLB", 3, net="2.5"), headers=m.org).status_code
        == 200
    )

    # A company's batch needs a net content; its purchases must be its own ledger's.
    no_net = m.http.post("/api/v1/admin/batches", json=batch("WCMLC", 1, net=None), headers=m.org)
    assert no_net.status_code == 400 and no_net.get_json()["code"] == "net_content_required"
    stray = m.http.post("/api/v1/admin/batches", json=batch("WCMLC", 0, purchases=["R9"]), headers=m.org)
    assert stray.status_code == 409 and stray.get_json()["code"] == "unknown_purchase"
    # A batch of no company (the regulator's own load) has no ledger to check.
    assert m.http.post("/api/v1/admin/batches", json=batch("WCREG", 3), headers=ADMIN).status_code == 200


def test_activation_needs_a_passed_report_and_a_balance_that_holds(mill: Mill) -> None:
    m = mill
    m.http.post(
        "/api/v1/admin/grain-purchases", json=[purchase("R1", 100), purchase("R2", 50)], headers=m.org
    )
    trace = {"plot": "民乐乡 3 号地块", "seed": "五优稻4号"}
    created = m.http.post(
        "/api/v1/admin/batches", json=batch("WCMLA", 10, purchases=["R1"], trace=trace), headers=m.org
    )
    assert created.status_code == 200, created.get_data(as_text=True)
    activate = "/api/v1/admin/batches/WCMLA/activate"
    refused = m.http.post(activate, headers=ADMIN)
    assert refused.status_code == 409 and refused.get_json()["code"] == "inspection_required"
    assert verify(m.http, "WCMLAA0001")["verdict"] == "not_activated"

    url = "/api/v1/admin/batches/WCMLA/inspection"
    gif = m.http.post(url, data=report(data=b"GIF89a" + b"\0" * 20), headers=m.org)
    assert gif.status_code == 415 and gif.get_json()["code"] == "unsupported_report"
    # Encoded here: the test client would spool a body this large to a file it never closes.
    fields = {**report(), "report": FileStorage(io.BytesIO(PDF + b"\0" * (10 * 2**20)), "r.pdf")}
    boundary, body = encode_multipart(fields)
    big = m.http.post(url, data=body, content_type=f"multipart/form-data; boundary={boundary}", headers=m.org)
    assert big.status_code == 413 and big.get_json()["code"] == "report_too_large"
    assert m.http.post(url, data=report(), headers=m.other).status_code == 404
    assert m.http.post(url, data={**report(), "result": "maybe"}, headers=m.org).status_code == 400
    assert m.http.post(url, data=report("fail"), headers=m.org).status_code == 201
    failed = m.http.post(activate, headers=ADMIN)
    assert failed.status_code == 409 and failed.get_json()["code"] == "inspection_failed"
    got = m.http.post(url, data=report(), headers=m.org)
    assert got.status_code == 201 and got.get_json()["result"] == "pass"
    assert m.http.get(got.get_json()["url"], headers=ADMIN).data == PDF

    # The ledger shrank since the batch was made (a purchase corrected): the balance fails.
    m.http.post("/api/v1/admin/grain-purchases", json=[purchase("R2", 0.001)], headers=m.org)
    m.http.post("/api/v1/admin/grain-purchases", json=[purchase("R1", 50)], headers=m.org)
    short = m.http.post(activate, headers=ADMIN)
    assert short.status_code == 409 and short.get_json()["code"] == "grain_balance_failed"
    assert short.get_json()["over_kg"] == "20"  # (50.001 kg × 0.60 = 30 kg) against 50 kg
    assert m.http.post(activate, headers=m.org).status_code == 403  # the regulator activates
    m.http.post("/api/v1/admin/grain-purchases", json=[purchase("R1", 100)], headers=m.org)
    assert m.http.post(activate, headers=ADMIN).status_code == 200

    # The A code answers with the chain: purchase → batch → inspection.
    answer = verify(m.http, "WCMLAA0001")
    assert answer["verdict"] == "genuine"
    chain = answer["trace"]
    assert chain["batch"] == "WCMLA" and chain["plot"] == "民乐乡 3 号地块"
    assert chain["purchases"] == [
        {"purchased_on": "2026-09-20", "supplier": "农户张三", "quantity_kg": "100"}
    ]
    assert chain["inspection"] == {
        "report_number": "WC-2026-0917",
        "laboratory": "五常市质量技术监督检验检测中心",
        "result": "pass",
        "inspected_on": "2026-10-08",
    }
    page = m.http.get("/c/WCMLAA0001", headers={"Accept-Language": "en"}).get_data(as_text=True)
    assert "Raw grain bought" in page and "Passed" in page and "WC-2026-0917" in page
    # Activated: the report is the regulator's to change now.
    late = m.http.post(url, data=report(), headers=m.org)
    assert late.status_code == 409 and late.get_json()["code"] == "batch_activated"


def test_concurrent_batches_never_exceed_the_cap(service_app: Flask) -> None:
    """Twelve companies' threads race for the last bags: raw grain for 10 bags, each batch
    asks for 2. The company's row lock makes them queue, so at most 5 land; the refused get
    over_grain_cap (or batch_conflict, a deadlock between two new numbers: retry)."""
    m = make_mill(service_app)
    m.http.post("/api/v1/admin/grain-purchases", json=[purchase("R1", "83.334")], headers=m.org)  # 50 kg rice
    start = threading.Barrier(12)
    codes: list[int] = []
    lock = threading.Lock()

    def one(n: int) -> None:
        http = service_app.test_client()
        start.wait()
        got = http.post("/api/v1/admin/batches", json=batch(f"WCRACE{n:02d}", 2), headers=m.org)
        with lock:
            codes.append(got.status_code)
        if got.status_code != 200:
            assert got.get_json()["code"] in ("over_grain_cap", "batch_conflict"), got.get_json()

    threads = [threading.Thread(target=one, args=(n,)) for n in range(12)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    landed = codes.count(200)
    got = ledger(m)
    assert got["capacity_kg"] == "50" and float(got["marked_kg"]) == landed * 10 <= 50
    assert landed >= 1 and codes.count(409) == 12 - landed
