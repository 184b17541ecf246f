"""The served OpenAPI document is valid and describes every route the app serves."""

from __future__ import annotations

import re

from flask import Flask
from openapi_spec_validator import validate

SKIP = ("/static/", "/docs/assets/")


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
