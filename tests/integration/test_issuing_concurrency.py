"""Quantity control under concurrency (issue 17): many organizations' submissions for the
last tonnes of one certificate product, at once, on MariaDB. Together they never consume
more than is certified, every order is decided (approved or rejected, none lost to a
deadlock), and what the product shows as used is exactly what the approved orders hold."""

from __future__ import annotations

import contextlib
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask

from domain import access
from domain.bulk import Scope
from domain.codes import organic_key
from domain.errors import Conflict
from registry import schema
from tests.conftest import ADMIN
from webapp import container

CERT = {
    "number": "0123OP2600017",
    "body_code": "0123",
    "holder": "演示企业",
    "valid_from": "2026-01-01",
    "valid_until": "2099-12-31",
    # 1 t of rice and 0.5 t of beans.
    "products": [{"name": "大米", "certified_tonnes": "1"}, {"name": "绿豆", "certified_tonnes": "0.5"}],
}
ALL = Scope("all", name="test")


def _certified(service_app: Flask) -> None:
    """The body and its certificate (CERT), through the admin API."""
    http = service_app.test_client()
    http.post("/api/v1/admin/bodies", json=[{"code": "0123", "name": "甲认证中心"}], headers=ADMIN)
    assert http.post("/api/v1/admin/certificates", json=[CERT], headers=ADMIN).get_json()["accepted"] == 1


def test_concurrent_submissions_never_exceed_the_certified_quantity(service_app: Flask) -> None:
    _certified(service_app)
    issuing = container(service_app).issuing
    spec = {
        "certificate": CERT["number"],
        "package_spec": "10千克",
        "weight_kg": "10",
        "label_spec": "椭圆标",
    }
    ids = [
        item["id"]
        for item in issuing.upsert_specs(
            [
                {**spec, "product": "大米", "trade_name": "大米"},
                {**spec, "product": "绿豆", "trade_name": "绿豆"},
            ],
            ALL,
        )["items"]
    ]
    rice, beans = ids
    shipping = {"address": "杭州", "contact": "企业", "phone": "1234"}
    numbers = []
    # 24 orders of 70 kg of rice each (1 t fits 14 of them); every third also asks for 50 kg
    # of beans, listed first, so orders lock the two products in opposite line order.
    for n in range(24):
        lines = [{"spec_id": rice, "quantity": 7, "unit_price": 1}]
        if n % 3 == 0:
            lines.insert(0, {"spec_id": beans, "quantity": 5, "unit_price": 1})
        numbers.append(
            issuing.create_order({"certificate": CERT["number"], **shipping, "lines": lines}, ALL)["number"]
        )

    start = threading.Barrier(8)

    def submit(number: str) -> str:
        with contextlib.suppress(threading.BrokenBarrierError):  # the last few: fewer than 8
            start.wait(timeout=30)
        return str(issuing.submit(number, ALL)["status"])

    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = dict(zip(numbers, pool.map(submit, numbers), strict=True))

    assert set(statuses.values()) <= {"auto_approved", "auto_rejected"}
    approved = [n for n, s in statuses.items() if s == "auto_approved"]
    rice_kg = sum(70 for _ in approved)
    beans_kg = sum(50 for n in approved if numbers.index(n) % 3 == 0)
    assert rice_kg <= 1000 and beans_kg <= 500
    # The last tonnes were taken: no order that would have fitted was turned away.
    assert rice_kg > 1000 - 70
    q = {p["product"]: p for p in issuing.quantities(CERT["number"], ALL)["products"]}
    assert Decimal(q["大米"]["used_tonnes"]) * 1000 == rice_kg
    assert Decimal(q["绿豆"]["used_tonnes"]) * 1000 == beans_kg
    assert Decimal(q["大米"]["available_tonnes"]) >= 0
    # Each rejection names the product it would overdraw.
    for number, status in statuses.items():
        if status == "auto_rejected":
            history = issuing.order(number, ALL)["history"]
            assert "大米" in (history[-1]["reason"] or "")


def _allocated_without_codes(service_app: Flask, quantity: int, codes_from: str = "generated") -> str:
    """An order allocated for generated codes whose generation has not run: segments and a
    label group, no codes yet (the state a stopped generation leaves); or allocated for a
    printer's codes, not loaded yet."""
    _certified(service_app)
    issuing = container(service_app).issuing
    spec = {
        "certificate": CERT["number"],
        "product": "大米",
        "trade_name": "大米",
        "package_spec": "10克",
        "weight_kg": "0.01",
        "label_spec": "椭圆标",
    }
    [spec_id] = [item["id"] for item in issuing.upsert_specs([spec], ALL)["items"]]
    order = issuing.create_order(
        {
            "certificate": CERT["number"],
            "address": "杭州",
            "contact": "企业",
            "phone": "1234",
            "lines": [{"spec_id": spec_id, "quantity": quantity, "unit_price": 1}],
        },
        ALL,
    )["number"]
    assert issuing.submit(order, ALL)["status"] == "auto_approved"
    check = issuing._check(ALL, order, access.may_certify, None, "allocate")
    issuing.registry.allocate(order, codes_from, check, "test")
    return str(order)


def _codes_of(service_app: Flask, group_id: int) -> tuple[int, int]:
    oc = schema.organic_codes
    with container(service_app).issuing.registry.engine.connect() as conn:
        rows, identities = conn.execute(
            sa.select(sa.func.count(), sa.func.count(sa.distinct(oc.c.identity_code))).where(
                oc.c.group_id == group_id
            )
        ).one()
    return int(rows), int(identities)


def test_a_chunk_with_a_taken_code_lands_whole_or_not_at_all(service_app: Flask) -> None:
    """A generated chunk holding another label's code rolls back with its progress: none of
    it is saved until it is sent again whole, so a retry beside it can never give the same
    identities codes of its own (review of 77ac8bc)."""
    issuing = container(service_app).issuing
    order = _allocated_without_codes(service_app, 3)
    [line] = issuing.registry.order_lines(order)
    taken = organic_key(f"012326{900_000_000_001:012d}")
    http = service_app.test_client()
    other = {"code": f"012326{900_000_000_001:012d}", "certificate": CERT["number"], "product": "大米"}
    assert http.post("/api/v1/admin/codes", json=[other], headers=ADMIN).get_json()["accepted"] == 1
    rows = [(taken, line["group_id"], "100000001"), (11, line["group_id"], "100000002")]
    today = date.today()
    assert issuing.registry.insert_new_codes(line["id"], (0, 2), rows, today) == [taken]
    assert _codes_of(service_app, line["group_id"]) == (0, 0)
    assert issuing.registry.order_lines(order)[0]["codes_written"] == 0
    rows[0] = (12, line["group_id"], "100000001")
    assert issuing.registry.insert_new_codes(line["id"], (0, 2), rows, today) == []
    assert _codes_of(service_app, line["group_id"]) == (2, 2)
    assert issuing.registry.order_lines(order)[0]["codes_written"] == 2


def test_two_generations_of_one_order_at_once_write_each_identity_once(service_app: Flask) -> None:
    """An allocated order asked again completes a generation that stopped; asked twice at
    once (a retry beside a slow first try), the two must not both write codes for the same
    identities. One generates, the other is told to wait (409) or finds nothing left."""
    quantity = 45_000  # three chunks of generation
    order = _allocated_without_codes(service_app, quantity)
    issuing = container(service_app).issuing
    start = threading.Barrier(2)
    outcomes: list[str] = []

    def allocate() -> None:
        start.wait(timeout=30)
        try:
            issuing.allocate(order, {"codes": "generated"}, ALL)
            outcomes.append("done")
        except Conflict as exc:
            outcomes.append(exc.code)

    threads = [threading.Thread(target=allocate) for _ in range(2)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert "done" in outcomes and set(outcomes) <= {"done", "generation_in_progress"}
    # Asked again once both are over: whatever was left is completed.
    issuing.allocate(order, {"codes": "generated"}, ALL)

    [line] = issuing.registry.order_lines(order)
    assert line["codes_written"] == quantity
    assert _codes_of(service_app, line["group_id"]) == (quantity, quantity)


def _slow_and_watched(
    monkeypatch: pytest.MonkeyPatch, c: Any, owner: object, name: str, delay_s: float
) -> list[int]:
    """The in-flight marks' life shortened to a second, and `owner.name` (a chunk's save)
    slowed by `delay_s`; returned: how many imports workers saw in flight at each call."""
    from services import admin as admin_service

    monkeypatch.setattr(admin_service, "IMPORT_MARK_S", 1.0)
    monkeypatch.setattr(admin_service, "_MARK_MARGIN_S", 0.2)
    save = getattr(owner, name)
    in_flight: list[int] = []

    def slow(*args: Any, **kwargs: Any) -> Any:
        time.sleep(delay_s)
        gens = c.resolver.generations.current()
        in_flight.append(gens["imports"] if gens else -1)
        return save(*args, **kwargs)

    monkeypatch.setattr(owner, name, slow)
    return in_flight


def test_a_generation_longer_than_the_mark_keeps_its_codes_in_flight_throughout(
    service_app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An order's generation is an import: while it runs, workers must not believe their
    copy of the filter's "never issued" for its codes (they are announced to the shared
    bits before they are saved). The mark that says so lives a minute, so a generation
    longer than that renews it as it goes, as an import renews it between its chunks.
    Here the mark lives a second and each chunk takes ~0.3 s: before the renewal, the
    mark had lapsed by the fourth chunk."""
    from services import issuing as issuing_service

    monkeypatch.setattr(issuing_service, "GENERATE_CHUNK", 500)
    monkeypatch.setattr(issuing_service, "ANNOUNCE_CODES", 500)
    order = _allocated_without_codes(service_app, 4_000)  # eight chunks, ~2.4 s
    c = container(service_app)
    issuing = c.issuing
    in_flight = _slow_and_watched(monkeypatch, c, issuing.registry, "insert_new_codes", 0.3)
    issuing.allocate(order, {"codes": "generated"}, ALL)
    assert len(in_flight) == 8 and all(n >= 1 for n in in_flight), in_flight
    [line] = issuing.registry.order_lines(order)
    assert line["codes_written"] == 4_000


def test_a_printers_file_longer_than_the_mark_keeps_its_codes_in_flight_throughout(
    service_app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same for a printer's file of codes (5,000 rows a chunk): each chunk renews the
    mark. Here the mark lives a second and each chunk takes ~0.4 s."""
    order = _allocated_without_codes(service_app, 20_000, "printer")  # four chunks, ~1.6 s
    c = container(service_app)
    issuing = c.issuing
    [line] = issuing.registry.order_lines(order)
    start = int(line["identity_start"])
    yy = date.today().year % 100
    rows = [{"identity_code": f"{start + n:09d}", "code": f"0123{yy:02d}{n + 1:012d}"} for n in range(20_000)]
    in_flight = _slow_and_watched(monkeypatch, c, issuing.codes, "write_chunk", 0.4)
    result = issuing.import_printer_codes(order, rows, ALL)
    assert result.accepted == 20_000 and not result.rejected
    assert len(in_flight) == 4 and all(n >= 1 for n in in_flight), in_flight
