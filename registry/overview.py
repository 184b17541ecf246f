"""The dashboard overview's reads (domain.ports.OverviewReader): the aggregate tables that
registry.aggregates keeps, one scope key's rows over a range of China days. Every query
walks its table's primary key (scope_kind, scope_id, day, ...) over the range: its cost
grows with the days and places in the period, never with the number of scan events."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import sqlalchemy as sa

from domain.bulk import Scope
from domain.overview import DayCount, GaugeRow, PlaceCount, Ranked
from registry import schema as t


def _in(table: sa.Table, scope: tuple[str, int], first: date, last: date) -> list[sa.ColumnElement[bool]]:
    return [
        table.c.scope_kind == scope[0],
        table.c.scope_id == scope[1],
        table.c.day >= first,
        table.c.day <= last,
    ]


class SqlOverviewReader:
    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    def _day_counts(
        self, table: sa.Table, key: str, measure: str, where: list[sa.ColumnElement[bool]]
    ) -> list[DayCount]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(table.c.day, table.c[key], sa.func.sum(table.c[measure]))
                .where(*where)
                .group_by(table.c.day, table.c[key])
            ).all()
        return [DayCount(_date(r[0]), r[1], int(r[2])) for r in rows]

    def scans_by_day(self, scope: tuple[str, int], first: date, last: date) -> list[DayCount]:
        return self._day_counts(t.agg_scans, "verdict", "scans", _in(t.agg_scans, scope, first, last))

    def flags_by_day(self, scope: tuple[str, int], first: date, last: date) -> list[DayCount]:
        return self._day_counts(t.agg_flags, "rule", "flags", _in(t.agg_flags, scope, first, last))

    def places(self, scope: tuple[str, int], first: date, last: date) -> list[PlaceCount]:
        with self.engine.connect() as conn:
            sums = _summed(
                conn,
                t.agg_places,
                t.agg_places_month,
                scope,
                first,
                last,
                ("province", "city"),
                ("scans", "suspicious"),
            )
        return [
            PlaceCount(province, city, scans, suspicious)
            for (province, city), (scans, suspicious) in sums.items()
        ]

    def top_targets(self, scope: tuple[str, int], first: date, last: date, limit: int) -> list[Ranked]:
        # The three rankings (certificate, product, batch) in one statement, each summed and
        # cut to `limit` by MariaDB: a year of everything's flag targets is 30 k rows, and
        # their 2-5 k sums cost more to decode in Python (pymysql, under the GIL the
        # overview's other reads share) than to rank in SQL; 30 rows come back.
        ranges = _ranges(t.agg_flag_targets, t.agg_flag_targets_month, first, last)
        ranked = []
        for kind, column in (
            ("certificate", "certificate_id"),
            ("product", "product_id"),
            ("batch", "batch_id"),
        ):
            parts = [
                sa.select(table.c[column].label("id"), (sa.func.sum(table.c.flags) * sign).label("flags"))
                .where(*_in(table, scope, lo, hi), table.c[column] != 0)
                .group_by(table.c[column])
                for table, lo, hi, sign in ranges
            ]
            sums = (parts[0] if len(parts) == 1 else sa.union_all(*parts)).subquery()
            total = sa.func.sum(sums.c.flags)
            top = (
                sa.select(sa.literal(kind).label("kind"), sums.c.id, total.label("flags"))
                .group_by(sums.c.id)
                .having(total > 0)  # none left once a month's row had its days subtracted
                .order_by(total.desc(), sums.c.id)
                .limit(limit)
                .subquery()
            )
            ranked.append(sa.select(top))
        with self.engine.connect() as conn:
            rows = conn.execute(sa.union_all(*ranked)).all()
            top_ids: dict[str, list[tuple[int, int]]] = {"certificate": [], "product": [], "batch": []}
            for kind, key, flags in rows:
                top_ids[kind].append((int(key), int(flags)))
            names = self._names(conn, {k: [key for key, _ in v] for k, v in top_ids.items()})
        return [
            Ranked(kind, key, *names[kind][key], flags)
            for kind, pairs in top_ids.items()
            for key, flags in pairs
            if key in names[kind]
        ]

    @staticmethod
    def _names(conn: sa.Connection, ids: dict[str, list[int]]) -> dict[str, dict[int, tuple[str, str]]]:
        """(name, detail) of certificates (number, holder), products (name, certificate) and
        batches (product, number) by id."""
        c, cp, b = t.certificates, t.certificate_products, t.batches
        queries = {
            "certificate": sa.select(c.c.id, c.c.number, c.c.holder).where(c.c.id.in_(ids["certificate"])),
            "product": sa.select(cp.c.id, cp.c.name, c.c.number)
            .join(c, c.c.id == cp.c.certificate_id)
            .where(cp.c.id.in_(ids["product"])),
            "batch": sa.select(b.c.id, b.c.product, b.c.number).where(b.c.id.in_(ids["batch"])),
        }
        return {
            kind: {r[0]: (r[1], r[2]) for r in conn.execute(query)} if ids[kind] else {}
            for kind, query in queries.items()
        }

    def gauge(self, scope: Scope, limit: int) -> list[GaugeRow]:
        s, cp, c = t.agg_product_seen, t.certificate_products, t.certificates
        ratio = sa.case(
            (
                sa.and_(s.c.weighed_codes > 0, cp.c.certified_tonnes > 0),
                s.c.kg / 1000 / cp.c.certified_tonnes,
            ),
            else_=sa.null(),
        )
        query = (
            sa.select(cp.c.id, cp.c.name, c.c.number, c.c.holder, s.c.codes, s.c.weighed_codes, s.c.kg)
            .add_columns(cp.c.certified_tonnes)
            .select_from(s.join(cp, cp.c.id == s.c.product_id).join(c, c.c.id == cp.c.certificate_id))
            .where(s.c.codes > 0)
            # The fullest first; products that cannot be weighed after every one that can.
            .order_by(ratio.is_(None), ratio.desc(), s.c.codes.desc(), cp.c.id)
            .limit(limit)
        )
        # Today's owner of the certificate: the gauge is about the certificate, not history.
        if scope.kind == "body":
            query = query.where(c.c.body_id == scope.id)
        elif scope.kind == "organization":
            query = query.where(c.c.organization_id == scope.id)
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
        return [
            GaugeRow(
                product_id=r[0],
                product=r[1],
                certificate=r[2],
                holder=r[3],
                codes=int(r[4]),
                seen_tonnes=round(float(r[6]) / 1000, 3) if r[5] else None,
                certified_tonnes=float(r[7]) if r[7] is not None else None,
            )
            for r in rows
        ]


def month_ranges(first: date, last: date) -> tuple[list[tuple[date, date]], tuple[date, date] | None]:
    """[first, last] as the days before the first whole month, the whole months (the first
    day of the first and of the last), and the days after them; no months: one day range."""
    start = first if first.day == 1 else _next_month(first)
    after = last + timedelta(days=1)
    end = after if after.day == 1 else after.replace(day=1)  # the day after the last whole month
    if start >= end:
        return [(first, last)], None
    days = []
    if first < start:
        days.append((first, start - timedelta(days=1)))
    if end <= last:
        days.append((end, last))
    return days, (start, (end - timedelta(days=1)).replace(day=1))


def _next_month(day: date) -> date:
    return (day.replace(day=28) + timedelta(days=4)).replace(day=1)


def _ranges(
    daily: sa.Table, monthly: sa.Table, first: date, last: date
) -> list[tuple[sa.Table, date, date, int]]:
    """[first, last] as (table, first day, last day, sign) ranges to add up: the whole
    months in `monthly` (by their first days) and the days at either end in `daily`; where
    those days are most of their month, the month's row minus the days left out instead (a
    year for everything: Dec 4-31 read as one monthly row per key less 3 days' rows, not 28
    days' rows). A monthly row is the sum of its month's daily ones (registry.aggregates
    writes and rebuilds both), so the sums are the same."""
    days, months = month_ranges(first, last)
    ranges: list[tuple[sa.Table, date, date, int]] = []
    for day_lo, hi in days:
        lo = day_lo
        while lo <= hi:
            start = lo.replace(day=1)
            end = _next_month(start) - timedelta(days=1)
            piece_hi = min(hi, end)
            inside = (piece_hi - lo).days + 1
            if inside * 2 > (end - start).days + 1:
                ranges.append((monthly, start, start, 1))
                if start < lo:
                    ranges.append((daily, start, lo - timedelta(days=1), -1))
                if piece_hi < end:
                    ranges.append((daily, piece_hi + timedelta(days=1), end, -1))
            else:
                ranges.append((daily, lo, piece_hi, 1))
            lo = piece_hi + timedelta(days=1)
    if months is not None:
        ranges.append((monthly, *months, 1))
    return ranges


def _summed(
    conn: sa.Connection,
    daily: sa.Table,
    monthly: sa.Table,
    scope: tuple[str, int],
    first: date,
    last: date,
    keys: tuple[str, ...],
    measures: tuple[str, ...],
) -> dict[tuple[Any, ...], list[int]]:
    """The `measures` of `scope` over [first, last] summed per `keys`: whole months from
    `monthly`, the days at either end from `daily` (a year reads 12 monthly rows per key
    and up to 60 daily).

    Each range is summed on its own and the sums added here, in one round trip: MariaDB
    sums a UNION of the raw rows only after copying them all into a temporary table (a
    year's flag targets for everything, 30 k rows: 28-45 ms, its monthly part alone 14-21)."""
    ranges = _ranges(daily, monthly, first, last)
    parts = [
        sa.select(*(table.c[k] for k in keys), *(sa.func.sum(table.c[m]) * sign for m in measures))
        .where(*_in(table, scope, lo, hi))
        .group_by(*(table.c[k] for k in keys))
        for table, lo, hi, sign in ranges
    ]
    query = parts[0] if len(parts) == 1 else sa.union_all(*parts)
    sums: dict[tuple[Any, ...], list[int]] = {}
    width = len(keys)
    for row in conn.execute(query):
        key = tuple(row[:width])
        total = sums.get(key)
        if total is None:
            sums[key] = [int(v) for v in row[width:]]
        else:
            for i, v in enumerate(row[width:]):
                total[i] += int(v)
    # A key counted only on days a month's row had subtracted again.
    return {key: total for key, total in sums.items() if any(total)}


def _date(value: date | str) -> date:
    return date.fromisoformat(value) if isinstance(value, str) else value
