"""The overview service on MariaDB and SQLite, over aggregates the scan archive kept: what a
scope sees for a period, and that one organization sees nothing of another's."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from flask import Flask

from anomaly.events import ScanEvent
from domain.bulk import Scope
from domain.errors import BadInput
from domain.overview import Period
from domain.scans import Flag
from registry import aggregates
from registry.overview import month_ranges
from webapp import container
from webapp.demo import seed

NOW = datetime(2026, 3, 10, 4, 0, tzinfo=UTC)  # noon in China, 10 March
TODAY = date(2026, 3, 10)


@pytest.fixture
def demo(any_app: Flask) -> dict[str, str]:
    return seed(container(any_app).admin, date.today())


def ev(n: int, code: str, verdict: str, days_ago: int, place: tuple[str, str] | None) -> ScanEvent:
    city, province = place or (None, None)
    at = NOW - timedelta(days=days_ago)
    return ScanEvent(f"e{n}", code, at, "qr", verdict, f"c{n}", None, None, None, city, province)


def owner(app: Flask, code: str) -> aggregates.Owner:
    with container(app).engine.connect() as conn:
        return aggregates.owners_of(conn, [code])[code]


def test_a_scope_sees_its_own_scans_flags_places_and_gauge(any_app: Flask, demo: dict[str, str]) -> None:
    c = container(any_app)
    mine, theirs = demo["genuine"], demo["certificate_suspended"]
    hangzhou, chengdu = ("杭州市", "浙江省"), ("成都市", "四川省")
    c.scan_sql.write_events(
        [
            ev(1, mine, "genuine", 0, hangzhou),
            ev(2, mine, "suspicious", 1, hangzhou),
            ev(3, demo["genuine (legacy 17-digit)"], "genuine", 2, None),
            ev(4, mine, "genuine", 40, hangzhou),  # outside a 30-day period
            ev(5, theirs, "certificate_suspended", 0, chengdu),
        ]
    )
    c.scan_sql.upsert_flag(mine, Flag("distinct_scanners", "suspicious", NOW - timedelta(days=1), {}))
    c.scan_sql.upsert_flag(theirs, Flag("velocity", "warn", NOW, {}))
    service = c.overview
    service.clock = lambda: NOW
    period = service.period("30")
    assert (period.first, period.last, len(period.dates())) == (TODAY - timedelta(days=29), TODAY, 30)

    org = owner(any_app, mine).organization_id
    assert org is not None and org != owner(any_app, theirs).organization_id
    view = service.overview(Scope("organization", org), period)
    assert view.days[-1] == TODAY and len(view.days) == 30
    assert view.scans_by_verdict == {
        "genuine": [0] * 29 + [1],
        "suspicious": [0] * 28 + [1, 0],
    }
    assert view.flags_by_rule == {"distinct_scanners": [0] * 28 + [1, 0]}
    assert [(p.province, p.scans, p.suspicious) for p in view.provinces] == [("浙江省", 2, 1)]
    assert [(p.city, p.scans) for p in view.cities] == [("杭州市", 2)]
    assert set(view.points) == {("浙江省", "杭州市")}
    lng, lat = view.points[("浙江省", "杭州市")]
    assert 119 < lng < 121 and 29.5 < lat < 31
    assert [(r.kind, r.flags) for r in view.top_certificates] == [("certificate", 1)]
    assert [(r.kind, r.name, r.flags) for r in view.top_products] == [("product", "有机大米", 1)]
    assert view.totals == {"scans": 2, "suspicious": 1, "flags": 1}
    # The gauge: the product of `mine` (5 kg packages, 120 t certified) has one code seen;
    # it counts all time, not the period (the code's scan 40 days ago is the same code).
    (row,) = view.gauge
    assert (row.product, row.codes, row.seen_tonnes, row.certified_tonnes) == ("有机大米", 1, 0.005, 120.0)
    assert not row.over

    # 90 days reach the scan 40 days ago, through a whole month of monthly rows (February).
    quarter = service.overview(Scope("organization", org), service.period(90))
    assert quarter.totals["scans"] == 3 and [(p.city, p.scans) for p in quarter.cities] == [("杭州市", 3)]
    assert quarter.scans_by_verdict["genuine"][-41] == 1

    # Everything: both organizations' scans and the legacy code's (no place).
    everything = service.overview(Scope("all"), period)
    assert everything.totals == {"scans": 4, "suspicious": 1, "flags": 2}
    assert {p.province for p in everything.provinces} == {"浙江省", "四川省"}
    assert len(everything.gauge) == 2  # the legacy code's product too

    # Another organization: only its own.
    other = service.overview(Scope("organization", owner(any_app, theirs).organization_id), period)
    assert other.totals == {"scans": 1, "suspicious": 0, "flags": 1}
    assert {p.province for p in other.provinces} == {"四川省"}
    assert [r.name for r in other.top_products] == ["有机小米"]
    assert other.gauge == []  # its only scan was not a genuine one

    # A body sees every certificate it issued (the demo's one body issued both).
    body = service.overview(Scope("body", owner(any_app, mine).body_id), period)
    assert body.totals == everything.totals

    # An organization with nothing yet sees empty charts, not an error.
    empty = service.overview(Scope("organization", 999_999), period)
    assert empty.totals == {"scans": 0, "suspicious": 0, "flags": 0} and empty.gauge == []


def test_a_period_reads_whole_months_and_the_days_around_them() -> None:
    days, months = month_ranges(date(2026, 1, 15), date(2026, 4, 10))
    assert days == [(date(2026, 1, 15), date(2026, 1, 31)), (date(2026, 4, 1), date(2026, 4, 10))]
    assert months == (date(2026, 2, 1), date(2026, 3, 1))
    assert month_ranges(date(2026, 3, 1), date(2026, 3, 31)) == ([], (date(2026, 3, 1), date(2026, 3, 1)))
    assert month_ranges(date(2026, 3, 2), date(2026, 3, 31)) == (
        [(date(2026, 3, 2), date(2026, 3, 31))],
        None,
    )
    assert month_ranges(date(2025, 12, 5), date(2026, 1, 4)) == (
        [(date(2025, 12, 5), date(2026, 1, 4))],
        None,
    )


def test_only_the_offered_periods_are_accepted() -> None:
    assert Period.choose(None, TODAY).days == 30
    assert Period.choose("7", TODAY).first == TODAY - timedelta(days=6)
    for bad in ("0", "31", "-7", "x", "365000"):
        with pytest.raises(BadInput):
            Period.choose(bad, TODAY)


def test_rankings_and_places_add_the_days_at_either_end_to_the_whole_months(
    any_app: Flask, demo: dict[str, str]
) -> None:
    """The period's daily counts summed, whichever rows are read (days at either end, whole
    months, or a month's row less the days left out), ranked with ties broken by id and cut
    to the limit; another scope's rows and the days outside the period left out. Monthly
    rows are their days' sums, as registry.aggregates keeps them."""
    import random

    import sqlalchemy as sa

    from registry import schema as t
    from registry.overview import SqlOverviewReader

    engine = container(any_app).engine
    rng = random.Random(3)
    # Jan 15-31 (most of January: its month less Jan 1-14), Feb-Mar whole, Apr 1-10 (days).
    first, last = date(2026, 1, 15), date(2026, 4, 10)
    days = [date(2025, 12, 31), date(2026, 1, 1), date(2026, 1, 14), date(2026, 1, 15), date(2026, 1, 31)]
    days += [date(2026, 2, 1), date(2026, 3, 20), date(2026, 4, 1), date(2026, 4, 10), date(2026, 4, 11)]
    days += [date(2026, 4, 30), date(2026, 5, 1)]
    with engine.begin() as conn:
        # A third batch, so that the limit cuts every ranking.
        conn.execute(
            t.batches.insert().values(
                number="WCMY-RANK", producer="p", product="五常大米", created_at=datetime(2026, 1, 1)
            )
        )
        products = conn.execute(
            sa.select(t.certificate_products.c.certificate_id, t.certificate_products.c.id)
        ).all()
        batches = conn.execute(sa.select(t.batches.c.id)).scalars().all()
    targets = [(cert, product, 0) for cert, product in products] + [(0, 0, b) for b in batches]
    assert len({c for c, _p, _b in targets if c}) > 2 and len(batches) > 2  # the limit cuts
    places = [("浙江省", "杭州市"), ("浙江省", "宁波市"), ("北京市", "北京市"), ("广东省", "")]
    target_rows, place_rows = [], []
    month_targets: dict[tuple[object, ...], int] = {}
    month_places: dict[tuple[object, ...], list[int]] = {}
    want_targets: dict[str, dict[int, int]] = {"certificate": {}, "product": {}, "batch": {}}
    want_places: dict[tuple[str, str], list[int]] = {}
    for scope in (("a", 0), ("o", 7)):
        for day in days:
            month = day.replace(day=1)
            inside = first <= day <= last
            counted = scope == ("a", 0) and inside
            # Some targets and places only on some days; the first target and Shanghai only
            # outside the period (in a month whose row is read less those days: left out).
            pool = targets[1:]
            for cert, product, batch in rng.sample(pool, len(pool) - 2) + ([] if inside else [targets[0]]):
                n = rng.choice((1, 2, 3))  # small counts: ties in the rankings
                target_rows.append((*scope, day, cert, product, batch, n))
                key = (*scope, month, cert, product, batch)
                month_targets[key] = month_targets.get(key, 0) + n
                if counted:
                    for kind, target in (("certificate", cert), ("product", product), ("batch", batch)):
                        if target:
                            want_targets[kind][target] = want_targets[kind].get(target, 0) + n
            for province, city in rng.sample(places, 3) + ([] if inside else [("上海市", "上海市")]):
                scans, suspicious = rng.randrange(1, 50), rng.randrange(0, 3)
                place_rows.append((*scope, day, province, city, scans, suspicious))
                total = month_places.setdefault((*scope, month, province, city), [0, 0])
                total[0] += scans
                total[1] += suspicious
                if counted:
                    total = want_places.setdefault((province, city), [0, 0])
                    total[0] += scans
                    total[1] += suspicious
    month_target_rows = [(*key, n) for key, n in month_targets.items()]
    month_place_rows = [(*key, *totals) for key, totals in month_places.items()]
    with engine.begin() as conn:
        for table, rows in (
            (t.agg_flag_targets, target_rows),
            (t.agg_flag_targets_month, month_target_rows),
            (t.agg_places, place_rows),
            (t.agg_places_month, month_place_rows),
        ):
            conn.execute(sa.delete(table))
            names = [c.name for c in table.columns]
            conn.execute(table.insert(), [dict(zip(names, row, strict=True)) for row in rows])
    reader = SqlOverviewReader(engine)
    for limit in (2, 1000):
        ranked = reader.top_targets(("a", 0), first, last, limit)
        for kind in ("certificate", "product", "batch"):
            want = sorted(want_targets[kind].items(), key=lambda kv: (-kv[1], kv[0]))[:limit]
            assert [(r.id, r.flags) for r in ranked if r.kind == kind] == want, (kind, limit)
    assert sorted(
        (p.province, p.city, p.scans, p.suspicious) for p in reader.places(("a", 0), first, last)
    ) == sorted(
        (province, city, scans, suspicious) for (province, city), (scans, suspicious) in want_places.items()
    )
