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

from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any, NamedTuple, Protocol

import sqlalchemy as sa
from sqlalchemy.dialects import mysql, sqlite

from domain.china_time import china_today
from domain.codes import organic_key
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

    def scopes(self) -> list[tuple[str, int]]:
        keys = [("a", 0)]
        if self.body_id is not None:
            keys.append(("b", self.body_id))
        if self.organization_id is not None:
            keys.append(("o", self.organization_id))
        return keys


NO_OWNER = Owner()


class EventFields(Protocol):
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
            .select_from(oc.join(g, g.c.id == oc.c.group_id).join(c, c.c.id == g.c.certificate_id))
            .where(oc.c.code.in_(keys[i : i + chunk]))
        ).all()
        for r in rows:
            owner = Owner(r.certificate_id, r.product_id, r.id, 0, r.body_id, r.organization_id)
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


def count_events(conn: sa.Connection, events: Sequence[EventFields]) -> None:
    """Count newly stored events (the caller inserted exactly these, in this transaction)."""
    if not events:
        return
    owners = owners_of(conn, (e.code for e in events))
    scans: Counter[tuple[Any, ...]] = Counter()
    places: dict[tuple[Any, ...], list[int]] = {}
    seen: list[dict[str, Any]] = []
    for e in events:
        owner = owners.get(e.code, NO_OWNER)
        day = china_day(e.at)
        suspicious = int(e.verdict == SUSPICIOUS)
        for kind, scope_id in owner.scopes():
            scans[(kind, scope_id, day, e.verdict)] += 1
            if e.province:
                totals = places.setdefault((kind, scope_id, day, e.province, e.city or ""), [0, 0])
                totals[0] += 1
                totals[1] += suspicious
        if e.verdict == GENUINE and owner.group_id:
            at = e.at.astimezone(UTC).replace(tzinfo=None) if e.at.tzinfo else e.at
            seen.append({"code": organic_key(e.code), "group_id": owner.group_id, "first_at": at})
    add_counts(conn, t.agg_scans, {k: (n,) for k, n in scans.items()})
    add_counts(conn, t.agg_places, places)
    _count_seen(conn, seen)


def _count_seen(conn: sa.Connection, seen: list[dict[str, Any]]) -> None:
    # One row per code, the batch's earliest scan of it (rows sorted: a batch holding a code
    # twice inserts it once, and the order keeps racing workers from deadlocking).
    first: dict[int, dict[str, Any]] = {}
    for row in sorted(seen, key=lambda r: (r["code"], r["first_at"])):
        first.setdefault(row["code"], row)
    new = set(insert_new(conn, t.seen_codes, list(first.values()), "code"))
    per_group = Counter(first[code]["group_id"] for code in new)
    add_counts(conn, t.agg_group_seen, {(group,): (n,) for group, n in per_group.items()})


def count_flag_opened(conn: sa.Connection, owner: Owner, rule: str, raised_at: datetime) -> None:
    """Count a flag the caller has just inserted (its (code, rule) row is new) on a code of
    `owner` (`owners_of`)."""
    day = china_day(raised_at)
    scopes = owner.scopes()
    add_counts(conn, t.agg_flags, {(k, i, day, rule): (1,) for k, i in scopes})
    target = (owner.certificate_id, owner.product_id, owner.batch_id)
    if any(target):
        add_counts(conn, t.agg_flag_targets, {(k, i, day, *target): (1,) for k, i in scopes})


# -- recounting everything ------------------------------------------------------------------

AGGREGATES = (t.agg_scans, t.agg_places, t.agg_flags, t.agg_flag_targets, t.agg_group_seen, t.seen_codes)


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


def rebuild(engine: sa.Engine, progress: Callable[[str], object] = lambda _: None) -> dict[str, int]:
    """Empty the aggregates and count every stored event and flag again under today's owners,
    in set-based SQL (minutes for tens of millions of events, not hours). Run it with the
    worker stopped (what it writes meanwhile may be counted twice or not at all). A flag
    counts on the day it was last raised (an escalation moves its raised_at); the worker
    counts it on its first."""
    e, f = t.scan_events, t.flags
    with engine.begin() as conn:
        for table in AGGREGATES:
            conn.execute(table.delete())
        events, ev = _owned(e, e.c.code)
        day = _day_expr(conn, e.c.at)
        for kind, column in _SCOPES:
            scope_id = sa.literal(0) if column is None else ev[column]
            source = e if column is None else events
            where = [] if column is None else [ev[column].is_not(None)]
            by = [] if column is None else [scope_id]  # a literal is no GROUP BY term on MariaDB
            progress(f"scans by day and verdict, scope {kind}")
            select = (
                sa.select(sa.literal(kind), scope_id, day, e.c.verdict, sa.func.count())
                .select_from(source)
                .where(*where)
                .group_by(*by, day, e.c.verdict)
            )
            _fill(conn, t.agg_scans, select)
            progress(f"scans by place, scope {kind}")
            city = sa.func.coalesce(e.c.city, "")
            suspicious = sa.func.sum(sa.case((e.c.verdict == SUSPICIOUS, 1), else_=0))
            select = (
                sa.select(sa.literal(kind), scope_id, day, e.c.province, city, sa.func.count(), suspicious)
                .select_from(source)
                .where(e.c.province.is_not(None), *where)
                .group_by(*by, day, e.c.province, city)
            )
            _fill(conn, t.agg_places, select)
        progress("codes seen in a genuine scan")
        seen = (
            sa.select(_code_key(e.c.code).label("code"), ev["group_id"], sa.func.min(e.c.at))
            .select_from(events)
            .where(e.c.verdict == GENUINE, ev["group_id"].is_not(None))
            .group_by(_code_key(e.c.code), ev["group_id"])
        )
        _fill(conn, t.seen_codes, seen)
        per_group = sa.select(t.seen_codes.c.group_id, sa.func.count()).group_by(t.seen_codes.c.group_id)
        _fill(conn, t.agg_group_seen, per_group)
        progress("flags")
        flags, fo = _owned(f, f.c.code)
        fday = _day_expr(conn, f.c.raised_at)
        for kind, column in _SCOPES:
            scope_id = sa.literal(0) if column is None else fo[column]
            where = [] if column is None else [fo[column].is_not(None)]
            by = [] if column is None else [scope_id]
            select = (
                sa.select(sa.literal(kind), scope_id, fday, f.c.rule, sa.func.count())
                .select_from(flags)
                .where(*where)
                .group_by(*by, fday, f.c.rule)
            )
            _fill(conn, t.agg_flags, select)
            target = (fo["certificate_id"], fo["product_id"], fo["batch_id"])
            select = (
                sa.select(sa.literal(kind), scope_id, fday, *target, sa.func.count())
                .select_from(flags)
                .where(*where, sa.or_(*(col != 0 for col in target)))
                .group_by(*by, fday, *target)
            )
            _fill(conn, t.agg_flag_targets, select)
        return {
            table.name: int(conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())
            for table in AGGREGATES
        }


def period_days(first: date, last: date) -> list[date]:
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]
