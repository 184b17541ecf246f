"""Defects a new user hit (renovation issue), each pinned by a test that failed before its fix."""

from __future__ import annotations

import io
import sys
from datetime import date

import pytest
from flask import Flask

from domain.certificates import body_codes_from_approval
from domain.codes import InvalidReason, normalize
from tests.conftest import ADMIN
from tests.images import encode, label
from webapp import container
from webapp.demo import seed


def test_a_foreign_body_with_a_three_digit_serial_has_no_legacy_code() -> None:
    assert body_codes_from_approval("CNCA-RF-2018-716") == ("9716", None)
    assert body_codes_from_approval("CNCA-RF-2005-12") == ("9012", "912")


def test_a_foreign_body_approved_after_the_17_digit_era_loads_and_its_codes_verify(any_app: Flask) -> None:
    client = any_app.test_client()
    body = {"name": "Foreign Organic Certifier", "approval_number": "CNCA-RF-2018-716"}
    assert client.post("/api/v1/admin/bodies", json=[body], headers=ADMIN).get_json() == {
        "accepted": 1,
        "rejected": [],
    }
    cert = {
        "number": "9716OP2600001",
        "body_code": "9716",
        "holder": "Alpine Farm",
        "valid_from": "2026-01-01",
        "valid_until": "2026-12-31",
        "products": [{"name": "organic oats"}],
    }
    assert client.post("/api/v1/admin/certificates", json=[cert], headers=ADMIN).get_json()["accepted"] == 1
    row = {"code": "971626000000000042", "certificate": "9716OP2600001", "product": "organic oats"}
    assert client.post("/api/v1/admin/codes", json=[row], headers=ADMIN).get_json()["accepted"] == 1
    answer = client.post("/api/v1/verify", json={"input": "971626000000000042"}).get_json()
    assert answer["verdict"] == "genuine"
    assert answer["certification_body"]["code"] == "9716"


def test_letters_after_the_organic_code_prefix_are_a_malformed_organic_code_not_a_bq_token() -> None:
    parsed = normalize("有机码：0615266740B1852118")
    assert parsed.kind is None
    assert parsed.invalid is InvalidReason.CHARACTERS
    # Without the prefix a mixed token is still a BQ code, and digits after it still an organic code.
    assert normalize("0615266740B1852118").kind is not None
    assert normalize("有机码：061526674011852118").invalid is None


def test_the_prefixed_malformed_code_answers_invalid_format(any_app: Flask) -> None:
    answer = (
        any_app.test_client().post("/api/v1/verify", json={"input": "有机码：0615266740B1852118"}).get_json()
    )
    assert answer["verdict"] == "invalid_format"


@pytest.fixture
def without_ocr(monkeypatch: pytest.MonkeyPatch) -> None:
    """As installed from requirements.txt alone: importing the OCR engine fails."""
    monkeypatch.setitem(sys.modules, "rapidocr_onnxruntime", None)


def _photo(app: Flask, image: bytes):  # type: ignore[no-untyped-def]
    return app.test_client().post(
        "/api/v1/scans",
        data={"image": (io.BytesIO(image), "label.jpg")},
        content_type="multipart/form-data",
    )


def test_without_the_ocr_engine_a_digits_only_photo_gets_a_clear_problem_not_a_500(
    embedded_app: Flask, without_ocr: None
) -> None:
    codes = seed(container(embedded_app).admin, date.today())
    resp = _photo(embedded_app, encode(label(code=codes["genuine"])))
    assert resp.status_code == 501, resp.get_data(as_text=True)
    assert resp.mimetype == "application/problem+json"
    assert resp.get_json()["code"] == "digits_unavailable"


def test_without_the_ocr_engine_qr_codes_still_read(embedded_app: Flask, without_ocr: None) -> None:
    codes = seed(container(embedded_app).admin, date.today())
    resp = _photo(embedded_app, encode(label(qr=f"https://trace.example.cn/c/{codes['genuine']}")))
    assert resp.status_code == 200, resp.get_data(as_text=True)
    assert resp.get_json()["verification"]["verdict"] == "genuine"


def test_readyz_says_whether_printed_digits_can_be_read(embedded_app: Flask, without_ocr: None) -> None:
    assert embedded_app.test_client().get("/readyz").get_json()["engines"] == {"qr": True, "digits": False}
