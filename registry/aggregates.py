"""The dashboard's aggregate tables: kept current with every batch of scan events and every
flag the worker writes, and read by the dashboard's overview (never raw events).

Counting rides in the transaction that stores the events or opens the flag, and counts only
what that transaction really inserted: events come back from `INSERT IGNORE ... RETURNING`
(MariaDB 10.5+, SQLite: only the rows inserted, never ones already stored), so a batch the
at-least-once worker writes twice, or two workers racing for one entry, is counted once (the
second insert waits on the first one's row lock and then inserts nothing). A flag is counted
when its (code, rule) row is first inserted; the unique key makes a racing second insert
fail and be retried as an update, which counts nothing.

Each count lands in the rows of every scope that may read it ("a" everything, "b" the code's
certification body, "o" its organization), resolved when it is written: a code's owner then
is who the scan or flag counted for. A later change of owner (a certificate given another
holder) does not move history already counted; `flask aggregates rebuild` recounts every
retained event and flag under today's owners (rebuild()). Days are China's calendar days.

Upserts touch rows in key order, so two workers adding to the same day's rows wait for each
other rather than deadlock.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, date, datetime
from typing import Any, NamedTuple, Protocol

import sqlalchemy as sa
from sqlalchemy.dialects import mysql, sqlite

from domain.china_time import china_today
from domain.codes import organic_key
from domain.records import parse_package_kg
from registry import schema as t

SUSPICIOUS = "suspicious"
GENUINE = "genuine"
CHINA_OFFSET_H = 8  # Asia/Shanghai has kept UTC+8 all year since 1991


class Owner(NamedTuple):
    """Who a code belongs to, as the aggregates need it; 0 / None where it has none."""

    certificate_id: int = 0
    product_id: int = 0
    group_id: int = 0
    batch_id: int = 0
    body_id: int | None = None
    organization_id: int | None = None
    package: str = ""  # the label group's package text (its weight for the gauge)

    def scopes(self) -> list[tuple[str, int]]:
        keys = [("a", 0)]
        if self.body_id is not None:
            keys.append(("b", self.body_id))
        if self.organization_id is not None:
            keys.append(("o", self.organization_id))
        return keys


NO_OWNER = Owner()


class EventFields(Protocol):
    """What the aggregates read of a scan event (registry.scans.EventLike reads the rest)."""

    @property
    def event_id(self) -> str: ...
    @property
    def code(self) -> str: ...
    @property
    def at(self) -> datetime: ...
    @property
    def verdict(self) -> str: ...
    @property
    def city(self) -> str | None: ...
    @property
    def province(self) -> str | None: ...


def is_mysql(conn: sa.Connection) -> bool:
    return conn.dialect.name in ("mysql", "mariadb")


def _insert(conn: sa.Connection, table: sa.Table) -> Any:
    return mysql.insert(table) if is_mysql(conn) else sqlite.insert(table)


def china_day(at: datetime) -> date:
    return china_today(at if at.tzinfo else at.replace(tzinfo=UTC))


def month_of(day: date) -> date:
    """The first day of `day`'s month: the `day` of a monthly row."""
    return day.replace(day=1)


def _with_months(counts: Mapping[tuple[Any, ...], Sequence[int]]) -> dict[tuple[Any, ...], list[Any]]:
    """Daily counts (keys: kind, scope id, day, ...) summed into monthly ones."""
    months: dict[tuple[Any, ...], list[Any]] = {}
    for (kind, scope_id, day, *rest), values in counts.items():
        _add(months, (kind, scope_id, month_of(day), *rest), values)
    return months


def _is_organic(code: str) -> bool:
    return code.isdigit() and len(code) in (17, 18)


def owners_of(conn: sa.Connection, codes: Iterable[str], chunk: int = 1000) -> dict[str, Owner]:
    """Each code's owner now: an organic code's label group, certificate product and
    certificate (body, organization); a BQ token's batch (organization). Unknown codes are
    left out."""
    organic: dict[int, str] = {}
    tokens: list[str] = []
    for code in set(codes):
        if _is_organic(code):
            organic[organic_key(code)] = code
        else:
            tokens.append(code)
    found: dict[str, Owner] = {}
    oc, g, c = t.organic_codes, t.label_groups, t.certificates
    keys = sorted(organic)
    for i in range(0, len(keys), chunk):
        rows = conn.execute(
            sa.select(oc.c.code, g.c.id, g.c.certificate_id, g.c.product_id, c.c.body_id, c.c.organization_id)
            .add_columns(g.c.package)
            .select_from(oc.join(g, g.c.id == oc.c.group_id).join(c, c.c.id == g.c.certificate_id))
            .where(oc.c.code.in_(keys[i : i + chunk]))
        ).all()
        for r in rows:
            owner = Owner(r.certificate_id, r.product_id, r.id, 0, r.body_id, r.organization_id, r.package)
            found[organic[r[0]]] = owner
    q, b = t.bq_codes, t.batches
    for i in range(0, len(tokens), chunk):
        batch_rows = conn.execute(
            sa.select(q.c.token, b.c.id, b.c.organization_id)
            .select_from(q.join(b, b.c.id == q.c.batch_id))
            .where(q.c.token.in_(tokens[i : i + chunk]))
        ).all()
        for br in batch_rows:
            found[br.token] = Owner(batch_id=br.id, organization_id=br.organization_id)
    return found


def insert_new(conn: sa.Connection, table: sa.Table, rows: Sequence[dict[str, Any]], key: str) -> list[Any]:
    """Insert rows whose key is not stored yet; return the keys this statement inserted."""
    if not rows:
        return []
    stmt: Any
    if is_mysql(conn):
        stmt = mysql.insert(table).prefix_with("IGNORE")
    else:
        stmt = sqlite.insert(table).on_conflict_do_nothing()
    if conn.dialect.insert_returning:
        return [r[0] for r in conn.execute(stmt.returning(table.c[key]), list(rows))]
    # MySQL has no RETURNING: one row at a time, each telling whether it went in.
    return [row[key] for row in rows if conn.execute(stmt, row).rowcount]


def add_counts(conn: sa.Connection, table: sa.Table, counts: Mapping[tuple[Any, ...], Sequence[int]]) -> None:
    """Add `counts` (primary key -> the table's count columns, in order) to the table's rows,
    creating missing ones; rows are written in key order (see the module docstring)."""
    if not counts:
        return
    pk = [col.name for col in table.primary_key.columns]
    measures = [col.name for col in table.columns if col.name not in pk]
    rows = [
        {**dict(zip(pk, key, strict=True)), **dict(zip(measures, values, strict=True))}
        for key, values in sorted(counts.items(), key=lambda kv: tuple(str(k) for k in kv[0]))
    ]
    stmt = _insert(conn, table)
    if is_mysql(conn):
        stmt = stmt.on_duplicate_key_update({m: table.c[m] + stmt.inserted[m] for m in measures})
    else:
        stmt = stmt.on_conflict_do_update(
            index_elements=pk, set_={m: table.c[m] + stmt.excluded[m] for m in measures}
        )
    conn.execute(stmt, rows)


Counts = dict[tuple[Any, ...], list[Any]]


class Tally:
    """Counts to add to the aggregate tables (primary key -> measures), from events and
    opened flags; `count_events` and `count_flag_opened` write one batch's, and a bulk
    loader (bench/dashboard_bench.py) can gather millions before writing them once."""

    def __init__(self) -> None:
        self.scans: Counts = {}
        self.places: Counts = {}
        self.flags: Counts = {}
        self.targets: Counts = {}
        # Organic codes in a genuine scan: key -> (earliest scan, label group, owner).
        self.seen: dict[int, tuple[datetime, Owner]] = {}

    def event(self, e: EventFields, owner: Owner) -> None:
        day = china_day(e.at)
        suspicious = int(e.verdict == SUSPICIOUS)
        for kind, scope_id in owner.scopes():
            _add(self.scans, (kind, scope_id, day, e.verdict), (1,))
            if e.province:
                _add(self.places, (kind, scope_id, day, e.province, e.city or ""), (1, suspicious))
        if e.verdict == GENUINE and owner.group_id:
            at = e.at.astimezone(UTC).replace(tzinfo=None) if e.at.tzinfo else e.at
            key = organic_key(e.code)
            known = self.seen.get(key)
            if known is None or at < known[0]:
                self.seen[key] = (at, owner)

    def flag(self, owner: Owner, rule: str, raised_at: datetime) -> None:
        day = china_day(raised_at)
        target = (owner.certificate_id, owner.product_id, owner.batch_id)
        for kind, scope_id in owner.scopes():
            _add(self.flags, (kind, scope_id, day, rule), (1,))
            if any(target):
                _add(self.targets, (kind, scope_id, day, *target), (1,))

    def seen_rows(self) -> list[dict[str, Any]]:
        """seen_codes rows, in key order (racing workers lock them in the same order)."""
        return [
            {"code": key, "group_id": owner.group_id, "first_at": at}
            for key, (at, owner) in sorted(self.seen.items())
        ]

    def products(self, new_codes: Iterable[int]) -> Counts:
        """agg_product_seen counts of the codes (keys of `seen`) seen for the first time."""
        per_product: Counts = {}
        for code in new_codes:
            owner = self.seen[code][1]
            kg = parse_package_kg(owner.package)
            _add(per_product, (owner.product_id,), (1, 1, kg) if kg else (1, 0, 0.0))
        return per_product

    def tables(self) -> list[tuple[sa.Table, Counts]]:
        """Every table's counts but the seen codes' (which need to know what is new)."""
        return [
            (t.agg_scans, self.scans),
            (t.agg_places, self.places),
            (t.agg_places_month, _with_months(self.places)),
            (t.agg_flags, self.flags),
            (t.agg_flag_targets, self.targets),
            (t.agg_flag_targets_month, _with_months(self.targets)),
        ]


def _add(counts: Counts, key: tuple[Any, ...], values: Sequence[Any]) -> None:
    totals = counts.get(key)
    if totals is None:
        counts[key] = list(values)
    else:
        for i, v in enumerate(values):
            totals[i] += v


def _write(conn: sa.Connection, tally: Tally) -> None:
    for table, counts in tally.tables():
        add_counts(conn, table, counts)
    if tally.seen:
        new = insert_new(conn, t.seen_codes, tally.seen_rows(), "code")
        add_counts(conn, t.agg_product_seen, tally.products(new))


def count_events(conn: sa.Connection, events: Sequence[EventFields]) -> None:
    """Count newly stored events (the caller inserted exactly these, in this transaction)."""
    if not events:
        return
    owners = owners_of(conn, (e.code for e in events))
    tally = Tally()
    for e in events:
        tally.event(e, owners.get(e.code, NO_OWNER))
    _write(conn, tally)


def count_flag_opened(conn: sa.Connection, owner: Owner, rule: str, raised_at: datetime) -> None:
    """Count a flag the caller has just inserted (its (code, rule) row is new) on a code of
    `owner` (`owners_of`)."""
    tally = Tally()
    tally.flag(owner, rule, raised_at)
    _write(conn, tally)


# -- recounting everything ------------------------------------------------------------------

AGGREGATES = (
    t.agg_scans,
    t.agg_places,
    t.agg_places_month,
    t.agg_flags,
    t.agg_flag_targets,
    t.agg_flag_targets_month,
    t.seen_codes,
    t.agg_product_seen,
)


def _day_expr(conn: sa.Connection, column: Any) -> Any:
    if is_mysql(conn):
        return sa.func.date(sa.func.date_add(column, sa.text(f"INTERVAL {CHINA_OFFSET_H} HOUR")))
    return sa.func.date(column, f"+{CHINA_OFFSET_H} hours")


def _code_key(code: Any) -> Any:
    """SQL for a stored code's organic key (domain.codes.organic_key), NULL for a BQ token."""
    digits = sa.not_(code.regexp_match("[^0-9]"))
    length = sa.func.length(code)
    return sa.case(
        (sa.and_(length == 18, digits), sa.cast(code, sa.BigInteger)),
        (sa.and_(length == 17, digits), organic_key("0" * 17) + sa.cast(code, sa.BigInteger)),
        else_=sa.null(),
    )


def _owned(source: sa.FromClause, code: Any) -> tuple[sa.FromClause, dict[str, Any]]:
    """`source` joined to its codes' owners now, with the owner's columns (0 / NULL for none)."""
    oc, g, c = t.organic_codes.alias("oc"), t.label_groups.alias("g"), t.certificates.alias("c")
    q, b = t.bq_codes.alias("q"), t.batches.alias("b")
    joined = (
        source.outerjoin(oc, oc.c.code == _code_key(code))
        .outerjoin(g, g.c.id == oc.c.group_id)
        .outerjoin(c, c.c.id == g.c.certificate_id)
        .outerjoin(q, q.c.token == code)
        .outerjoin(b, b.c.id == q.c.batch_id)
    )
    cols = {
        "body_id": c.c.body_id,
        "organization_id": sa.func.coalesce(c.c.organization_id, b.c.organization_id),
        "certificate_id": sa.func.coalesce(g.c.certificate_id, 0),
        "product_id": sa.func.coalesce(g.c.product_id, 0),
        "group_id": oc.c.group_id,
        "batch_id": sa.func.coalesce(b.c.id, 0),
    }
    return joined, cols


def _fill(conn: sa.Connection, table: sa.Table, select: sa.Select[Any]) -> None:
    """INSERT ... SELECT into every column of `table`, in its order."""
    conn.execute(table.insert().from_select([col.name for col in table.columns], select))


_SCOPES = (("a", None), ("b", "body_id"), ("o", "organization_id"))


def _temporary(name: str, *columns: sa.Column[Any]) -> sa.Table:
    return sa.Table(name, sa.MetaData(), *columns, prefixes=["TEMPORARY"])


def rebuild(engine: sa.Engine, progress: Callable[[str], object] = lambda _: None) -> dict[str, int]:
    """Empty the aggregates and count every stored event and flag again under today's owners,
    in set-based SQL (minutes for tens of millions of events, not hours). Run it with the
    worker stopped (what it writes meanwhile may be counted twice or not at all). A flag
    counts on the day it was last raised (an escalation moves its raised_at); the worker
    counts it on its first.

    Each distinct code's owner is looked up once, into a temporary table; then one pass over
    the events per measure counts by (day, ..., body, organization), and the three scopes'
    rows are summed from that (far fewer rows than events)."""
    e, f = t.scan_events, t.flags
    with engine.begin() as conn:
        if is_mysql(conn):
            # Counting by day, place and owner groups millions of rows: in memory, not on disk.
            conn.execute(sa.text("SET SESSION tmp_table_size = 1073741824, max_heap_table_size = 1073741824"))
        for table in AGGREGATES:
            conn.execute(table.delete())
        progress("owners of the codes scanned or flagged")
        owners = _temporary(
            "tmp_code_owners",
            sa.Column("code", t.Token, primary_key=True),
            sa.Column("code_key", t.BigKey, nullable=True),
            sa.Column("body_id", sa.Integer, nullable=True),
            sa.Column("organization_id", sa.Integer, nullable=True),
            sa.Column("certificate_id", sa.Integer, nullable=False),
            sa.Column("product_id", sa.Integer, nullable=False),
            sa.Column("group_id", sa.Integer, nullable=True),
            sa.Column("batch_id", sa.Integer, nullable=False),
        )
        owners.create(conn)
        codes = sa.union(sa.select(e.c.code), sa.select(f.c.code)).subquery()
        joined, cols = _owned(codes, codes.c.code)
        names = [col.name for col in owners.columns]
        _fill(
            conn,
            owners,
            sa.select(codes.c.code, _code_key(codes.c.code), *(cols[n] for n in names[2:])).select_from(
                joined
            ),
        )
        o = owners
        day = _day_expr(conn, e.c.at)
        with_owner = e.outerjoin(o, o.c.code == e.c.code)

        progress("scans by day and verdict")
        by_day = _temporary(
            "tmp_scans",
            sa.Column("day", sa.Date),
            sa.Column("verdict", sa.String(24)),
            sa.Column("body_id", sa.Integer),
            sa.Column("organization_id", sa.Integer),
            sa.Column("scans", sa.Integer),
        )
        by_day.create(conn)
        _fill(
            conn,
            by_day,
            sa.select(day, e.c.verdict, o.c.body_id, o.c.organization_id, sa.func.count())
            .select_from(with_owner)
            .group_by(day, e.c.verdict, o.c.body_id, o.c.organization_id),
        )
        _fill_scopes(conn, by_day, t.agg_scans, ["day", "verdict"])

        progress("scans by place")
        by_place = _temporary(
            "tmp_places",
            sa.Column("day", sa.Date),
            sa.Column("province", sa.String(40)),
            sa.Column("city", sa.String(40)),
            sa.Column("body_id", sa.Integer),
            sa.Column("organization_id", sa.Integer),
            sa.Column("scans", sa.Integer),
            sa.Column("suspicious", sa.Integer),
        )
        by_place.create(conn)
        city = sa.func.coalesce(e.c.city, "")
        suspicious = sa.func.sum(sa.case((e.c.verdict == SUSPICIOUS, 1), else_=0))
        _fill(
            conn,
            by_place,
            sa.select(day, e.c.province, city, o.c.body_id, o.c.organization_id, sa.func.count(), suspicious)
            .select_from(with_owner)
            .where(e.c.province.is_not(None))
            .group_by(day, e.c.province, city, o.c.body_id, o.c.organization_id),
        )
        _fill_scopes(conn, by_place, t.agg_places, ["day", "province", "city"])

        progress("codes seen in a genuine scan")
        _fill(
            conn,
            t.seen_codes,
            # An outer join read events first (an inner one may walk owners and fetch each
            # code's events by index: random reads across the whole table).
            sa.select(o.c.code_key, o.c.group_id, sa.func.min(e.c.at))
            .select_from(with_owner)
            .where(e.c.verdict == GENUINE, o.c.group_id.is_not(None))
            .group_by(o.c.code_key, o.c.group_id),
        )
        _fill_products_seen(conn)

        progress("flags")
        fday = _day_expr(conn, f.c.raised_at)
        flagged = f.join(o, o.c.code == f.c.code)
        for kind, column in _SCOPES:
            scope_id = sa.literal(0) if column is None else o.c[column]
            where = [] if column is None else [o.c[column].is_not(None)]
            by = [] if column is None else [scope_id]  # a literal is no GROUP BY term on MariaDB
            select = (
                sa.select(sa.literal(kind), scope_id, fday, f.c.rule, sa.func.count())
                .select_from(flagged)
                .where(*where)
                .group_by(*by, fday, f.c.rule)
            )
            _fill(conn, t.agg_flags, select)
            target = (o.c.certificate_id, o.c.product_id, o.c.batch_id)
            select = (
                sa.select(sa.literal(kind), scope_id, fday, *target, sa.func.count())
                .select_from(flagged)
                .where(*where, sa.or_(*(col != 0 for col in target)))
                .group_by(*by, fday, *target)
            )
            _fill(conn, t.agg_flag_targets, select)
        progress("months")
        _fill_months(conn, t.agg_places, t.agg_places_month)
        _fill_months(conn, t.agg_flag_targets, t.agg_flag_targets_month)
        for table in (by_place, by_day, owners):
            table.drop(conn)
        return {
            table.name: int(conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())
            for table in AGGREGATES
        }


def _fill_scopes(conn: sa.Connection, counted: sa.Table, table: sa.Table, keys: list[str]) -> None:
    """The rows of every scope, summed from counts by (keys..., body, organization)."""
    measures = [
        sa.func.sum(col) for col in counted.columns if col.name not in (*keys, "body_id", "organization_id")
    ]
    key_cols = [counted.c[k] for k in keys]
    for kind, column in _SCOPES:
        if column is None:
            select = sa.select(sa.literal(kind), sa.literal(0), *key_cols, *measures).group_by(*key_cols)
        else:
            scope_id = counted.c[column]
            select = (
                sa.select(sa.literal(kind), scope_id, *key_cols, *measures)
                .where(scope_id.is_not(None))
                .group_by(scope_id, *key_cols)
            )
        _fill(conn, table, select)


def _month_expr(conn: sa.Connection, day: Any) -> Any:
    if is_mysql(conn):
        return sa.func.date_format(day, "%Y-%m-01")
    return sa.func.date(day, "start of month")


def _fill_months(conn: sa.Connection, daily: sa.Table, monthly: sa.Table) -> None:
    """Monthly rows summed from the daily ones."""
    pk = [col for col in daily.primary_key.columns if col.name != "day"]
    keys = [col for col in pk if col.name not in ("scope_kind", "scope_id")]
    month = _month_expr(conn, daily.c.day)
    measures = [sa.func.sum(col) for col in daily.columns if col.name not in daily.primary_key.columns]
    select = sa.select(daily.c.scope_kind, daily.c.scope_id, month, *keys, *measures).group_by(
        daily.c.scope_kind, daily.c.scope_id, month, *keys
    )
    _fill(conn, monthly, select)


def _fill_products_seen(conn: sa.Connection) -> None:
    """Each certificate product's codes seen, and their weight, from seen_codes."""
    s, g = t.seen_codes, t.label_groups
    per_package = conn.execute(
        sa.select(g.c.product_id, g.c.package, sa.func.count())
        .select_from(s.join(g, g.c.id == s.c.group_id))
        .group_by(g.c.product_id, g.c.package)
    ).all()
    products: dict[tuple[Any, ...], list[Any]] = {}
    for product_id, package, codes in per_package:
        totals = products.setdefault((product_id,), [0, 0, 0.0])
        kg = parse_package_kg(package)
        totals[0] += codes
        if kg:
            totals[1] += codes
            totals[2] += kg * codes
    add_counts(conn, t.agg_product_seen, products)
