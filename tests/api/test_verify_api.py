"""The public verify API on both deployments, over HTTP (Flask's test client)."""

from __future__ import annotations

from datetime import date

import pytest
from flask import Flask

from webapp import container
from webapp.demo import seed

FIELDS = {
    "code",
    "kind",
    "verdict",
    "reason",
    "message",
    "product",
    "certificate",
    "certification_body",
    "issued_on",
    "issued_while_valid",
    "scans",
    "flags",
    "trace",
}


@pytest.fixture
def demo(any_app: Flask) -> dict[str, str]:
    return seed(container(any_app).admin, date.today())


def verify(app: Flask, text: str, **extra: object) -> dict:
    resp = app.test_client().post("/api/v1/verify", json={"input": text, **extra})
    assert resp.status_code == 200, resp.get_data(as_text=True)
    body = resp.get_json()
    assert set(body) == FIELDS
    return body


@pytest.mark.parametrize(
    "verdict",
    [
        "genuine",
        "voided",
        "certificate_suspended",
        "certificate_revoked",
        "certificate_cancelled",
        "certificate_expired",
        "conversion_certificate",
        "not_found",
    ],
)
def test_every_organic_verdict_over_the_api(any_app: Flask, demo: dict[str, str], verdict: str) -> None:
    body = verify(any_app, demo[verdict])
    assert body["verdict"] == verdict
    if verdict == "not_found":
        assert body["product"] is None and body["certificate"] is None
    else:
        assert body["product"]["name"] and body["product"]["label_spec"]
        assert body["certificate"]["number"].startswith("0123OP")
        assert body["certification_body"] == {"code": "0123", "name": "示范有机产品认证中心（演示）"}
        assert body["issued_while_valid"] is True


def test_bq_codes_answer_with_the_traceability_chain(any_app: Flask, demo: dict[str, str]) -> None:
    genuine = verify(any_app, "https://wc.example.cn/t/" + demo["genuine (BQ A code)"], channel="qr")
    assert genuine["verdict"] == "genuine" and genuine["kind"] == "bq"
    assert genuine["trace"]["seed"] == "五优稻4号" and genuine["trace"]["activated_at"]
    assert verify(any_app, demo["not_activated (BQ)"])["verdict"] == "not_activated"
    # Tokens are case-sensitive, on MariaDB too.
    assert verify(any_app, demo["genuine (BQ A code)"].lower())["verdict"] == "not_found"


def test_legacy_17_digit_codes_verify(any_app: Flask, demo: dict[str, str]) -> None:
    body = verify(any_app, demo["genuine (legacy 17-digit)"])
    assert body["kind"] == "organic_legacy" and body["verdict"] == "genuine"


@pytest.mark.parametrize("key", ["invalid_format (future year)", "invalid_format (unknown body)"])
def test_codes_that_cannot_exist_are_invalid_format_answers(
    any_app: Flask, demo: dict[str, str], key: str
) -> None:
    assert verify(any_app, demo[key])["verdict"] == "invalid_format"


def test_empty_and_wrong_length_inputs_are_answers_not_errors(any_app: Flask, demo: dict[str, str]) -> None:
    assert verify(any_app, "")["reason"] == "empty"
    assert verify(any_app, "12345")["reason"] == "length"


def test_messages_follow_accept_language(any_app: Flask, demo: dict[str, str]) -> None:
    client = any_app.test_client()
    en = client.post("/api/v1/verify", json={"input": demo["genuine"]}, headers={"Accept-Language": "en"})
    assert en.get_json()["message"].startswith("This code was issued")
    assert verify(any_app, demo["genuine"])["message"].startswith("该码")


@pytest.mark.parametrize(
    ("kwargs", "status", "code"),
    [
        ({"json": {}}, 400, "input_required"),
        ({"json": {"input": "1" * 2049}}, 400, "input_too_long"),
        ({"json": {"input": 123}}, 400, "invalid_body"),
        ({"json": ["x"]}, 400, "invalid_body"),
        ({"json": {"input": "x", "channel": "fax"}}, 400, "invalid_body"),
        ({"json": {"input": "x", "location": {"lat": 200, "lng": 0}}}, 400, "invalid_body"),
        ({"data": "{not json", "content_type": "application/json"}, 400, "invalid_json"),
        ({"data": "input=1", "content_type": "application/x-www-form-urlencoded"}, 400, "json_required"),
    ],
)
def test_malformed_requests_get_problem_json(
    any_app: Flask, demo: dict[str, str], kwargs: dict, status: int, code: str
) -> None:
    resp = any_app.test_client().post("/api/v1/verify", **kwargs)
    assert resp.status_code == status
    assert resp.mimetype == "application/problem+json"
    assert resp.get_json()["code"] == code


def test_unknown_paths_and_methods_are_problem_json(any_app: Flask) -> None:
    client = any_app.test_client()
    missing = client.get("/api/v1/nothing")
    assert missing.status_code == 404 and missing.mimetype == "application/problem+json"
    wrong = client.get("/api/v1/verify")
    assert wrong.status_code == 405 and wrong.get_json()["code"] == "method_not_allowed"


def test_get_code_answers_the_same_record_without_recording(any_app: Flask, demo: dict[str, str]) -> None:
    resp = any_app.test_client().get(f"/api/v1/codes/{demo['certificate_revoked']}")
    assert resp.status_code == 200
    assert resp.get_json()["verdict"] == "certificate_revoked"
    assert resp.headers["Cache-Control"] == "no-store"  # its scan history is always current


def test_the_mobile_result_page_shows_the_verdict_in_chinese(any_app: Flask, demo: dict[str, str]) -> None:
    client = any_app.test_client()
    page = client.get(f"/c/{demo['genuine']}")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "真品" in html and "有机大米" in html and 'name="viewport"' in html
    assert "查无此码" in client.get(f"/c/{demo['not_found']}").get_data(as_text=True)
    assert "查询" in client.get("/").get_data(as_text=True)


def test_health_readiness_spec_and_docs(any_app: Flask) -> None:
    client = any_app.test_client()
    assert client.get("/healthz").get_json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.get_json()["database"] == "ok"
    spec = client.get("/openapi.json").get_json()
    assert spec["openapi"].startswith("3.")
    assert "/api/v1/verify" in spec["paths"]
    assert "swagger-ui-bundle.js" in client.get("/docs").get_data(as_text=True)
    asset = client.get("/docs/assets/swagger-ui-bundle.js")
    assert asset.status_code == 200 and asset.mimetype == "text/javascript"
    asset.close()
