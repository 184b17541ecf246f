"""The dashboard's aggregates on MariaDB and SQLite: kept by the same writes that store scan
events and open flags, counted once however often the at-least-once worker repeats a batch,
in every scope that may read them, and recounted identically by `rebuild`."""

from __future__ import annotations

import threading
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask

from anomaly.events import ScanEvent
from domain.codes import organic_key
from domain.scans import Flag
from registry import aggregates
from registry import schema as t
from webapp import container
from webapp.demo import seed

AT = datetime(2026, 3, 1, 17, 30, tzinfo=UTC)  # 01:30 on 2 March in China
CHINA_DAY = date(2026, 3, 2)


@pytest.fixture
def demo(any_app: Flask) -> dict[str, str]:
    return seed(container(any_app).admin, date.today())


def event(
    n: int, code: str, verdict: str = "genuine", at: datetime = AT, place: tuple[str, str] | None = None
) -> ScanEvent:
    city, province = place or (None, None)
    return ScanEvent(f"ev-{n}", code, at, "qr", verdict, f"c{n}", None, None, None, city, province)


def rows(app: Flask, table: sa.Table) -> set[tuple[Any, ...]]:
    with container(app).engine.connect() as conn:
        return {tuple(r) for r in conn.execute(sa.select(table))}


def owner(app: Flask, code: str) -> aggregates.Owner:
    with container(app).engine.connect() as conn:
        return aggregates.owners_of(conn, [code])[code]


def test_a_batch_written_twice_is_counted_once_in_every_scope(any_app: Flask, demo: dict[str, str]) -> None:
    sql = container(any_app).scan_sql
    genuine, bq = demo["genuine"], demo["genuine (BQ A code)"]
    batch = [
        event(1, genuine, place=("杭州市", "浙江省")),
        event(2, genuine, "suspicious", place=("杭州市", "浙江省")),
        event(3, bq, place=("北京市", "北京市")),
        event(4, demo["not_found"], "not_found"),
    ]
    assert sql.write_events(batch) == 4
    # Re-delivered, with a new event in the same batch and a duplicate inside it.
    assert sql.write_events([*batch, event(5, genuine), event(5, genuine)]) == 1
    org, bq_org = owner(any_app, genuine), owner(any_app, bq)
    assert org.body_id is not None and org.organization_id is not None and org.product_id
    # The demo's batches belong to no organization: their scans count for everything only.
    assert bq_org.batch_id and bq_org.body_id is None and bq_org.organization_id is None
    assert rows(any_app, t.agg_scans) == {
        ("a", 0, CHINA_DAY, "genuine", 3),
        ("a", 0, CHINA_DAY, "suspicious", 1),
        ("a", 0, CHINA_DAY, "not_found", 1),
        ("b", org.body_id, CHINA_DAY, "genuine", 2),
        ("b", org.body_id, CHINA_DAY, "suspicious", 1),
        ("o", org.organization_id, CHINA_DAY, "genuine", 2),
        ("o", org.organization_id, CHINA_DAY, "suspicious", 1),
    }
    assert rows(any_app, t.agg_places) == {
        ("a", 0, CHINA_DAY, "浙江省", "杭州市", 2, 1),
        ("a", 0, CHINA_DAY, "北京市", "北京市", 1, 0),
        ("b", org.body_id, CHINA_DAY, "浙江省", "杭州市", 2, 1),
        ("o", org.organization_id, CHINA_DAY, "浙江省", "杭州市", 2, 1),
    }
    # The gauge: the genuine organic code once (its suspicious scan and the BQ code not).
    assert rows(any_app, t.seen_codes) == {(organic_key(genuine), org.group_id, AT.replace(tzinfo=None))}
    assert rows(any_app, t.agg_product_seen) == {(org.product_id, 1, 1, 5.0)}  # 5 kg packages
    # Monthly place rows sum the daily ones.
    assert rows(any_app, t.agg_places_month) == {
        (kind, scope_id, CHINA_DAY.replace(day=1), *rest)
        for kind, scope_id, _day, *rest in rows(any_app, t.agg_places)
    }


def test_a_flag_counts_when_opened_not_when_raised_again(any_app: Flask, demo: dict[str, str]) -> None:
    sql = container(any_app).scan_sql
    code = demo["genuine"]
    sql.upsert_flag(code, Flag("distinct_scanners", "warn", AT, {}))
    sql.upsert_flag(code, Flag("distinct_scanners", "suspicious", AT + timedelta(minutes=5), {}))
    sql.upsert_flag(code, Flag("velocity", "warn", AT, {}))
    sql.upsert_flag(demo["not_found"], Flag("velocity", "warn", AT, {}))
    sql.add_evidence(code, {"text": "copied"})
    sql.add_evidence(code, {"text": "again"})
    o = owner(any_app, code)
    today = aggregates.china_day(datetime.now(UTC))
    assert rows(any_app, t.agg_flags) == {
        ("a", 0, CHINA_DAY, "distinct_scanners", 1),
        ("a", 0, CHINA_DAY, "velocity", 2),
        ("a", 0, today, "shopper_report", 1),
        ("b", o.body_id, CHINA_DAY, "distinct_scanners", 1),
        ("b", o.body_id, CHINA_DAY, "velocity", 1),
        ("b", o.body_id, today, "shopper_report", 1),
        ("o", o.organization_id, CHINA_DAY, "distinct_scanners", 1),
        ("o", o.organization_id, CHINA_DAY, "velocity", 1),
        ("o", o.organization_id, today, "shopper_report", 1),
    }
    target = (o.certificate_id, o.product_id, 0)
    assert {r for r in rows(any_app, t.agg_flag_targets) if r[:2] == ("a", 0)} == (
        {("a", 0, CHINA_DAY, *target, 2), ("a", 0, today, *target, 1)}
        if today != CHINA_DAY
        else {("a", 0, CHINA_DAY, *target, 3)}
    )


def test_rebuild_counts_what_the_worker_counted(any_app: Flask, demo: dict[str, str]) -> None:
    c = container(any_app)
    places = [("杭州市", "浙江省"), ("广州市", "广东省"), ("成都市", "四川省")]
    codes = [
        demo["genuine"],
        demo["genuine (legacy 17-digit)"],
        demo["genuine (BQ B code)"],
        demo["not_found"],
    ]
    events = [
        event(
            i,
            codes[i % 4],
            ["genuine", "suspicious", "genuine", "not_found"][i % 4],
            AT + timedelta(hours=7 * i),
            places[i % 3] if i % 5 else None,
        )
        for i in range(40)
    ]
    c.scan_sql.write_events(events[:25])
    c.scan_sql.write_events(events[15:])
    c.scan_sql.upsert_flag(demo["genuine"], Flag("velocity", "warn", AT, {}))
    c.scan_sql.upsert_flag(demo["genuine (BQ B code)"], Flag("distinct_scanners", "warn", AT, {}))
    before = {table.name: rows(any_app, table) for table in aggregates.AGGREGATES}
    assert all(before.values())
    counts = aggregates.rebuild(c.engine)
    assert {table.name: rows(any_app, table) for table in aggregates.AGGREGATES} == before
    assert counts == {name: len(r) for name, r in before.items()}


def test_the_rebuild_command_recounts_under_todays_owners(embedded_app: Flask) -> None:
    c = container(embedded_app)
    demo = seed(c.admin, date.today())
    c.scan_sql.write_events([event(1, demo["genuine"], place=("杭州市", "浙江省"))])
    before = rows(embedded_app, t.agg_scans)
    with c.engine.begin() as conn:
        conn.execute(t.agg_scans.delete())
    result = embedded_app.test_cli_runner().invoke(args=["aggregates", "rebuild"])
    assert result.exit_code == 0, result.output
    assert "agg_scans 3 rows" in result.output
    assert rows(embedded_app, t.agg_scans) == before


def test_racing_workers_count_a_batch_once(service_app: Flask) -> None:
    c = container(service_app)
    seed(c.admin, date.today())
    batch = [event(i, f"0123{i:014d}", "not_found", AT + timedelta(minutes=i)) for i in range(300)]
    barrier = threading.Barrier(4)
    stored: list[int] = []

    def write() -> None:
        barrier.wait()
        stored.append(c.scan_sql.write_events(batch))

    threads = [threading.Thread(target=write) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(stored) == 300
    assert rows(service_app, t.agg_scans) == {("a", 0, CHINA_DAY, "not_found", 300)}
