"""The served OpenAPI document is valid and describes every route the app serves."""

from __future__ import annotations

import io
import re
from datetime import date

import pytest
from flask import Flask
from openapi_spec_validator import validate

from tests.conftest import ADMIN
from webapp import container
from webapp.demo import seed

# Static files, and the dashboard's pages (HTML for people signed in with a session cookie,
# not operations of the API: README's "Dashboard" lists them), are not in the document.
SKIP = ("/static/", "/docs/assets/", "/favicon.ico", "/dashboard")


def test_the_spec_is_valid_openapi(embedded_app: Flask) -> None:
    validate(embedded_app.test_client().get("/openapi.json").get_json())


def test_every_route_is_documented_with_its_methods(embedded_app: Flask) -> None:
    paths = embedded_app.test_client().get("/openapi.json").get_json()["paths"]
    missing = []
    for rule in embedded_app.url_map.iter_rules():
        if rule.rule.startswith(SKIP):
            continue
        path = re.sub(r"<(?:[a-z]+:)?([a-z_]+)>", r"{\1}", rule.rule)
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            if method.lower() not in paths.get(path, {}):
                missing.append(f"{method} {path}")
    assert missing == []


# Where schemathesis (tests/api/test_schemathesis.py) found the code looser than the
# document, the code now refuses what the document does not allow.


def _seeded(app: Flask) -> Flask:
    c = container(app)
    seed(c.admin, date.today(), c.scan_admin)
    return app


@pytest.mark.parametrize(
    "query",
    ["since=", "rule=", "rule=nonsense", "severity=", "limit=0", "limit=501", "limit=1.5"],
)
def test_flag_filters_that_the_document_does_not_allow_are_refused(embedded_app: Flask, query: str) -> None:
    got = embedded_app.test_client().get(f"/api/v1/admin/flags?{query}", headers=ADMIN)
    assert got.status_code == 400 and got.mimetype == "application/problem+json"


def test_flag_filters_within_the_document_are_answered(embedded_app: Flask) -> None:
    http = _seeded(embedded_app).test_client()
    got = http.get("/api/v1/admin/flags?rule=distinct_scanners&limit=500", headers=ADMIN)
    assert got.status_code == 200 and got.get_json()["items"]


def test_a_status_change_dated_by_a_number_is_refused(embedded_app: Flask) -> None:
    http = _seeded(embedded_app).test_client()
    number = f"0123OP{date.today().year % 100:02d}00017"
    got = http.patch(
        f"/api/v1/admin/certificates/{number}", json={"status": "valid", "effective_on": 0}, headers=ADMIN
    )
    assert got.status_code == 400 and got.get_json()["code"] == "invalid_body"


@pytest.mark.parametrize("location", [{"lat": 30.0, "lng": False}, {"lat": "30", "lng": 120}])
def test_verify_takes_only_json_numbers_as_coordinates(embedded_app: Flask, location: dict) -> None:
    got = embedded_app.test_client().post(
        "/api/v1/verify", json={"input": "012326100000000001", "location": location}
    )
    assert got.status_code == 400 and got.get_json()["code"] == "invalid_body"


def test_verify_takes_null_for_an_unknown_location_and_client(embedded_app: Flask) -> None:
    got = embedded_app.test_client().post(
        "/api/v1/verify", json={"input": "012326100000000001", "location": None, "client": None}
    )
    assert got.status_code == 200


@pytest.mark.parametrize("location", ["[1, 2]", '{"lat": 30}', "12"])
def test_a_photo_location_that_is_not_a_lat_lng_object_is_refused(embedded_app: Flask, location: str) -> None:
    got = embedded_app.test_client().post(
        "/api/v1/scans",
        data={"image": (io.BytesIO(b"\x89PNG\r\n\x1a\n"), "label.png"), "location": location},
        content_type="multipart/form-data",
    )
    assert got.status_code == 400 and got.get_json()["code"] == "invalid_body"


def test_mini_program_inputs_take_only_json_numbers() -> None:
    from pydantic import TypeAdapter, ValidationError

    from services.inputs import Location, UnixSeconds

    seconds = TypeAdapter(UnixSeconds)
    assert seconds.validate_python(2052.0) == 2052  # JSON Schema's integer
    for bad in (False, "2052", 2052.5):
        with pytest.raises(ValidationError):
            seconds.validate_python(bad)
    with pytest.raises(ValidationError):
        Location.model_validate({"lat": 0.0, "lng": False})


def test_the_414_of_gunicorn_is_documented_where_a_code_rides_in_the_url(embedded_app: Flask) -> None:
    from pathlib import Path

    from gunicorn.config import Config

    # A 2,048-character code, percent-encoded, can pass gunicorn's request-line limit.
    assert "limit_request_line" not in Path("gunicorn.conf.py").read_text()
    assert Config().limit_request_line == 4094
    paths = embedded_app.test_client().get("/openapi.json").get_json()["paths"]
    for path in ("/api/v1/codes/{code}", "/c/{code}"):
        assert "414" in paths[path]["get"]["responses"], path


def test_a_webhooks_rules_are_documented_as_the_service_takes_them(embedded_app: Flask) -> None:
    # A new flag rule must reach the document's enum and its maxItems (schemathesis found
    # eight rules accepted where the document said at most seven).
    from domain.alerts import RULES

    schemas = embedded_app.test_client().get("/openapi.json").get_json()["components"]["schemas"]
    for name in ("WebhookCreate", "WebhookChange"):
        rules = schemas[name]["properties"]["rules"]
        assert rules["maxItems"] == len(RULES), name
        assert set(rules["items"]["enum"]) == set(RULES), name
