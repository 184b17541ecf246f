"""Scan events and flags in SQL: idempotent writes (by event id; by code and rule), the
flag list scoped to a token, and retention (raw events rolled up, then deleted)."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, date, datetime
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.dialects import mysql, sqlite

from domain.access import Owner
from domain.codes import organic_key
from domain.errors import BadInput, NotFound
from domain.scans import FLAG_FILE_COLUMNS, SEVERITY_RANK, FlagFilters, PastCheck
from registry import aggregates
from registry import schema as t
from registry.alerts import enqueue_alerts


class EventLike(aggregates.EventFields, Protocol):
    """What the store reads of a scan event (read-only, as frozen dataclasses are): what the
    aggregates count, and the rest of the row."""

    @property
    def channel(self) -> str: ...
    @property
    def client(self) -> str | None: ...
    @property
    def ip_hash(self) -> str | None: ...
    @property
    def lat(self) -> float | None: ...
    @property
    def lng(self) -> float | None: ...


class FlagLike(Protocol):
    @property
    def rule(self) -> str: ...
    @property
    def severity(self) -> str: ...
    @property
    def raised_at(self) -> datetime: ...
    @property
    def evidence(self) -> dict[str, Any]: ...


def _naive(value: datetime) -> datetime:
    return value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo else value


# The key of a 17-digit (legacy) code is offset past every 18-digit one (domain.codes).
_LEGACY_KEY = organic_key("0" * 17)


def _owned_flags(base: sa.FromClause | None = None) -> sa.FromClause:
    """Flags joined to whoever owns their code now: code -> label group -> certificate (body,
    organization); BQ token -> batch (organization).

    A flag's scope is read from current ownership, never from columns stored when it was
    raised: a certificate re-upserted with another holder, a code moved to another
    certificate or a batch given another organization would otherwise leave a former owner
    reviewing (and dismissing: the public verdict follows) flags on codes no longer theirs,
    and the new owner blind to them. Keeping stored columns in sync would need every present
    and future ownership change to remember them; a join cannot drift. Every join is on a
    primary key (organic key, label group, certificate, token, batch) from the flag row, so
    the list still walks flags newest first along ix_flags_raised_at, one page per cursor.
    `base`: the flags table joined to what chose the rows (the owner-first plan's
    candidates), instead of the flags table alone.
    """
    f, oc, g, c, q, b = t.flags, t.organic_codes, t.label_groups, t.certificates, t.bq_codes, t.batches
    p = t.certificate_products
    digits = sa.not_(f.c.code.regexp_match("[^0-9]"))
    length = sa.func.length(f.c.code)
    key = sa.case(
        (sa.and_(length == 18, digits), sa.cast(f.c.code, sa.BigInteger)),
        (sa.and_(length == 17, digits), _LEGACY_KEY + sa.cast(f.c.code, sa.BigInteger)),
        else_=sa.null(),
    )
    return (
        (f if base is None else base)
        .outerjoin(oc, oc.c.code == key)
        .outerjoin(g, g.c.id == oc.c.group_id)
        .outerjoin(c, c.c.id == g.c.certificate_id)
        .outerjoin(p, p.c.id == g.c.product_id)
        .outerjoin(q, q.c.token == f.c.code)
        .outerjoin(b, b.c.id == q.c.batch_id)
    )


# Above this many codes a scope's flag queue walks the flags by time (SqlScanArchive._plan);
# the plan chosen for a scope is kept this long.
OWNER_FIRST_CODES = 20_000
PLAN_SECONDS = 60.0
# Flags read per query for a file of the list (SqlScanArchive.export_flags).
EXPORT_PAGE = 5_000
_RAISED_AT, _ID = FLAG_FILE_COLUMNS.index("raised_at"), FLAG_FILE_COLUMNS.index("id")
_TIMES = ("raised_at", "updated_at")
_TIME_AT = {FLAG_FILE_COLUMNS.index(name) for name in _TIMES}


def _flag_filters(
    f: sa.FromClause,
    *,
    rule: str | None,
    severity: str | None,
    status: str | None,
    since: datetime | None,
    until: datetime | None,
    after: tuple[datetime, int] | None,
) -> list[sa.ColumnElement[bool]]:
    """The queue's filters on a flag's own columns, for `f` (the flags table or an alias);
    `after`: (raised_at, id) of the last flag already listed (a page's cursor)."""
    where = []
    if rule:
        where.append(f.c.rule == rule)
    if severity:
        where.append(f.c.severity == severity)
    if status:
        where.append(f.c.status == status)
    if since:
        where.append(f.c.raised_at >= _naive(since))
    if until:
        where.append(f.c.raised_at < _naive(until))
    if after:
        raised, last_id = after
        where.append(sa.or_(f.c.raised_at < raised, sa.and_(f.c.raised_at == raised, f.c.id < last_id)))
    return where


def _owned_flag_ids(owned_by: Owner, **filters: Any) -> sa.Subquery:
    """The ids of flags on codes of the owner's certificates (organic codes, through their
    label groups) and, for an organization, of its batches (BQ tokens), that pass the
    filters on the flag's own columns: a superset of the owner's flags, which the caller
    narrows with `_owned_flags` (the one definition of a flag's owner). MariaDB only: the
    code's text is rebuilt from its key (domain.codes.organic_code_from_key) with LPAD."""
    c, g, oc, b, q = t.certificates, t.label_groups, t.organic_codes, t.batches, t.bq_codes
    organic = t.flags.alias("owned_organic")
    text = sa.case(
        (oc.c.code >= _LEGACY_KEY, sa.func.lpad(oc.c.code - _LEGACY_KEY, 17, "0")),
        else_=sa.func.lpad(oc.c.code, 18, "0"),
    )
    if owned_by.body_id is not None:
        mine = c.c.body_id == owned_by.body_id
    else:
        mine = c.c.organization_id == owned_by.organization_id
    parts = [
        sa.select(organic.c.id)
        .select_from(
            c.join(g, g.c.certificate_id == c.c.id)
            .join(oc, oc.c.group_id == g.c.id)
            .join(organic, organic.c.code == text)
        )
        .where(mine, *_flag_filters(organic, **filters))
    ]
    if owned_by.body_id is None:
        tokens = t.flags.alias("owned_bq")
        parts.append(
            sa.select(tokens.c.id)
            .select_from(b.join(q, q.c.batch_id == b.c.id).join(tokens, tokens.c.code == q.c.token))
            .where(b.c.organization_id == owned_by.organization_id, *_flag_filters(tokens, **filters))
        )
    # UNION, not UNION ALL: a code that is both an organic code and a BQ token is one flag.
    return (parts[0] if len(parts) == 1 else sa.union(*parts)).subquery("owned")


def _current_owner() -> tuple[Any, Any, Any]:
    """(body id, organization id, certificate number) of a flag's code now, over `_owned_flags`;
    an organic code's certificate first, as `_owner` does."""
    c, b = t.certificates, t.batches
    return c.c.body_id, sa.func.coalesce(c.c.organization_id, b.c.organization_id), c.c.number


def _iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC).isoformat().replace("+00:00", "Z")


class SqlScanArchive:
    """The database copy of every scan event and flag (filled by the worker, or at once in
    the embedded default), read by the dashboards, exports and flag reviews."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine
        self.dialect = engine.dialect.name
        # The flag queue's plan per scope, until when (monotonic seconds): see `_plan`.
        self._plans: dict[Owner, tuple[str, float]] = {}

    def _insert(self, table: sa.Table) -> Any:
        return mysql.insert(table) if self.dialect in ("mysql", "mariadb") else sqlite.insert(table)

    def write_events(self, events: Sequence[EventLike]) -> int:
        """Insert events, skipping event ids already stored (at-least-once delivery) and
        events of shoppers who erased their history after the event."""
        # One copy of each event: a batch may carry an entry twice (re-delivered).
        events = list({e.event_id: e for e in events}.values())
        if not events:
            return 0
        erased = self._erased({e.client for e in events if e.client})
        if erased:
            events = [e for e in events if not (e.client in erased and _naive(e.at) <= erased[e.client])]
            if not events:
                return 0
        rows = [
            {
                "event_id": e.event_id,
                "code": e.code,
                "at": _naive(e.at),
                "channel": e.channel,
                "verdict": e.verdict,
                "client_hash": e.client,
                "ip_hash": e.ip_hash,
                "lat": e.lat,
                "lng": e.lng,
                "city": e.city,
                "province": e.province,
            }
            for e in events
        ]
        with self.engine.begin() as conn:
            # Only the events this statement stored are counted (registry.aggregates).
            inserted = set(aggregates.insert_new(conn, t.scan_events, rows, "event_id"))
            aggregates.count_events(conn, [e for e in events if e.event_id in inserted])
        return len(inserted)

    def store_events(self, events: Sequence[EventLike]) -> None:
        """`write_events` as an event sink (the in-process scan store's)."""
        self.write_events(events)

    def _erased(self, clients: set[str]) -> dict[str, datetime]:
        if not clients:
            return {}
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(t.erasures).where(t.erasures.c.client_hash.in_(sorted(clients)))
            ).all()
        return {r.client_hash: r.erased_at for r in rows}

    # -- a shopper's own history ------------------------------------------------------------

    def history(self, client_hash: str, limit: int = 100) -> list[PastCheck]:
        """A shopper's own checks, newest first."""
        e = t.scan_events
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(e.c.code, e.c.at, e.c.channel, e.c.verdict, e.c.city)
                .where(e.c.client_hash == client_hash)
                .order_by(e.c.at.desc())
                .limit(limit)
            ).all()
        return [PastCheck(r.code, r.at.replace(tzinfo=UTC), r.channel, r.verdict, r.city) for r in rows]

    def erase(self, client_hash: str) -> int:
        """Delete a shopper's events and remember the erasure (late stream entries are dropped)."""
        now = datetime.now(UTC).replace(tzinfo=None)
        with self.engine.begin() as conn:
            deleted = conn.execute(
                t.scan_events.delete().where(t.scan_events.c.client_hash == client_hash)
            ).rowcount
            conn.execute(
                t.reports.update().where(t.reports.c.client_hash == client_hash).values(client_hash=None)
            )
            updated = conn.execute(
                t.erasures.update().where(t.erasures.c.client_hash == client_hash).values(erased_at=now)
            ).rowcount
            if not updated:
                conn.execute(t.erasures.insert().values(client_hash=client_hash, erased_at=now))
        return int(deleted or 0)

    def add_report(
        self,
        code: str,
        client_hash: str | None,
        text: str | None,
        shop: str | None,
        photo: bytes | None,
        photo_type: str | None,
        city: str | None,
        province: str | None,
    ) -> int:
        with self.engine.begin() as conn:
            return int(
                conn.execute(
                    t.reports.insert().values(
                        code=code,
                        client_hash=client_hash,
                        text=text,
                        shop=shop,
                        photo=photo,
                        photo_type=photo_type,
                        city=city,
                        province=province,
                        created_at=datetime.now(UTC).replace(tzinfo=None),
                    )
                ).inserted_primary_key[0]  # type: ignore[index]
            )

    def _owner(self, conn: sa.Connection, code: str) -> aggregates.Owner:
        """Who the code belongs to when a flag is raised: recorded on the flag (certificate,
        body, organization) and counted for in the aggregates; who may read and review a
        flag is its code's owner now (`_owned_flags`)."""
        return aggregates.owners_of(conn, [code]).get(code, aggregates.NO_OWNER)

    @staticmethod
    def _owner_columns(owner: aggregates.Owner) -> dict[str, int | None]:
        return {
            "certificate_id": owner.certificate_id or None,
            "body_id": owner.body_id,
            "organization_id": owner.organization_id,
        }

    def upsert_flag(self, code: str, flag: FlagLike) -> None:
        """Write a flag (new, or raised again), and queue the webhook alerts it owes.

        The same flag can be written at once by two processes (an import writes its flags
        itself and the worker writes them again from the stream): the row is read FOR
        UPDATE, so the second writer sees the first one's severity and owes no second
        alert; two first inserts collide on (code, rule) and the loser tries again."""
        for attempt in range(3):
            try:
                self._upsert_flag(code, flag)
                return
            except (sa.exc.IntegrityError, sa.exc.OperationalError):
                if attempt == 2:
                    raise

    def _upsert_flag(self, code: str, flag: FlagLike) -> None:
        f = t.flags
        now = datetime.now(UTC).replace(tzinfo=None)
        with self.engine.begin() as conn:
            existing = conn.execute(
                sa.select(f.c.id, f.c.status, f.c.severity)
                .where(f.c.code == code, f.c.rule == flag.rule)
                .with_for_update()
            ).first()
            values = {
                "severity": flag.severity,
                "raised_at": _naive(flag.raised_at),
                "updated_at": now,
                "evidence": json.dumps(flag.evidence, ensure_ascii=False),
            }
            owner: aggregates.Owner | None
            if existing is None:
                owner = self._owner(conn, code)
                status, old_severity = "open", None
                flag_id = conn.execute(
                    f.insert().values(
                        code=code, rule=flag.rule, status=status, **self._owner_columns(owner), **values
                    )
                ).inserted_primary_key[0]  # type: ignore[index]
                aggregates.count_flag_opened(conn, owner, flag.rule, flag.raised_at)
            else:
                if SEVERITY_RANK.get(flag.severity, 0) < SEVERITY_RANK.get(existing.severity, 0):
                    # A flag only moves up (domain.scans): an older, lower entry delivered
                    # again (the streams are at-least-once) must not lower the row, or its
                    # next rise would alert the webhooks a second time.
                    return
                # An escalation reopens a dismissed flag; a confirmed one stays confirmed.
                status = "confirmed" if existing.status == "confirmed" else "open"
                old_severity, flag_id = existing.severity, existing.id
                conn.execute(f.update().where(f.c.id == existing.id).values(status=status, **values))
                # The owner now, only when the flag rose (when an alert may be owed).
                owner = self._owner(conn, code) if existing.severity != flag.severity else None
            # The webhooks' alerts commit with the flag, or not at all (the outbox).
            enqueue_alerts(
                conn,
                flag_id=int(flag_id),
                code=code,
                rule=flag.rule,
                old_severity=old_severity,
                severity=flag.severity,
                status=status,
                raised_at=flag.raised_at,
                evidence=flag.evidence,
                owner=owner,
            )

    def add_evidence(self, code: str, report: dict[str, Any]) -> int:
        """Attach a shopper's report to the code's flags (a `shopper_report` flag if none)."""
        f = t.flags
        now = datetime.now(UTC).replace(tzinfo=None)
        with self.engine.begin() as conn:
            existing = conn.execute(
                sa.select(f.c.id, f.c.evidence).where(f.c.code == code, f.c.rule == "shopper_report")
            ).first()
            if existing is None:
                owner = self._owner(conn, code)
                evidence = {"reports": [report]}
                flag_id = conn.execute(
                    f.insert().values(
                        code=code,
                        rule="shopper_report",
                        severity="warn",
                        status="open",
                        raised_at=now,
                        updated_at=now,
                        evidence=json.dumps(evidence, ensure_ascii=False),
                        **self._owner_columns(owner),
                    )
                ).inserted_primary_key[0]  # type: ignore[index]
                aggregates.count_flag_opened(conn, owner, "shopper_report", now)
                enqueue_alerts(
                    conn,
                    flag_id=int(flag_id),
                    code=code,
                    rule="shopper_report",
                    old_severity=None,
                    severity="warn",
                    status="open",
                    raised_at=now,
                    evidence=evidence,
                    owner=owner,
                )
                return int(flag_id)
            evidence = json.loads(existing.evidence or "{}")
            evidence.setdefault("reports", []).append(report)
            evidence["reports"] = evidence["reports"][-50:]
            conn.execute(
                f.update()
                .where(f.c.id == existing.id)
                .values(evidence=json.dumps(evidence, ensure_ascii=False), updated_at=now, status="open")
            )
            return int(existing.id)

    # -- the brand-protection view --------------------------------------------------------

    def get_flag(self, flag_id: int) -> tuple[dict[str, Any], Owner] | None:
        """One flag as the list shows it, with its code's owner now (None: no such flag)."""
        f = t.flags
        body, org, cert = _current_owner()
        product_name = sa.func.coalesce(t.certificate_products.c.name, t.batches.c.product)
        with self.engine.connect() as conn:
            r = conn.execute(
                sa.select(
                    f,
                    cert.label("certificate"),
                    product_name.label("product"),
                    body.label("owner_body"),
                    org.label("owner_org"),
                )
                .select_from(_owned_flags())
                .where(f.c.id == flag_id)
            ).first()
        if r is None:
            return None
        return _flag_item(r), Owner(r.owner_body, r.owner_org)

    def list_flags(
        self,
        owned_by: Owner | None,
        *,
        rule: str | None = None,
        severity: str | None = None,
        status: str | None = None,
        certificate: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        product: str | None = None,
        province: str | None = None,
        cursor: str | None = None,
        limit: int = 100,
        plan: str | None = None,
    ) -> dict[str, Any]:
        """One page of the flags `owned_by` holds now (every flag for None), newest first.

        Two plans give the same rows (tests/integration/test_flag_queue_plans.py compares
        them); `plan` ("walk", "owner") is for that test, otherwise `_plan` chooses:
        - "walk": flags newest first along ix_flags_raised_at (a rule's flags of one status
          along ix_flags_rule_status_raised_at), each joined to its code's owner now, until
          a page has passed the filters. Its cost is the rows walked, about the page over
          the scope's share of the flags (and of the filters no index serves): a page for
          everything, or for a body holding many of the flags, is a few hundred rows; for
          one organization (1.8 % of the flags) thousands, tens of thousands filtered.
        - "owner": from the scope's certificates (label groups -> codes, by
          ix_organic_codes_group_id) and batches (BQ tokens) to those codes' flags
          (uq_flags_code_rule), sorted; then the same join and filters as the walk, so a
          flag is listed by its code's owner now either way (the candidates are a superset).
          Its cost is the scope's codes, whatever the filters: 2,500 codes for that
          organization, 50 k for a body of 100 certificates.
        """
        f = t.flags
        filters = FlagFilters(rule, severity, status, certificate, since, until, product, province)
        after = _decode_cursor(cursor) if cursor else None
        _body, _org, cert = _current_owner()
        product_name = sa.func.coalesce(t.certificate_products.c.name, t.batches.c.product)
        columns = (f, cert.label("certificate"), product_name.label("product"))
        with self.engine.connect() as conn:
            query = self._flags_query(conn, owned_by, columns, filters, after, plan=plan, joined=True)
            rows = conn.execute(query.limit(limit + 1)).all()
        more = len(rows) > limit
        rows = rows[:limit]
        items = [_flag_item(r) for r in rows]
        next_cursor = _encode_cursor(rows[-1].raised_at, rows[-1].id) if more and rows else None
        return {"items": items, "next": next_cursor}

    def export_flags(
        self, owned_by: Owner | None, filters: FlagFilters, limit: int, page: int = EXPORT_PAGE
    ) -> Iterator[tuple[Any, ...]]:
        """At most `limit` flags `owned_by` holds now, the list's rows in the list's order,
        as plain tuples of domain.scans.FLAG_FILE_COLUMNS (times as the list writes them,
        2026-12-01T02:30:00Z; the evidence as its stored JSON text), for a file of the list.

        Read `page` flags per query (one query's rows are read whole, not held open on the
        server while a slow download drains them), only the columns a file has, with no
        join to the codes' owners when nothing asks for one (everything's flags, no
        certificate or product filter), and the times written by MariaDB: the pure-Python
        driver's parsing is most of an export's CPU, a time it parses into a datetime
        3 µs of it (two per flag). The first page is read before this returns, so a
        failing database fails the request, not a download already under way.
        """
        f = t.flags
        in_sql = self.dialect in ("mysql", "mariadb")
        columns = tuple(
            sa.func.date_format(f.c[name], "%Y-%m-%dT%H:%i:%sZ") if in_sql and name in _TIMES else f.c[name]
            for name in FLAG_FILE_COLUMNS
        )
        joined = owned_by is not None or bool(filters.certificate or filters.product)

        def read(after: tuple[datetime, int] | None, size: int) -> list[tuple[Any, ...]]:
            with self.engine.connect() as conn:
                query = self._flags_query(conn, owned_by, columns, filters, after, joined=joined)
                found = conn.execute(query.limit(size)).all()
            if in_sql:
                return [tuple(r) for r in found]
            # SQLite (the embedded demo) hands back datetimes: a few flags, written here.
            return [tuple(_iso(v) if i in _TIME_AT else v for i, v in enumerate(r)) for r in found]

        first = read(None, min(page, limit))

        def rows() -> Iterator[tuple[Any, ...]]:
            batch, sent = first, 0
            while batch:
                yield from batch
                sent += len(batch)
                if len(batch) < page or sent >= limit:
                    return
                last = batch[-1]
                raised = datetime.fromisoformat(last[_RAISED_AT].removesuffix("Z"))
                batch = read((raised, last[_ID]), min(page, limit - sent))

        return rows()

    def _flags_query(
        self,
        conn: sa.Connection,
        owned_by: Owner | None,
        columns: Sequence[Any],
        filters: FlagFilters,
        after: tuple[datetime, int] | None,
        *,
        plan: str | None = None,
        joined: bool,
    ) -> sa.Select[Any]:
        """`columns` of the flags `owned_by` holds now that pass `filters`, after `after`,
        newest first (see list_flags for the two plans). `joined`: False only when nothing
        reads the codes' owners (no scope, no certificate or product; the caller's columns
        are the flag's own), so the flags are read alone."""
        f = t.flags
        # One set of conditions for both plans' flag reads.
        conditions: dict[str, Any] = {
            "rule": filters.rule,
            "severity": filters.severity,
            "status": filters.status,
            "since": filters.since,
            "until": filters.until,
            "after": after,
        }
        own = _flag_filters(f, **conditions)
        chosen = plan or self._plan(conn, owned_by)
        # MariaDB's planner sorts the whole joined table for a first page (no cursor) rather
        # than walk this index and stop at the page: 70 ms at 200 k flags, not 1. A rule and
        # a status (the queue's usual filters: a rule's open flags) walk only their own
        # flags, newest first, by their own index: the export of everything's open velocity
        # flags (8.6 k of 100 k, 18 pages) read 100 k rows and waited 0.9-2.1 s on MariaDB,
        # then 0.2-0.3 s.
        index = "ix_flags_rule_status_raised_at" if filters.rule and filters.status else "ix_flags_raised_at"
        if chosen == "owner" and owned_by is not None:
            candidates = _owned_flag_ids(owned_by, **conditions)
            query = sa.select(*columns).select_from(
                _owned_flags(candidates.join(f, f.c.id == candidates.c.id))
            )
        else:
            query = (
                sa.select(*columns)
                .select_from(_owned_flags() if joined else f)
                .with_hint(f, f"FORCE INDEX ({index})", "mysql")
                .with_hint(f, f"FORCE INDEX ({index})", "mariadb")
            )
        query = query.where(*own).order_by(f.c.raised_at.desc(), f.c.id.desc())
        body, org, cert = _current_owner()
        product_name = sa.func.coalesce(t.certificate_products.c.name, t.batches.c.product)
        # The flags of codes the owner holds now (every flag for None).
        if owned_by is not None and owned_by.body_id is not None:
            query = query.where(body == owned_by.body_id)
        elif owned_by is not None:
            query = query.where(org == owned_by.organization_id)
        if filters.certificate:
            query = query.where(cert == filters.certificate)
        if filters.product:
            query = query.where(product_name == filters.product)
        if filters.province:
            # A flag is in a province when its code was scanned there (ix_scan_events_code_at).
            e = t.scan_events
            query = query.where(sa.exists().where(e.c.code == f.c.code, e.c.province == filters.province))
        return query

    def _plan(self, conn: sa.Connection, owned_by: Owner | None) -> str:
        """ "owner" for a scope holding at most OWNER_FIRST_CODES codes, else "walk".

        Measured at 100 k flags, 1 M codes (bench/dashboard_bench.py, a loaded machine):
        the owner-first plan costs 2-5 µs per code the scope holds (15-35 ms for an
        organization's 2,500, 90-260 ms for a body's 50 k); the walk, the scope's share of
        the flags (the organization's 1.8 %: 35-90 ms unfiltered, 40 ms for open velocity
        flags, 110-280 ms before ix_flags_rule_status_raised_at; the body's 6 %: 10-40
        ms). Past the bound the owner-first plan costs more than a walk does for a scope
        that large. Counting stops at the bound (an index-only read of
        ix_organic_codes_group_id, 5 ms at most) and is kept a minute per scope: an export
        reads a page per call, and a stale count only picks the slower plan, never other
        rows. SQLite (the embedded demo) walks: no volume, no LPAD.
        """
        if owned_by is None or self.dialect not in ("mysql", "mariadb"):
            return "walk"
        now = time.monotonic()
        known = self._plans.get(owned_by)
        if known is not None and known[1] > now:
            return known[0]
        c, g, oc, b, q = t.certificates, t.label_groups, t.organic_codes, t.batches, t.bq_codes
        if owned_by.body_id is not None:
            mine = c.c.body_id == owned_by.body_id
        else:
            mine = c.c.organization_id == owned_by.organization_id
        organic = (
            sa.select(sa.literal(1))
            .select_from(c.join(g, g.c.certificate_id == c.c.id).join(oc, oc.c.group_id == g.c.id))
            .where(mine)
        )
        codes: sa.Select[Any] | sa.CompoundSelect = organic
        if owned_by.body_id is None:
            codes = organic.union_all(
                sa.select(sa.literal(1))
                .select_from(b.join(q, q.c.batch_id == b.c.id))
                .where(b.c.organization_id == owned_by.organization_id)
            )
        held = conn.execute(
            sa.select(sa.func.count()).select_from(codes.limit(OWNER_FIRST_CODES + 1).subquery())
        ).scalar_one()
        chosen = "owner" if held <= OWNER_FIRST_CODES else "walk"
        self._plans[owned_by] = (chosen, now + PLAN_SECONDS)
        return chosen

    def update_flag(
        self, flag_id: int, status: str, note: str | None, allowed: Callable[[Owner], bool]
    ) -> tuple[dict[str, Any], dict[str, Any], Owner]:
        """Review a flag; one whose current owner `allowed` (the service's policy) refuses is
        not found. Returns the flag after, its status and note before, and its owner now
        (for the answer and the audit log)."""
        f = t.flags
        with self.engine.begin() as conn:
            body, org, _cert = _current_owner()
            row = conn.execute(
                sa.select(f, body.label("owner_body"), org.label("owner_org"))
                .select_from(_owned_flags())
                .where(f.c.id == flag_id)
            ).first()
            if row is None or not allowed(Owner(row.owner_body, row.owner_org)):
                raise NotFound(f"no flag {flag_id}", code="flag_not_found")
            conn.execute(
                f.update()
                .where(f.c.id == flag_id)
                .values(status=status, note=note, updated_at=datetime.now(UTC).replace(tzinfo=None))
            )
        after = {
            "id": flag_id,
            "code": row.code,
            "rule": row.rule,
            "severity": row.severity,
            "status": status,
            "note": note,
        }
        return after, {"status": row.status, "note": row.note}, Owner(row.owner_body, row.owner_org)

    # -- retention ------------------------------------------------------------------------

    def roll_up(self, before: date) -> int:
        """Fold raw events older than `before` into daily per-code counts, then delete them,
        so hashed personal data is kept only as long as the rules need it."""
        e, r = t.scan_events, t.scan_rollups
        cutoff = datetime.combine(before, datetime.min.time())
        day = sa.func.date(e.c.at)
        summary = (
            sa.select(
                day.label("day"),
                e.c.code,
                sa.func.count().label("scans"),
                sa.func.count(sa.distinct(e.c.client_hash)).label("scanners"),
                sa.func.count(sa.distinct(e.c.city)).label("cities"),
            )
            .where(e.c.at < cutoff)
            .group_by(day, e.c.code)
        )
        with self.engine.begin() as conn:
            rows = [dict(row._mapping) for row in conn.execute(summary)]
            for row in rows:
                if isinstance(row["day"], str):
                    row["day"] = date.fromisoformat(row["day"])
            if rows:
                stmt = self._insert(r)
                if self.dialect in ("mysql", "mariadb"):
                    stmt = stmt.on_duplicate_key_update(
                        scans=r.c.scans + stmt.inserted.scans,
                        scanners=sa.func.greatest(r.c.scanners, stmt.inserted.scanners),
                        cities=sa.func.greatest(r.c.cities, stmt.inserted.cities),
                    )
                else:
                    stmt = stmt.on_conflict_do_update(
                        index_elements=["day", "code"],
                        set_={
                            "scans": r.c.scans + stmt.excluded.scans,
                            "scanners": sa.func.max(r.c.scanners, stmt.excluded.scanners),
                            "cities": sa.func.max(r.c.cities, stmt.excluded.cities),
                        },
                    )
                conn.execute(stmt, rows)
            return int(conn.execute(e.delete().where(e.c.at < cutoff)).rowcount or 0)

    def iter_events(self, batch: int = 5000) -> Iterator[dict[str, Any]]:
        """Every stored event as a mapping, oldest first (the embedded default rebuilds its
        in-process state from these after a restart)."""
        e = t.scan_events
        with self.engine.connect() as conn:
            for row in conn.execute(sa.select(e).order_by(e.c.at, e.c.event_id)).yield_per(batch):
                event = dict(row._mapping)
                event["at"] = event["at"].replace(tzinfo=UTC)
                event["client"] = event.pop("client_hash")
                yield event

    def flag_states(self) -> list[tuple[str, str, str, int, str]]:
        f = t.flags
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(f.c.code, f.c.rule, f.c.severity, f.c.raised_at, f.c.status)).all()
        return [
            (r.code, r.rule, r.severity, int(r.raised_at.replace(tzinfo=UTC).timestamp() * 1000), r.status)
            for r in rows
        ]

    def count_events(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(t.scan_events)).scalar_one())


def _flag_item(r: Any) -> dict[str, Any]:
    """A flag row (with its code's certificate and product) as the list and a flag's page show it."""
    return {
        "id": r.id,
        "code": r.code,
        "rule": r.rule,
        "severity": r.severity,
        "status": r.status,
        "raised_at": _iso(r.raised_at),
        "updated_at": _iso(r.updated_at),
        "note": r.note,
        "certificate": r.certificate,
        "product": r.product,
        "evidence": json.loads(r.evidence) if r.evidence else {},
    }


def _encode_cursor(raised: datetime, flag_id: int) -> str:
    return base64.urlsafe_b64encode(f"{raised.isoformat()}|{flag_id}".encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[datetime, int]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        raised, flag_id = raw.split("|")
        return datetime.fromisoformat(raised), int(flag_id)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadInput("cursor is not one this API returned", code="invalid_cursor") from exc
