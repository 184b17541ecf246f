"""The SQL registry: reads for the verify path, idempotent writes for the admin API.

Reads return domain value types; writes take rows already validated by the service
layer (plain mappings with canonical keys) and are upserts, so the same input twice
leaves the same state.
"""

from __future__ import annotations

import contextlib
import json
import operator
import os
import re
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.dialects import mysql, sqlite

from domain.access import Owner
from domain.bulk import BulkResult, Scope
from domain.certificates import CertificateKind, CertificateStatus, check_status_change
from domain.codes import CodeKind, organic_code_from_key, organic_key
from domain.errors import Conflict, NotFound, Unavailable
from domain.grain import GrainBalance, kg
from domain.issuing import CONSUMING
from domain.ports import ProjectedRow
from domain.records import (
    BatchGroup,
    BatchState,
    CertificateState,
    CodeRecord,
    LabelGroup,
    OrderState,
)
from registry import schema as t
from registry.grain import (
    batch_marks,
    grain_balance,
    inspection_of,
    link_purchases,
    lock_organization,
    purchases_of,
)


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None, microsecond=0)


def _naive(value: datetime | None) -> datetime | None:
    """A time as the naive UTC the DATETIME columns hold."""
    if value is None or value.tzinfo is None:
        return value
    return value.astimezone(UTC).replace(tzinfo=None)


def _deadlock(exc: BaseException | None) -> bool:
    """Whether InnoDB rolled the transaction back as a deadlock (error 1213), here or in the
    errors that led here: the rollback to a savepoint the deadlock already erased fails
    with its own error (1305) and carries the deadlock as its context."""
    while exc is not None:
        orig = getattr(exc, "orig", None)
        if orig is not None and getattr(orig, "args", (None,))[:1] == (1213,):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def order_needs(conn: sa.Connection, order_id: int) -> dict[int, int]:
    """Grams an issuance order consumes, per certificate product (quantity x weight)."""
    ln = t.order_lines
    rows = conn.execute(
        sa.select(ln.c.product_id, sa.func.sum(ln.c.quantity * ln.c.weight_g))
        .where(ln.c.order_id == order_id)
        .group_by(ln.c.product_id)
    ).all()
    return {int(pid): int(g) for pid, g in rows}


def return_quantity(conn: sa.Connection, order_id: int) -> None:
    """Give an order's consumed quantity back to its certificate products (rejection, void),
    in product-id order like the consumption."""
    p = t.certificate_products
    for pid, g in sorted(order_needs(conn, order_id).items()):
        conn.execute(p.update().where(p.c.id == pid).values(used_g=p.c.used_g - g))


def _aware(value: datetime | None) -> datetime | None:
    return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


# What may need escaping in a load file's field (a tab, a newline, a backslash, a quote, and
# a CR or NUL, which LOAD DATA reads as they are but the fast path leaves to `_escaped`).
_SPECIAL = '\t\n\r\\"\x00'
_ESCAPE = re.compile(r'[\t\n\\"]')  # what csv.writer (QUOTE_NONE, escapechar "\\") escaped
_NULL = "\\N"  # LOAD DATA's NULL


def _escaped(value: str | None) -> str:
    # LOAD DATA's own escaping: "\<char>" is <char> taken as it is; \N is NULL (None, "").
    return _ESCAPE.sub(lambda m: "\\" + m.group(), value) if value else _NULL


def code_rows_tsv(rows: Sequence[tuple[int, int, date | None, str | None]]) -> str:
    """Organic rows (key, group, issued on, identity) as the tab-separated lines `_load_codes`
    loads into the columns themselves: NULL written \\N (None, and an empty identity), so
    LOAD DATA sets no variables and evaluates no NULLIF a row (~0.3 s of MariaDB's CPU a
    million rows). Formatted directly (1.1 -> 0.45 s of a writer's CPU a million rows, where
    csv.writer wrote them); an identity that needs escaping is escaped field by field."""
    days = {d: _NULL if d is None else str(d) for d in {row[2] for row in rows}}
    identities = "".join([row[3] for row in rows if row[3]])
    if any(c in identities for c in _SPECIAL):  # str's own search: ~20x the regex's speed
        return "".join([f"{k}\t{g}\t{days[d]}\t{_escaped(i)}\n" for k, g, d, i in rows])
    if len(days) == 1 and len(groups := {row[1] for row in rows}) == 1:
        # An import chunk is mostly one label group and day: their columns formatted once.
        middle = f"\t{groups.pop()}\t{days.popitem()[1]}\t"
        return "".join([f"{row[0]}{middle}{row[3] or _NULL}\n" for row in rows])
    return "".join([f"{k}\t{g}\t{days[d]}\t{i or _NULL}\n" for k, g, d, i in rows])


class SqlRegistry:
    """Registry over one SQLAlchemy engine (MariaDB/MySQL in production, SQLite embedded)."""

    def __init__(self, engine: sa.Engine, lookup_engine: sa.Engine | None = None) -> None:
        self.engine = engine
        # Code lookups (the cold verify path) use a lean pool: autocommit, no ping, no
        # rollback on return: one round trip per lookup instead of three.
        self.lookup_engine = lookup_engine or engine
        self.dialect = engine.dialect.name

    # -- low level -------------------------------------------------------------------------

    def _insert(self, table: sa.Table) -> Any:
        if self.dialect in ("mysql", "mariadb"):
            return mysql.insert(table)
        return sqlite.insert(table)

    def _upsert(self, table: sa.Table, keys: Sequence[str], update: Sequence[str]) -> Any:
        stmt = self._insert(table)
        if self.dialect in ("mysql", "mariadb"):
            return stmt.on_duplicate_key_update({c: stmt.inserted[c] for c in update})
        return stmt.on_conflict_do_update(
            index_elements=list(keys), set_={c: stmt.excluded[c] for c in update}
        )

    @contextlib.contextmanager
    def _read(self) -> Iterator[sa.Connection]:
        """A connection for reads; any connection-level failure becomes Unavailable (503)."""
        try:
            with self.engine.connect() as conn:
                yield conn
        except (sa.exc.OperationalError, sa.exc.InterfaceError, sa.exc.TimeoutError) as exc:
            raise Unavailable("the registry database is unreachable", code="database_unavailable") from exc

    # -- verify path reads -----------------------------------------------------------------

    # The hottest read of a cold cache, written once as plain SQL on a pooled DBAPI
    # connection: SQLAlchemy's per-execution work would cost more than the query itself.
    _BQ_LOOKUP = "SELECT batch_id, role FROM bq_codes WHERE token = {p}"
    _ORGANIC_LOOKUP = "SELECT group_id, issued_on, identity_code FROM organic_codes WHERE code = {p}"

    def _lookup(self, sql: str, value: object) -> tuple[Any, ...] | None:
        """One row by key on the lean pool; a connection found dead is retried once."""
        param = "?" if self.dialect == "sqlite" else "%s"
        for attempt in (1, 2):
            try:
                conn = self.lookup_engine.raw_connection()
            except Exception as exc:  # the pool hands out the driver's own connect errors
                raise Unavailable(
                    "the registry database is unreachable", code="database_unavailable"
                ) from exc
            try:
                cur = conn.cursor()
                cur.execute(sql.format(p=param), (value,))
                row = cur.fetchone()
                cur.close()
                return tuple(row) if row is not None else None
            except Exception as exc:
                conn.invalidate(exc)  # never hand a broken connection back to the pool
                if attempt == 1 and self.lookup_engine.dialect.is_disconnect(cast(Any, exc), None, None):
                    continue
                raise Unavailable(
                    "the registry database is unreachable", code="database_unavailable"
                ) from exc
            finally:
                conn.close()
        raise AssertionError("unreachable")

    def find_code(self, code: str, kind: CodeKind) -> CodeRecord | None:
        if kind is CodeKind.BQ:
            bq = self._lookup(self._BQ_LOOKUP, code)
            return None if bq is None else CodeRecord(code, kind, bq[0], None, None, bq[1])
        row = self._lookup(self._ORGANIC_LOOKUP, organic_key(code))
        if row is None:
            return None
        issued = row[1]
        if isinstance(issued, str):  # SQLite hands dates back as text on a raw connection
            issued = date.fromisoformat(issued)
        return CodeRecord(code, kind, row[0], issued, row[2])

    def label_group(self, group_id: int) -> LabelGroup | None:
        g, p, c, o = t.label_groups, t.certificate_products, t.certificates, t.orders
        query = (
            sa.select(
                g.c.id,
                c.c.number,
                p.c.name,
                p.c.description,
                g.c.package,
                g.c.label_spec,
                o.c.number.label("order_number"),
                p.c.id.label("product_id"),
                p.c.certified_tonnes,
                p.c.sales_regions,
            )
            .select_from(
                g.join(p, p.c.id == g.c.product_id)
                .join(c, c.c.id == g.c.certificate_id)
                .outerjoin(o, o.c.id == g.c.order_id)
            )
            .where(g.c.id == group_id)
        )
        ln, u = t.order_lines, t.label_uses
        with self._read() as conn:
            row = conn.execute(query).first()
            if row is None:
                return None
            # Issue 17: the group's order-line segments and use records (both small: a few
            # lines, one record per batch taken into use), for the not_in_use rule.
            segments = conn.execute(
                sa.select(ln.c.identity_start, ln.c.identity_end).where(
                    ln.c.group_id == group_id, ln.c.identity_start.is_not(None)
                )
            ).all()
            uses = (
                conn.execute(
                    sa.select(u.c.first_identity, u.c.last_identity, u.c.used_on)
                    .select_from(u.join(ln, ln.c.id == u.c.line_id))
                    .where(ln.c.group_id == group_id)
                ).all()
                if segments
                else []
            )
        return LabelGroup(
            row.id,
            row.number,
            row.name,
            row.description,
            row.package or None,
            row.label_spec or None,
            row.order_number,
            row.product_id,
            float(row.certified_tonnes) if row.certified_tonnes is not None else None,
            row.sales_regions or None,
            tuple(sorted((int(a), int(b)) for a, b in segments)),
            tuple(sorted((int(a), int(b), d.toordinal()) for a, b, d in uses)),
        )

    def batch_group(self, batch_id: int) -> BatchGroup | None:
        b = t.batches
        with self._read() as conn:
            row = conn.execute(sa.select(b).where(b.c.id == batch_id)).first()
            if row is None:
                return None
            # The traceability chain (issue 17): the purchases its grain came from and its
            # inspection report, beside what the company wrote (plot, seed, inputs). A
            # report on file is the inspection; the company's own words are not.
            purchases = purchases_of(conn, batch_id)
            report = inspection_of(conn, batch_id)
        trace = json.loads(row.trace) if row.trace else {}
        if purchases:
            trace["purchases"] = [
                {
                    "purchased_on": p["purchased_on"].isoformat(),
                    "supplier": p["supplier"],
                    "quantity_kg": kg(p["quantity_g"]),
                }
                for p in purchases
            ]
        if report is not None:
            trace["inspection"] = {
                "report_number": report["report_number"],
                "laboratory": report["laboratory"],
                "result": report["result"],
                "inspected_on": report["inspected_on"].isoformat(),
            }
        return BatchGroup(
            row.id,
            row.number,
            row.producer,
            row.product,
            float(row.net_content_kg) if row.net_content_kg is not None else None,
            trace,
        )

    def certificate(self, number: str) -> CertificateState | None:
        c, b = t.certificates, t.bodies
        query = (
            sa.select(c, b.c.code.label("body_code"), b.c.name.label("body_name"))
            .select_from(c.join(b, b.c.id == c.c.body_id))
            .where(c.c.number == number)
        )
        with self._read() as conn:
            row = conn.execute(query).first()
        if row is None:
            return None
        return CertificateState(
            number=row.number,
            holder=row.holder,
            producer=row.producer,
            kind=CertificateKind(row.kind),
            category=row.category,
            valid_from=row.valid_from,
            valid_until=row.valid_until,
            status=CertificateStatus(row.status),
            status_since=row.status_since,
            body_code=row.body_code,
            body_name=row.body_name,
        )

    def order(self, number: str) -> OrderState | None:
        with self._read() as conn:
            row = conn.execute(
                sa.select(t.orders.c.number, t.orders.c.voided_at).where(t.orders.c.number == number)
            ).first()
        return None if row is None else OrderState(row.number, _aware(row.voided_at))

    def batch_state(self, number: str) -> BatchState | None:
        with self._read() as conn:
            row = conn.execute(
                sa.select(t.batches.c.number, t.batches.c.activated_at).where(t.batches.c.number == number)
            ).first()
        return None if row is None else BatchState(row.number, _aware(row.activated_at))

    def body_codes(self) -> frozenset[str]:
        with self._read() as conn:
            rows = conn.execute(sa.select(t.bodies.c.code, t.bodies.c.legacy_code)).all()
        codes: set[str] = set()
        for row in rows:
            codes.add(row.code)
            if row.legacy_code:
                codes.add(row.legacy_code)
        return frozenset(codes)

    def iter_codes(self, batch: int = 50_000) -> Iterator[str]:
        """Every issued code (organic and BQ), streamed in key order for filter rebuilds."""
        last: int | None = None
        oc = t.organic_codes.c.code
        with self._read() as conn:
            while True:
                query = sa.select(oc).order_by(oc).limit(batch)
                if last is not None:
                    query = query.where(oc > last)
                keys = conn.execute(query).scalars().all()
                if not keys:
                    break
                for key in keys:
                    yield organic_code_from_key(key)
                last = keys[-1]
            yield from conn.execute(sa.select(t.bq_codes.c.token)).scalars()

    def iter_records(self, batch: int = 50_000) -> Iterator[ProjectedRow]:
        """Every issued code's record (code, kind, group or batch, issued on, identity code,
        BQ role), streamed in key order: the code projection's rebuild."""
        oc, q = t.organic_codes, t.bq_codes
        last: int | None = None
        with self._read() as conn:
            while True:
                query = sa.select(oc.c.code, oc.c.group_id, oc.c.issued_on, oc.c.identity_code)
                query = query.order_by(oc.c.code).limit(batch)
                if last is not None:
                    query = query.where(oc.c.code > last)
                rows = conn.execute(query).all()
                if not rows:
                    break
                for key, gid, issued, identity in rows:
                    yield organic_code_from_key(int(key)), CodeKind.ORGANIC, int(gid), issued, identity, None
                last = int(rows[-1][0])
            for token, bid, role in conn.execute(sa.select(q.c.token, q.c.batch_id, q.c.role)):
                yield token, CodeKind.BQ, int(bid), None, None, role

    def records_of(self, codes: Sequence[str]) -> tuple[list[ProjectedRow], list[tuple[str, CodeKind]]]:
        """The saved records of these codes as the projection writes them, and the codes
        the registry does not hold (a write that was refused or rolled back)."""
        oc, q = t.organic_codes, t.bq_codes
        organic = {organic_key(c): c for c in codes if len(c) in (17, 18) and c.isdigit()}
        tokens = [c for c in codes if not (len(c) in (17, 18) and c.isdigit())]
        found: list[ProjectedRow] = []
        seen: set[str] = set()
        keys = list(organic)
        with self._read() as conn:
            for start in range(0, len(keys), 5000):
                for key, gid, issued, identity in conn.execute(
                    sa.select(oc.c.code, oc.c.group_id, oc.c.issued_on, oc.c.identity_code).where(
                        oc.c.code.in_(keys[start : start + 5000])
                    )
                ):
                    code = organic[int(key)]
                    found.append((code, CodeKind.ORGANIC, int(gid), issued, identity, None))
                    seen.add(code)
            for start in range(0, len(tokens), 5000):
                for token, bid, role in conn.execute(
                    sa.select(q.c.token, q.c.batch_id, q.c.role).where(
                        q.c.token.in_(tokens[start : start + 5000])
                    )
                ):
                    found.append((token, CodeKind.BQ, int(bid), None, None, role))
                    seen.add(token)
        missing = [
            (c, CodeKind.ORGANIC if len(c) in (17, 18) and c.isdigit() else CodeKind.BQ)
            for c in codes
            if c not in seen
        ]
        return found, missing

    def has_codes(self) -> bool:
        with self._read() as conn:
            organic = conn.execute(sa.select(t.organic_codes.c.code).limit(1)).first()
            bq = conn.execute(sa.select(t.bq_codes.c.token).limit(1)).first()
        return organic is not None or bq is not None

    # -- admin: bodies, certificates -------------------------------------------------------

    def upsert_bodies(self, rows: Sequence[tuple[int, Mapping[str, Any]]]) -> BulkResult:
        result = BulkResult()
        stmt = self._upsert(t.bodies, ["code"], ["legacy_code", "name", "approval_number", "updated_at"])
        with self.engine.begin() as conn:
            for i, row in rows:
                try:
                    with conn.begin_nested():
                        conn.execute(stmt, {**row, "updated_at": _now()})
                    result.accepted += 1
                except sa.exc.IntegrityError:
                    result.reject(i, row["code"], "conflict", "legacy_code already belongs to another body")
        return result

    def body_ids(self) -> dict[str, int]:
        with self._read() as conn:
            rows = conn.execute(sa.select(t.bodies.c.code, t.bodies.c.legacy_code, t.bodies.c.id)).all()
        ids: dict[str, int] = {}
        for row in rows:
            ids[row.code] = row.id
            if row.legacy_code:
                ids[row.legacy_code] = row.id
        return ids

    def _organization_id(self, conn: sa.Connection, name: str) -> int:
        found = conn.execute(sa.select(t.organizations.c.id).where(t.organizations.c.name == name)).scalar()
        if found is not None:
            return int(found)
        conn.execute(self._upsert(t.organizations, ["name"], ["name"]), {"name": name})
        return int(
            conn.execute(sa.select(t.organizations.c.id).where(t.organizations.c.name == name)).scalar_one()
        )

    def upsert_certificates(
        self,
        rows: Sequence[tuple[int, Mapping[str, Any]]],
        allowed: Callable[[Owner], bool],
        changed_by: str,
    ) -> BulkResult:
        """Create or update certificates and their products; `allowed` (the service's policy)
        is asked of the body each row would certify under and, inside the row's transaction,
        of the certificate's current owner."""
        result = BulkResult()
        bodies = self.body_ids()
        c = t.certificates
        with self.engine.begin() as conn:
            for i, row in rows:
                body_id = bodies.get(row["body_code"])
                if body_id is None:
                    result.reject(i, row["number"], "unknown_body", f"no body with code {row['body_code']}")
                    continue
                if not allowed(Owner(body_id=body_id)):
                    result.reject(i, row["number"], "forbidden", "the certificate belongs to another body")
                    continue
                with conn.begin_nested():
                    existing = conn.execute(
                        sa.select(c.c.id, c.c.body_id, c.c.organization_id, c.c.status).where(
                            c.c.number == row["number"]
                        )
                    ).first()
                    current = Owner(existing.body_id, existing.organization_id) if existing else None
                    if current is not None and not allowed(current):
                        result.reject(
                            i, row["number"], "forbidden", "the certificate belongs to another body"
                        )
                        continue
                    org_id = self._organization_id(conn, row["holder"])
                    values = {
                        "number": row["number"],
                        "body_id": body_id,
                        "organization_id": org_id,
                        "holder": row["holder"],
                        "producer": row.get("producer"),
                        "kind": row["kind"],
                        "category": row.get("category"),
                        "valid_from": row["valid_from"],
                        "valid_until": row["valid_until"],
                        "status": row["status"],
                        "updated_at": _now(),
                    }
                    if existing is None:
                        values["status_since"] = None if row["status"] == "valid" else row["valid_from"]
                        cert_id = conn.execute(c.insert().values(**values)).inserted_primary_key[0]  # type: ignore[index]
                        self._history(conn, cert_id, row["status"], "created", None, changed_by)
                    else:
                        cert_id = existing.id
                        if existing.status != row["status"]:
                            try:
                                check_status_change(
                                    CertificateStatus(existing.status), CertificateStatus(row["status"])
                                )
                            except Exception as exc:
                                result.reject(i, row["number"], "status_final", str(exc))
                                continue
                            values["status_since"] = date.today()
                            self._history(conn, cert_id, row["status"], "import", None, changed_by)
                        conn.execute(c.update().where(c.c.id == cert_id).values(**values))
                    for product in row.get("products") or []:
                        conn.execute(
                            self._upsert(
                                t.certificate_products,
                                ["certificate_id", "name"],
                                ["description", "certified_tonnes", "sales_regions"],
                            ),
                            {
                                "certificate_id": cert_id,
                                "name": product["name"],
                                "description": product.get("description"),
                                "certified_tonnes": product.get("certified_tonnes"),
                                "sales_regions": ",".join(product.get("sales_regions") or []) or None,
                            },
                        )
                result.accepted += 1
        return result

    def _history(
        self,
        conn: sa.Connection,
        cert_id: int,
        status: str,
        reason: str | None,
        effective_on: date | None,
        changed_by: str,
    ) -> None:
        conn.execute(
            t.certificate_status_history.insert().values(
                certificate_id=cert_id,
                status=status,
                reason=reason,
                effective_on=effective_on,
                changed_at=_now(),
                changed_by=changed_by,
            )
        )

    def change_certificate_status(
        self,
        number: str,
        status: CertificateStatus,
        reason: str | None,
        effective_on: date | None,
        allowed: Callable[[Owner], bool],
        changed_by: str,
    ) -> CertificateState:
        """Change a certificate's status; one `allowed` (the service's policy) refuses, asked
        of its owner on the locked row, is not found."""
        c = t.certificates
        with self.engine.begin() as conn:
            row = conn.execute(
                sa.select(c.c.id, c.c.body_id, c.c.organization_id, c.c.status)
                .where(c.c.number == number)
                .with_for_update()
            ).first()
            if row is None or not allowed(Owner(row.body_id, row.organization_id)):
                raise NotFound(f"no certificate {number}", code="certificate_not_found")
            current = CertificateStatus(row.status)
            check_status_change(current, status)
            since = effective_on or date.today()
            conn.execute(
                c.update()
                .where(c.c.id == row.id)
                .values(
                    status=status.value,
                    status_since=None if status is CertificateStatus.VALID else since,
                    status_reason=reason,
                    updated_at=_now(),
                )
            )
            self._history(conn, row.id, status.value, reason, since, changed_by)
        state = self.certificate(number)
        assert state is not None
        return state

    def certificate_history(self, number: str) -> list[dict[str, Any]]:
        h, c = t.certificate_status_history, t.certificates
        with self._read() as conn:
            rows = conn.execute(
                sa.select(h.c.status, h.c.reason, h.c.effective_on, h.c.changed_at, h.c.changed_by)
                .select_from(h.join(c, c.c.id == h.c.certificate_id))
                .where(c.c.number == number)
                .order_by(h.c.id)
            ).all()
        return [dict(r._mapping) for r in rows]

    # -- admin: codes ----------------------------------------------------------------------

    def certificate_refs(self) -> dict[str, tuple[int, int, int]]:
        """number -> (certificate id, body id, organization id), for resolving import rows."""
        c = t.certificates
        with self._read() as conn:
            rows = conn.execute(sa.select(c.c.number, c.c.id, c.c.body_id, c.c.organization_id)).all()
        return {r.number: (r.id, r.body_id, r.organization_id) for r in rows}

    def product_ids(self) -> dict[tuple[int, str], int]:
        p = t.certificate_products
        with self._read() as conn:
            rows = conn.execute(sa.select(p.c.certificate_id, p.c.name, p.c.id)).all()
        return {(r.certificate_id, r.name): r.id for r in rows}

    def find_order(self, number: str) -> tuple[int, int] | None:
        """(order id, its certificate id) of an existing order."""
        o = t.orders
        with self._read() as conn:
            row = conn.execute(sa.select(o.c.id, o.c.certificate_id).where(o.c.number == number)).first()
        return None if row is None else (row.id, row.certificate_id)

    def ensure_order(self, conn: sa.Connection, number: str, certificate_id: int) -> tuple[int, int]:
        """(order id, its certificate id), creating the order on first sight."""
        o = t.orders
        row = conn.execute(sa.select(o.c.id, o.c.certificate_id).where(o.c.number == number)).first()
        if row is not None:
            return row.id, row.certificate_id
        conn.execute(
            self._upsert(o, ["number"], ["number"]),
            {"number": number, "certificate_id": certificate_id, "status": "allocated", "created_at": _now()},
        )
        row = conn.execute(sa.select(o.c.id, o.c.certificate_id).where(o.c.number == number)).one()
        return row.id, row.certificate_id

    def ensure_group(
        self,
        conn: sa.Connection,
        certificate_id: int,
        product_id: int,
        order_id: int,
        package: str,
        label_spec: str,
    ) -> int:
        g = t.label_groups
        key = {
            "certificate_id": certificate_id,
            "product_id": product_id,
            "order_id": order_id,
            "package": package,
            "label_spec": label_spec,
        }
        where = sa.and_(*(g.c[k] == v for k, v in key.items()))
        found = conn.execute(sa.select(g.c.id).where(where)).scalar()
        if found is not None:
            return int(found)
        conn.execute(self._upsert(g, list(key), ["package"]), key)
        return int(conn.execute(sa.select(g.c.id).where(where)).scalar_one())

    def body_numbering(self) -> dict[int, tuple[str, str | None]]:
        """body id -> (4-digit code, 3-digit legacy code): the prefixes its codes carry."""
        b = t.bodies
        with self._read() as conn:
            rows = conn.execute(sa.select(b.c.id, b.c.code, b.c.legacy_code)).all()
        return {r.id: (r.code, r.legacy_code) for r in rows}

    def code_owners(self, keys: Sequence[int]) -> dict[int, Owner]:
        """organic key -> the owner (body, organization) of the certificate each existing code is on."""
        oc, g, c = t.organic_codes, t.label_groups, t.certificates
        owners: dict[int, Owner] = {}
        with self._read() as conn:
            for start in range(0, len(keys), 5000):
                rows = conn.execute(
                    sa.select(oc.c.code, c.c.body_id, c.c.organization_id)
                    .select_from(oc.join(g, g.c.id == oc.c.group_id).join(c, c.c.id == g.c.certificate_id))
                    .where(oc.c.code.in_(keys[start : start + 5000]))
                ).all()
                owners.update({int(r.code): Owner(r.body_id, r.organization_id) for r in rows})
        return owners

    def bq_owners(self, tokens: Sequence[str]) -> dict[str, Owner]:
        """BQ token -> the owner of its batch: an organization (None: a batch with no owner)."""
        q, b = t.bq_codes, t.batches
        owners: dict[str, Owner] = {}
        with self._read() as conn:
            for start in range(0, len(tokens), 1000):
                rows = conn.execute(
                    sa.select(q.c.token, b.c.organization_id)
                    .select_from(q.join(b, b.c.id == q.c.batch_id))
                    .where(q.c.token.in_(tokens[start : start + 1000]))
                ).all()
                owners.update({r.token: Owner(organization_id=r.organization_id) for r in rows})
        return owners

    def write_codes(
        self, conn: sa.Connection, rows: Sequence[Mapping[str, Any]], *, body_id: int | None = None
    ) -> list[int]:
        """Upsert organic code rows {code (int key), group_id, issued_on, identity_code}.

        With `body_id` (a body token's import) an existing code is updated only while its
        current label group is a certificate of that body: the service checks ownership per
        chunk beforehand, and this guard holds even if another import moved a code between
        that check and this write. Returns the keys the guard skipped, read back in the same
        transaction: the upsert's row count cannot tell a skipped row from an unchanged one
        (MySQL counts found rows), and the rows it touched stay locked until the commit.
        """
        if not rows:
            return []
        cols = ["issued_on", "identity_code", "group_id"]
        if body_id is None:
            conn.execute(self._upsert(t.organic_codes, ["code"], cols), list(rows))
            return []
        oc = t.organic_codes
        # The body of the code's current group, written out: SQLAlchemy does not correlate a
        # subquery with the row an upsert updates. Both MySQL's ON DUPLICATE KEY and SQLite's
        # ON CONFLICT read `organic_codes.group_id` as the existing row's. The body id is
        # inlined (an int from our own tables): pymysql's executemany sends one multi-row
        # INSERT only when nothing after VALUES is a bound parameter.
        current_body: Any = sa.literal_column(
            "(SELECT c.body_id FROM label_groups g JOIN certificates c ON c.id = g.certificate_id"
            " WHERE g.id = organic_codes.group_id)"
        )
        ours: Any = current_body == sa.literal_column(str(int(body_id)))
        stmt = self._insert(oc)
        if self.dialect in ("mysql", "mariadb"):
            # MySQL applies ON DUPLICATE KEY assignments left to right, each seeing the ones
            # before: group_id goes last so the guard reads the row's current group.
            stmt = stmt.on_duplicate_key_update(
                [(col, sa.case((ours, stmt.inserted[col]), else_=oc.c[col])) for col in cols]
            )
        else:
            stmt = stmt.on_conflict_do_update(
                index_elements=["code"], set_={col: stmt.excluded[col] for col in cols}, where=ours
            )
        conn.execute(stmt, list(rows))
        g, c = t.label_groups, t.certificates
        foreign = conn.execute(
            sa.select(oc.c.code)
            .select_from(oc.join(g, g.c.id == oc.c.group_id).join(c, c.c.id == g.c.certificate_id))
            .where(oc.c.code.in_([row["code"] for row in rows]), c.c.body_id != body_id)
        ).scalars()
        return [int(key) for key in foreign]

    def load_codes_file(self, conn: sa.Connection, path: str) -> int:
        """MySQL only: LOAD DATA LOCAL INFILE of a tab-separated file (code, group, issued, identity).

        REPLACE keeps the load an idempotent upsert; NOTES.md measured 173-279 k rows/s
        this way against 73-79 k/s for executemany. REPLACE overwrites whoever owned a code,
        so the service uses it for the all scope only (the CLI); body tokens go through
        `write_codes` with its owner guard. Every row has passed the body-prefix check.
        """
        sql = (
            "LOAD DATA LOCAL INFILE :path REPLACE INTO TABLE organic_codes "
            "CHARACTER SET utf8mb4 FIELDS TERMINATED BY '\\t' LINES TERMINATED BY '\\n' "
            "(code, group_id, issued_on, identity_code)"
        )
        return int(conn.execute(sa.text(sql), {"path": path}).rowcount or 0)

    # -- admin: transactions the import runs (domain.ports.AdminRegistry) ------------------

    @property
    def bulk_file_supported(self) -> bool:
        """`save_codes(bulk_file=True)` loads a file (LOAD DATA): MySQL/MariaDB only."""
        return self.dialect in ("mysql", "mariadb")

    def label_group_for(
        self,
        certificate_id: int,
        product_id: int,
        package: str,
        label_spec: str,
        order: str | None = None,
    ) -> tuple[int | None, tuple[int, int] | None]:
        """In one transaction, the label group of (certificate, product, order, package,
        label) and its order, each made on first sight: (group id, (order id, the order's
        certificate id)). The group is None when the order is another certificate's."""
        with self.engine.begin() as conn:
            order_ref = self.ensure_order(conn, order, certificate_id) if order else None
            if order_ref is not None and order_ref[1] != certificate_id:
                return None, order_ref
            order_id = order_ref[0] if order_ref else 0
            group_id = self.ensure_group(conn, certificate_id, product_id, order_id, package, label_spec)
            return group_id, order_ref

    def save_codes(
        self,
        rows: list[tuple[int, int, date | None, str | None]],
        *,
        body_id: int | None = None,
        bulk_file: bool = False,
    ) -> list[int]:
        """Upsert one chunk of organic codes (organic key, group id, issued on, identity code)
        in one transaction: through a LOAD DATA file when `bulk_file` (MySQL, the all scope:
        see `load_codes_file`), else `write_codes` with its owner guard for `body_id`.
        Returns the keys the guard skipped (another body's codes)."""
        if not rows:
            return []
        if bulk_file:
            self._load_codes(rows)
            return []
        with self.engine.begin() as conn:
            return self.write_codes(
                conn,
                [{"code": k, "group_id": g, "issued_on": d, "identity_code": i} for k, g, d, i in rows],
                body_id=body_id,
            )

    def _load_codes(self, rows: list[tuple[int, int, date | None, str | None]]) -> None:
        rows.sort(key=operator.itemgetter(0))  # InnoDB loads sorted keys ~1.6x faster (NOTES.md)
        fd, path = tempfile.mkstemp(suffix=".tsv")
        try:
            with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
                fh.write(code_rows_tsv(rows))
            with self.engine.begin() as conn:
                self.load_codes_file(conn, path)
        finally:
            os.unlink(path)

    def order_owner(self, number: str) -> Owner | None:
        """The owner of an order: its certificate's body and organization."""
        o, c = t.orders, t.certificates
        with self._read() as conn:
            row = conn.execute(
                sa.select(c.c.body_id, c.c.organization_id)
                .select_from(o.join(c, c.c.id == o.c.certificate_id))
                .where(o.c.number == number)
            ).first()
        return None if row is None else Owner(row.body_id, row.organization_id)

    def void_order(self, number: str, reason: str | None, changed_by: str | None = None) -> OrderState:
        o = t.orders
        with self.engine.begin() as conn:
            row = conn.execute(
                sa.select(o.c.id, o.c.status, o.c.voided_at).where(o.c.number == number).with_for_update()
            ).first()
            # Voiding twice keeps the first time: the call is idempotent.
            if row is not None and row.voided_at is None:
                if row.status in CONSUMING:
                    return_quantity(conn, row.id)  # an issued order gives its tonnes back
                conn.execute(
                    o.update()
                    .where(o.c.id == row.id)
                    .values(status="voided", voided_at=_now(), void_reason=reason)
                )
                conn.execute(
                    t.order_history.insert().values(
                        order_id=row.id,
                        status="voided",
                        reason=reason,
                        changed_at=_now(),
                        changed_by=changed_by,
                    )
                )
        state = self.order(number)
        if state is None:
            raise NotFound(f"no order {number}", code="order_not_found")
        return state

    # -- admin: BQ batches -----------------------------------------------------------------

    def upsert_batch(
        self,
        batch: Mapping[str, Any],
        codes: Sequence[tuple[int, str, str]],
        organization_id: int | None,
        check: Callable[[Owner, bool], None] | None = None,
        cap: Callable[[GrainBalance, int, int], None] | None = None,
        purchases: Sequence[str] = (),
    ) -> tuple[int, BulkResult]:
        """`_upsert_batch`; a deadlock is the 409 of a batch created meanwhile.

        Two calls creating the same new number on MariaDB both take the gap lock of
        `SELECT ... FOR UPDATE` on the missing row, then both insert and wait for each
        other: InnoDB rolls one back with error 1213, an OperationalError, which the
        IntegrityError handler inside never sees. That call saved nothing, and its answer is
        the same as losing the race to the unique key.
        """
        try:
            return self._upsert_batch(batch, codes, organization_id, check, cap, purchases)
        except sa.exc.OperationalError as exc:
            if not _deadlock(exc):
                raise
            raise Conflict(
                f"batch {batch['number']} was written by another call meanwhile; nothing was saved, retry",
                code="batch_conflict",
            ) from exc

    def _upsert_batch(
        self,
        batch: Mapping[str, Any],
        codes: Sequence[tuple[int, str, str]],
        organization_id: int | None,
        check: Callable[[Owner, bool], None] | None = None,
        cap: Callable[[GrainBalance, int, int], None] | None = None,
        purchases: Sequence[str] = (),
    ) -> tuple[int, BulkResult]:
        """Create or update a batch and link its A/B codes; a token already in another batch is rejected.

        A company's batch (issue 17) is checked against its raw-grain ledger: its row is
        locked first (registry.grain.lock_organization), and once the codes are linked
        `cap` gets the company's balance with this batch in it, the batch's net content
        in grams and its marks; it raises to refuse, and nothing is saved. `purchases`
        names the ledger rows the batch's grain came from (unknown ones: 400).

        An existing batch's owner and whether it is activated go to `check` (the service's
        policy, which raises to refuse) on the row locked for this transaction, so no other
        write changes them in between. An update never takes the owner away:
        `organization_id` None keeps the current one.
        """
        b, q = t.batches, t.bq_codes
        result = BulkResult()
        with self.engine.begin() as conn:
            existing = conn.execute(
                sa.select(b.c.id, b.c.organization_id, b.c.activated_at)
                .where(b.c.number == batch["number"])
                .with_for_update()
            ).first()
            if existing is not None and check is not None:
                check(Owner(organization_id=existing.organization_id), existing.activated_at is not None)
            company = organization_id
            if company is None and existing is not None:
                company = existing.organization_id
            if company:
                lock_organization(conn, int(company))
            values = {
                "number": batch["number"],
                "producer": batch["producer"],
                "product": batch["product"],
                "net_content_kg": batch.get("net_content_kg"),
                "trace": json.dumps(batch.get("trace") or {}, ensure_ascii=False),
            }
            if organization_id is not None or existing is None:
                values["organization_id"] = organization_id
            if existing is None:
                try:
                    with conn.begin_nested():
                        batch_id = conn.execute(
                            b.insert().values(**values, created_at=_now())
                        ).inserted_primary_key[0]  # type: ignore[index]
                except sa.exc.IntegrityError as exc:
                    # Another call created the same number meanwhile: its owner decides.
                    raise Conflict(
                        f"batch {batch['number']} was created meanwhile; retry", code="batch_conflict"
                    ) from exc
            else:
                batch_id = int(existing.id)
                conn.execute(b.update().where(b.c.id == batch_id).values(**values))
            tokens = [tok for _, tok, _ in codes]
            owners = {}
            for start in range(0, len(tokens), 1000):
                chunk = tokens[start : start + 1000]
                owners.update(
                    dict(conn.execute(sa.select(q.c.token, q.c.batch_id).where(q.c.token.in_(chunk))).all())
                )
            fresh = []
            for i, token, role in codes:
                owner = owners.get(token)
                if owner is not None and owner != batch_id:
                    result.reject(
                        i, token, "code_in_other_batch", "this code is already linked to another batch"
                    )
                    continue
                if owner is None:
                    fresh.append({"token": token, "batch_id": batch_id, "role": role})
                    owners[token] = batch_id
                result.accepted += 1
            if fresh:
                conn.execute(q.insert(), fresh)
            missing = link_purchases(conn, int(batch_id), int(company) if company else None, purchases)
            if missing:
                raise Conflict(
                    "purchases not in the company's raw-grain ledger: " + ", ".join(missing[:5]),
                    code="unknown_purchase",
                )
            if company and cap is not None:
                net = batch.get("net_content_kg")
                net_g = int(Decimal(str(net)) * 1000) if net is not None else 0
                cap(grain_balance(conn, int(company)), net_g, batch_marks(conn, int(batch_id)))
        return int(batch_id), result

    def batch_owner(self, number: str) -> Owner | None:
        """The owner of a batch: its organization (None: a batch with no owner)."""
        b = t.batches
        with self._read() as conn:
            row = conn.execute(sa.select(b.c.organization_id).where(b.c.number == number)).first()
        return None if row is None else Owner(organization_id=row.organization_id)

    def activate_batch(
        self,
        number: str,
        check: Callable[[dict[str, Any] | None, GrainBalance | None], None] | None = None,
    ) -> BatchState:
        """Activate a batch. `check` (the service's policy, raising to refuse) gets the
        batch's inspection report (None: none uploaded) and its company's balance (None: a
        batch of no company), read with the company's row and the batch's locked."""
        b = t.batches
        with self.engine.begin() as conn:
            if check is not None:
                row = conn.execute(
                    sa.select(b.c.id, b.c.organization_id).where(b.c.number == number).with_for_update()
                ).first()
                if row is None:
                    raise NotFound(f"no batch {number}", code="batch_not_found")
                if row.organization_id is not None:
                    lock_organization(conn, int(row.organization_id))
                balance = grain_balance(conn, int(row.organization_id)) if row.organization_id else None
                check(inspection_of(conn, int(row.id)), balance)
            updated = conn.execute(
                b.update().where(b.c.number == number, b.c.activated_at.is_(None)).values(activated_at=_now())
            ).rowcount
            if not updated and conn.execute(sa.select(b.c.id).where(b.c.number == number)).first() is None:
                raise NotFound(f"no batch {number}", code="batch_not_found")
        state = self.batch_state(number)
        assert state is not None
        return state

    # -- tokens ----------------------------------------------------------------------------

    def create_token(
        self,
        token_hash: str,
        name: str,
        scope_kind: str,
        scope_id: int | None,
        expires_at: datetime | None = None,
    ) -> int:
        with self.engine.begin() as conn:
            return int(
                conn.execute(
                    t.api_tokens.insert().values(
                        token_hash=token_hash,
                        name=name,
                        scope_kind=scope_kind,
                        scope_id=scope_id,
                        created_at=_now(),
                        expires_at=_naive(expires_at),
                    )
                ).inserted_primary_key[0]  # type: ignore[index]
            )

    def find_token(self, token_hash: str) -> tuple[Scope, datetime | None] | None:
        """The scope of a live token (not revoked, not expired) and when it was last used."""
        a = t.api_tokens
        with self._read() as conn:
            row = conn.execute(
                sa.select(a).where(
                    a.c.token_hash == token_hash,
                    a.c.revoked_at.is_(None),
                    sa.or_(a.c.expires_at.is_(None), a.c.expires_at > _now()),
                )
            ).first()
        if row is None:
            return None
        return Scope(row.scope_kind, row.scope_id, row.id, row.name), _aware(row.last_used_at)

    def touch_token(self, token_id: int, at: datetime, not_since: datetime) -> None:
        """Record a use; a no-op when another worker recorded one after `not_since`."""
        a = t.api_tokens
        with self.engine.begin() as conn:
            conn.execute(
                a.update()
                .where(
                    a.c.id == token_id,
                    sa.or_(a.c.last_used_at.is_(None), a.c.last_used_at < _naive(not_since)),
                )
                .values(last_used_at=_naive(at))
            )

    def _tokens_of(self, owned_by: Owner | None) -> Any:
        """The tokens scoped to the owner's body or organization (all of them for None)."""
        a = t.api_tokens
        if owned_by is None:
            return sa.true()
        if owned_by.body_id is not None:
            return sa.and_(a.c.scope_kind == "body", a.c.scope_id == owned_by.body_id)
        return sa.and_(a.c.scope_kind == "organization", a.c.scope_id == owned_by.organization_id)

    def list_tokens(self, owned_by: Owner | None) -> list[dict[str, Any]]:
        a = t.api_tokens
        with self._read() as conn:
            rows = conn.execute(
                sa.select(
                    a.c.id,
                    a.c.name,
                    a.c.scope_kind,
                    a.c.scope_id,
                    a.c.created_at,
                    a.c.expires_at,
                    a.c.last_used_at,
                    a.c.revoked_at,
                )
                .where(self._tokens_of(owned_by))
                .order_by(a.c.id)
            ).all()
        return [
            {
                "id": r.id,
                "name": r.name,
                "scope": r.scope_kind,
                "scope_id": r.scope_id,
                **{
                    k: _aware(getattr(r, k))
                    for k in ("created_at", "expires_at", "last_used_at", "revoked_at")
                },
            }
            for r in rows
        ]

    def token_ids_named(self, name: str) -> list[int]:
        a = t.api_tokens
        with self._read() as conn:
            return [int(i) for i in conn.execute(sa.select(a.c.id).where(a.c.name == name)).scalars()]

    def revoke_token(self, token_id: int, owned_by: Owner | None) -> dict[str, Any]:
        """Revoke a token of the owner's body or organization (any, for None); revoking twice
        keeps the first time."""
        a = t.api_tokens
        with self.engine.begin() as conn:
            found = conn.execute(
                sa.select(a.c.id).where(a.c.id == token_id, self._tokens_of(owned_by))
            ).first()
            if found is None:
                raise NotFound(f"no token {token_id}", code="token_not_found")
            conn.execute(
                a.update().where(a.c.id == token_id, a.c.revoked_at.is_(None)).values(revoked_at=_now())
            )
        return next(i for i in self.list_tokens(owned_by) if i["id"] == token_id)

    def scope_target_id(self, scope_kind: str, name: str) -> int:
        """The id a new token is scoped to: a body by its 4-digit code, an organization by name."""
        with self._read() as conn:
            if scope_kind == "body":
                found = conn.execute(sa.select(t.bodies.c.id).where(t.bodies.c.code == name)).scalar()
            else:
                found = conn.execute(
                    sa.select(t.organizations.c.id).where(t.organizations.c.name == name)
                ).scalar()
        if found is None:
            raise NotFound(f"no {scope_kind} {name!r}", code=f"{scope_kind}_not_found")
        return int(found)

    # -- generations (embedded default) ---------------------------------------------------

    def generations(self) -> dict[str, int]:
        with self._read() as conn:
            return {r.name: int(r.value) for r in conn.execute(sa.select(t.generations)).all()}

    def bump_generation(self, name: str) -> None:
        g = t.generations
        with self.engine.begin() as conn:
            if not conn.execute(g.update().where(g.c.name == name).values(value=g.c.value + 1)).rowcount:
                conn.execute(self._upsert(g, ["name"], ["value"]), {"name": name, "value": 1})

    def ping(self) -> bool:
        try:
            with self.engine.connect() as conn:
                conn.execute(sa.text("SELECT 1"))
            return True
        except sa.exc.SQLAlchemyError:
            return False


__all__ = ["SqlRegistry"]
