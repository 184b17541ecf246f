"""The dashboard's issuance forms over HTTP with bad input (typed by a person or forged):
every answer is a page saying what is wrong (400) or a redirect with the problem flashed,
never a 500, on SQLite and on MariaDB; nothing is saved from a refused form."""

from __future__ import annotations

import io
from datetime import date
from typing import Any

from flask import Flask

from domain.bulk import Scope
from tests.api.test_dashboard_people import DEMO_ORG, _seeded, _sign_in, _token
from webapp import container


def _certificate() -> str:
    return f"0123OP{date.today().year % 100:02d}00017"


def test_bad_order_and_spec_forms_are_400_pages_and_save_nothing(any_app: Flask) -> None:
    _seeded(any_app)
    http = any_app.test_client()
    assert _sign_in(http, "analyst@example.com").status_code == 302
    token = _token(http, "/dashboard/orders/new")
    shipping = {"address": "哈尔滨", "contact": "王", "phone": "0451-1", "application": "affix"}
    # No spec yet: any line is refused.
    for spec, quantity, price in (
        ("", "5", "1"),
        ("abc", "5", "1"),
        ("99999999999999999999", "5", "1"),
        ("1", "²", "1"),
        ("1", "-1", "1"),
        ("1", "1e9", "1"),
        ("1", "5", "abc"),
    ):
        form: dict[str, Any] = {
            "csrf_token": token,
            **shipping,
            "lines-0-spec_id": spec,
            "lines-0-label_spec": "",
            "lines-0-quantity": quantity,
            "lines-0-unit_price": price,
            "then": "save",
        }
        got = http.post("/dashboard/orders/new", data=form)
        assert got.status_code == 400, (spec, quantity, price, got.status_code)
        assert 'id="order-error"' in got.get_data(as_text=True)
    holder = Scope("organization", container(any_app).registry.scope_target_id("organization", DEMO_ORG))
    assert container(any_app).issuing.list_orders(holder, None)["items"] == []
    for product, weight in ((f"{_certificate()}|有机大米", "abc"), ("no-separator", "5"), ("|", "5")):
        got = http.post(
            "/dashboard/specs",
            data={
                "csrf_token": token,
                "product": product,
                "trade_name": "t",
                "package_spec": "p",
                "weight_kg": weight,
                "label_spec": "l",
            },
        )
        assert got.status_code == 400 and 'id="spec-errors"' in got.get_data(as_text=True)
    assert container(any_app).issuing.list_specs(holder)["items"] == []
    # Another order's page, a forged number, an action on an order that is not there: 404.
    for path in ("/dashboard/orders/20990101-001", "/dashboard/orders/%3Cx%3E"):
        assert http.get(path).status_code == 404
    assert http.post("/dashboard/orders/20990101-001/submit", data={"csrf_token": token}).status_code == 404
    # A body's printer import with a file that is not a sheet: the problem is flashed.
    body = any_app.test_client()
    assert _sign_in(body, "body@example.com").status_code == 302
    got = body.post(
        "/dashboard/orders/20990101-001/printer-codes",
        data={
            "csrf_token": _token(body, "/dashboard/orders"),
            "file": (io.BytesIO(b"\xff\xfe"), "x.csv"),
        },
    )
    assert got.status_code in (302, 404)
