"""The dashboard overview's reads (domain.ports.OverviewReader): the aggregate tables that
registry.aggregates keeps, one scope key's rows over a range of China days. Every query
walks its table's primary key (scope_kind, scope_id, day, ...) over the range: its cost
grows with the days and places in the period, never with the number of scan events."""

from __future__ import annotations

from datetime import date

import sqlalchemy as sa

from domain.bulk import Scope
from domain.overview import DayCount, GroupSeen, PlaceCount, Ranked
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
        p = t.agg_places
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(p.c.province, p.c.city, sa.func.sum(p.c.scans), sa.func.sum(p.c.suspicious))
                .where(*_in(p, scope, first, last))
                .group_by(p.c.province, p.c.city)
            ).all()
        return [PlaceCount(r[0], r[1], int(r[2]), int(r[3])) for r in rows]

    def top_targets(self, scope: tuple[str, int], first: date, last: date, limit: int) -> list[Ranked]:
        a = t.agg_flag_targets
        where = _in(a, scope, first, last)
        c, cp, b = t.certificates, t.certificate_products, t.batches
        ranked: list[Ranked] = []
        with self.engine.connect() as conn:
            for column, kind in (
                (a.c.certificate_id, "certificate"),
                (a.c.product_id, "product"),
                (a.c.batch_id, "batch"),
            ):
                top = (
                    sa.select(column.label("id"), sa.func.sum(a.c.flags).label("flags"))
                    .where(*where, column != 0)
                    .group_by(column)
                    .order_by(sa.desc("flags"), column)
                    .limit(limit)
                    .subquery()
                )
                if kind == "certificate":
                    names = sa.select(top.c.id, top.c.flags, c.c.number, c.c.holder).join(
                        c, c.c.id == top.c.id
                    )
                elif kind == "product":
                    names = (
                        sa.select(top.c.id, top.c.flags, cp.c.name, c.c.number)
                        .join(cp, cp.c.id == top.c.id)
                        .join(c, c.c.id == cp.c.certificate_id)
                    )
                else:
                    names = sa.select(top.c.id, top.c.flags, b.c.product, b.c.number).join(
                        b, b.c.id == top.c.id
                    )
                ranked.extend(Ranked(kind, r[0], r[2], r[3], int(r[1])) for r in conn.execute(names))
        return ranked

    def groups_seen(self, scope: Scope) -> list[GroupSeen]:
        s, g, cp, c = t.agg_group_seen, t.label_groups, t.certificate_products, t.certificates
        query = (
            sa.select(
                cp.c.id, cp.c.name, c.c.number, c.c.holder, g.c.package, cp.c.certified_tonnes, s.c.codes
            )
            .select_from(
                s.join(g, g.c.id == s.c.group_id)
                .join(cp, cp.c.id == g.c.product_id)
                .join(c, c.c.id == g.c.certificate_id)
            )
            .where(s.c.codes > 0)
        )
        # Today's owner of the certificate: the gauge is about the certificate, not history.
        if scope.kind == "body":
            query = query.where(c.c.body_id == scope.id)
        elif scope.kind == "organization":
            query = query.where(c.c.organization_id == scope.id)
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
        return [
            GroupSeen(r[0], r[1], r[2], r[3], r[4], float(r[5]) if r[5] is not None else None, int(r[6]))
            for r in rows
        ]


def _date(value: date | str) -> date:
    return date.fromisoformat(value) if isinstance(value, str) else value
