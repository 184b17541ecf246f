"""The dashboard overview's reads (domain.ports.OverviewReader): the aggregate tables that
registry.aggregates keeps, one scope key's rows over a range of China days. Every query
walks its table's primary key (scope_kind, scope_id, day, ...) over the range: its cost
grows with the days and places in the period, never with the number of scan events."""

from __future__ import annotations

from datetime import date, timedelta

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
        p = _ranged(t.agg_places, t.agg_places_month, scope, first, last)
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(
                    p.c.province, p.c.city, sa.func.sum(p.c.scans), sa.func.sum(p.c.suspicious)
                ).group_by(p.c.province, p.c.city)
            ).all()
        return [PlaceCount(r[0], r[1], int(r[2]), int(r[3])) for r in rows]

    def top_targets(self, scope: tuple[str, int], first: date, last: date, limit: int) -> list[Ranked]:
        a = _ranged(t.agg_flag_targets, t.agg_flag_targets_month, scope, first, last)
        # One pass over the period's rows; the three rankings (certificate, product, batch)
        # are summed from it here, then only the winners are named.
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(a.c.certificate_id, a.c.product_id, a.c.batch_id, sa.func.sum(a.c.flags)).group_by(
                    a.c.certificate_id, a.c.product_id, a.c.batch_id
                )
            ).all()
            totals: dict[str, dict[int, int]] = {"certificate": {}, "product": {}, "batch": {}}
            for cert, product, batch, flags in rows:
                for kind, key in (("certificate", cert), ("product", product), ("batch", batch)):
                    if key:
                        totals[kind][key] = totals[kind].get(key, 0) + int(flags)
            top = {
                kind: sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:limit]
                for kind, counts in totals.items()
            }
            return [
                Ranked(kind, key, *names[key], flags)
                for kind, names in self._names(
                    conn, {k: [key for key, _ in v] for k, v in top.items()}
                ).items()
                for key, flags in top[kind]
                if key in names
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


def _ranged(
    daily: sa.Table, monthly: sa.Table, scope: tuple[str, int], first: date, last: date
) -> sa.Subquery:
    """The rows of `scope` over [first, last]: whole months from `monthly`, the days at
    either end from `daily` (a year reads 12 monthly rows per key and up to 60 daily)."""
    days, months = month_ranges(first, last)
    parts = [sa.select(daily).where(*_in(daily, scope, lo, hi)) for lo, hi in days]
    if months is not None:
        parts.append(sa.select(monthly).where(*_in(monthly, scope, *months)))
    return (parts[0] if len(parts) == 1 else sa.union_all(*parts)).subquery()


def _date(value: date | str) -> date:
    return date.fromisoformat(value) if isinstance(value, str) else value
