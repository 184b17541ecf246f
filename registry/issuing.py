"""The SQL side of label issuance (issue 17): product specs and their photos, label orders
with their lines, history and attachments, quantity consumption, identity-code segments,
generated codes and printing losses.

Like registry.store it decides no access: it reports owners (domain.access.Owner) and
filters lists by the owner the service names; where a row must be checked inside its own
transaction (locked, so no other write moves it in between) it hands the row's owner and
status to the service's `check`, which raises to refuse.

Quantity control is one conditional UPDATE per certificate product, in product-id order
inside the submitting transaction: `used_g + need <= certified_tonnes * 10^6`. InnoDB
re-reads the row under its lock, so concurrent submissions queue on it and none can
overdraw; an order whose update matches no row is rolled back to its savepoint and
rejected automatically, with the shortfall read under the same lock.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import date
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from domain.access import Owner
from domain.errors import Conflict, NotFound
from domain.issuing import (
    CONSUMING,
    IDENTITY_FIRST,
    IDENTITY_LAST,
    OrderStatus,
    Shortfall,
    identity_text,
    loss_order_number,
    order_number,
)
from registry import schema as t
from registry.store import SqlRegistry, _now, order_needs, return_quantity

Check = Callable[[Owner, str], None]


class _Rejected(Exception):
    """Internal: roll the consumption back to its savepoint."""


class _Locked:
    """A locked order row, with its certificate's body."""

    def __init__(self, row: Any, body_id: int) -> None:
        self._row = row
        self.body_id = body_id

    def __getattr__(self, name: str) -> Any:
        return getattr(self._row, name)


class _Taken(Exception):
    """Keys of a generated chunk that are other labels' codes: the chunk rolls back."""

    def __init__(self, keys: list[int]) -> None:
        super().__init__(f"{len(keys)} generated codes are taken")
        self.keys = keys


class SqlIssuing:
    """Issuance tables over the registry's engine; label groups and orders are the
    registry's own (`SqlRegistry.ensure_group`), so allocated codes verify as any other."""

    def __init__(self, registry: SqlRegistry) -> None:
        self.registry = registry
        self.engine = registry.engine
        self.mysql = registry.dialect in ("mysql", "mariadb")

    # -- certificate products ---------------------------------------------------------------

    def certificate_products(self, number: str) -> list[dict[str, Any]] | None:
        """A certificate's products with certified and used grams, and its owner; None when
        there is no such certificate."""
        c, p = t.certificates, t.certificate_products
        with self.registry._read() as conn:
            cert = conn.execute(
                sa.select(c.c.id, c.c.body_id, c.c.organization_id).where(c.c.number == number)
            ).first()
            if cert is None:
                return None
            rows = conn.execute(
                sa.select(p.c.id, p.c.name, p.c.description, p.c.certified_tonnes, p.c.used_g)
                .where(p.c.certificate_id == cert.id)
                .order_by(p.c.id)
            ).all()
        return [
            {
                "owner": Owner(cert.body_id, cert.organization_id),
                "id": r.id,
                "name": r.name,
                "description": r.description,
                "certified_g": None
                if r.certified_tonnes is None
                else int(Decimal(str(r.certified_tonnes)) * 1_000_000),
                "used_g": int(r.used_g),
            }
            for r in rows
        ]

    def scope_certificate_products(self, owned_by: Owner | None, most: int = 500) -> list[dict[str, Any]]:
        """The certificates `owned_by` holds or certifies (all for None), by number, each
        with its products' certified and used grams: the quantities page and the choices of
        a spec's form."""
        c, p = t.certificates, t.certificate_products
        query = (
            sa.select(
                c.c.id,
                c.c.number,
                c.c.holder,
                c.c.kind,
                c.c.status,
                c.c.valid_until,
                c.c.body_id,
                c.c.organization_id,
            )
            .order_by(c.c.number)
            .limit(most)
        )
        if owned_by is not None:
            query = query.where(
                c.c.body_id == owned_by.body_id
                if owned_by.body_id is not None
                else c.c.organization_id == owned_by.organization_id
            )
        with self.registry._read() as conn:
            certs = conn.execute(query).all()
            ids = [r.id for r in certs]
            products: dict[int, list[Any]] = {}
            for start in range(0, len(ids), 500):
                for r in conn.execute(
                    sa.select(
                        p.c.id,
                        p.c.certificate_id,
                        p.c.name,
                        p.c.description,
                        p.c.certified_tonnes,
                        p.c.used_g,
                    )
                    .where(p.c.certificate_id.in_(ids[start : start + 500]))
                    .order_by(p.c.id)
                ):
                    products.setdefault(r.certificate_id, []).append(r)
        return [
            {
                "number": r.number,
                "holder": r.holder,
                "kind": r.kind,
                "status": r.status,
                "valid_until": r.valid_until,
                "owner": Owner(r.body_id, r.organization_id),
                "products": [
                    {
                        "id": x.id,
                        "name": x.name,
                        "description": x.description,
                        "certified_g": None
                        if x.certified_tonnes is None
                        else int(Decimal(str(x.certified_tonnes)) * 1_000_000),
                        "used_g": int(x.used_g),
                    }
                    for x in products.get(r.id, [])
                ],
            }
            for r in certs
        ]

    def product_refs(self, keys: Sequence[tuple[str, str]]) -> dict[tuple[str, str], tuple[int, Owner]]:
        """(certificate number, product name) -> (product id, the certificate's owner)."""
        c, p = t.certificates, t.certificate_products
        numbers = sorted({k[0] for k in keys})
        found: dict[tuple[str, str], tuple[int, Owner]] = {}
        with self.registry._read() as conn:
            for start in range(0, len(numbers), 500):
                rows = conn.execute(
                    sa.select(c.c.number, p.c.name, p.c.id, c.c.body_id, c.c.organization_id)
                    .select_from(p.join(c, c.c.id == p.c.certificate_id))
                    .where(c.c.number.in_(numbers[start : start + 500]))
                ).all()
                for r in rows:
                    found[(r.number, r.name)] = (r.id, Owner(r.body_id, r.organization_id))
        return found

    # -- product specs ------------------------------------------------------------------------

    def save_specs(self, rows: Sequence[Mapping[str, Any]]) -> list[int]:
        """Upsert specs keyed by (product, trade name, package, label spec): the same row
        twice is one spec. Returns their ids in order."""
        s = t.product_specs
        ids = []
        stmt = self.registry._upsert(
            s, ["product_id", "trade_name", "package_spec", "label_spec"], ["weight_kg", "updated_at"]
        )
        with self.engine.begin() as conn:
            for row in rows:
                values = {**row, "updated_at": _now()}
                conn.execute(stmt, values)
                ids.append(
                    int(
                        conn.execute(
                            sa.select(s.c.id).where(
                                s.c.product_id == row["product_id"],
                                s.c.trade_name == row["trade_name"],
                                s.c.package_spec == row["package_spec"],
                                s.c.label_spec == row["label_spec"],
                            )
                        ).scalar_one()
                    )
                )
        return ids

    def _spec_query(self) -> Any:
        s, p, c, ph = t.product_specs, t.certificate_products, t.certificates, t.spec_photos
        photos = sa.select(sa.func.count()).where(ph.c.spec_id == s.c.id).scalar_subquery()
        return sa.select(
            s.c.id,
            s.c.trade_name,
            s.c.package_spec,
            s.c.weight_kg,
            s.c.label_spec,
            s.c.updated_at,
            s.c.organization_id,
            p.c.id.label("product_id"),
            p.c.name.label("product"),
            p.c.description,
            c.c.number.label("certificate"),
            c.c.id.label("certificate_id"),
            c.c.body_id,
            photos.label("photos"),
        ).select_from(s.join(p, p.c.id == s.c.product_id).join(c, c.c.id == p.c.certificate_id))

    @staticmethod
    def _spec(row: Any) -> dict[str, Any]:
        return {
            "id": row.id,
            "certificate": row.certificate,
            "product": row.product,
            "description": row.description,
            "trade_name": row.trade_name,
            "package_spec": row.package_spec,
            "weight_kg": str(Decimal(str(row.weight_kg)).quantize(Decimal("0.001"))),
            "label_spec": row.label_spec,
            "photos": int(row.photos),
            "owner": Owner(row.body_id, row.organization_id),
            "product_id": row.product_id,
            "certificate_id": row.certificate_id,
        }

    def list_specs(self, owned_by: Owner | None) -> list[dict[str, Any]]:
        s, c = t.product_specs, t.certificates
        query = self._spec_query().order_by(s.c.id)
        if owned_by is not None:
            query = query.where(
                c.c.body_id == owned_by.body_id
                if owned_by.body_id is not None
                else s.c.organization_id == owned_by.organization_id
            )
        with self.registry._read() as conn:
            return [self._spec(r) for r in conn.execute(query).all()]

    def specs(self, ids: Sequence[int]) -> dict[int, dict[str, Any]]:
        s = t.product_specs
        with self.registry._read() as conn:
            rows = conn.execute(self._spec_query().where(s.c.id.in_(list(ids)))).all()
        return {r.id: self._spec(r) for r in rows}

    def add_photo(self, spec_id: int, content_type: str, sha256: str, data: bytes, most: int) -> int:
        """Store a photo of a spec (the same bytes twice are one photo); at most `most`."""
        ph = t.spec_photos
        with self.engine.begin() as conn:
            conn.execute(
                sa.select(t.product_specs.c.id).where(t.product_specs.c.id == spec_id).with_for_update()
            )
            found = conn.execute(
                sa.select(ph.c.id).where(ph.c.spec_id == spec_id, ph.c.sha256 == sha256)
            ).scalar()
            if found is not None:
                return int(found)
            count = conn.execute(sa.select(sa.func.count()).where(ph.c.spec_id == spec_id)).scalar_one()
            if count >= most:
                raise Conflict(f"a product spec has at most {most} photos", code="too_many_photos")
            return int(
                conn.execute(
                    ph.insert().values(
                        spec_id=spec_id,
                        content_type=content_type,
                        sha256=sha256,
                        data=data,
                        created_at=_now(),
                    )
                ).inserted_primary_key[0]  # type: ignore[index]
            )

    def photo(self, spec_id: int, photo_id: int) -> tuple[str, bytes] | None:
        ph = t.spec_photos
        with self.registry._read() as conn:
            row = conn.execute(
                sa.select(ph.c.content_type, ph.c.data).where(ph.c.id == photo_id, ph.c.spec_id == spec_id)
            ).first()
        return None if row is None else (row.content_type, bytes(row.data))

    def photo_ids(self, spec_ids: Sequence[int]) -> dict[int, list[int]]:
        ph = t.spec_photos
        out: dict[int, list[int]] = {}
        with self.registry._read() as conn:
            for r in conn.execute(
                sa.select(ph.c.spec_id, ph.c.id).where(ph.c.spec_id.in_(list(spec_ids))).order_by(ph.c.id)
            ):
                out.setdefault(r.spec_id, []).append(r.id)
        return out

    # -- orders ---------------------------------------------------------------------------------

    def certificate_ref(self, number: str) -> tuple[int, Owner] | None:
        c = t.certificates
        with self.registry._read() as conn:
            row = conn.execute(
                sa.select(c.c.id, c.c.body_id, c.c.organization_id).where(c.c.number == number)
            ).first()
        return None if row is None else (row.id, Owner(row.body_id, row.organization_id))

    def create_order(
        self,
        day: date,
        certificate_id: int,
        organization_id: int,
        fields: Mapping[str, Any],
        lines: Sequence[Mapping[str, Any]],
        actor: str,
    ) -> str:
        """A new order numbered `YYYYMMDD-NNN` (the day's next serial; a number taken by a
        concurrent call meanwhile is retried with the next one)."""
        o = t.orders
        prefix = f"{day:%Y%m%d}-"
        for _ in range(50):
            with self.engine.connect() as conn:
                taken = (
                    conn.execute(sa.select(o.c.number).where(o.c.number.like(prefix + "%"))).scalars().all()
                )
            serials = [int(n[9:]) for n in taken if len(n) == 12 and n[9:].isdigit()]
            number = order_number(day, max(serials, default=0) + 1)
            try:
                with self.engine.begin() as conn:
                    order_id = conn.execute(
                        o.insert().values(
                            number=number,
                            certificate_id=certificate_id,
                            organization_id=organization_id,
                            status=OrderStatus.NEW.value,
                            created_at=_now(),
                            **fields,
                        )
                    ).inserted_primary_key[0]  # type: ignore[index]
                    self._write_lines(conn, int(order_id), lines)
                    self._history(conn, int(order_id), OrderStatus.NEW.value, None, None, actor)
                return number
            except sa.exc.IntegrityError:
                continue  # another call took the number: the next one
        raise Conflict("could not number the order; retry", code="order_conflict")

    def _write_lines(self, conn: sa.Connection, order_id: int, lines: Sequence[Mapping[str, Any]]) -> None:
        conn.execute(t.order_lines.delete().where(t.order_lines.c.order_id == order_id))
        if lines:
            conn.execute(
                t.order_lines.insert(),
                [{**line, "order_id": order_id, "n": n} for n, line in enumerate(lines, start=1)],
            )

    def _history(
        self,
        conn: sa.Connection,
        order_id: int,
        status: str,
        reason: str | None,
        details: Any,
        actor: str,
    ) -> None:
        conn.execute(
            t.order_history.insert().values(
                order_id=order_id,
                status=status,
                reason=reason,
                details=None if details is None else json.dumps(details, ensure_ascii=False),
                changed_at=_now(),
                changed_by=actor,
            )
        )

    def _locked(self, conn: sa.Connection, number: str, check: Check) -> Any:
        """The order's row, locked for this transaction, after the service's check. Only
        the order's row: locking its certificate too (a joined FOR UPDATE does on MariaDB)
        would queue every submission of a certificate behind the slowest; quantity is kept
        by the conditional UPDATE of each product row instead."""
        o, c = t.orders, t.certificates
        row = conn.execute(sa.select(o).where(o.c.number == number).with_for_update()).first()
        if row is None:
            raise NotFound(f"no order {number}", code="order_not_found")
        cert = conn.execute(
            sa.select(c.c.body_id, c.c.organization_id).where(c.c.id == row.certificate_id)
        ).one()
        check(Owner(cert.body_id, cert.organization_id), row.status)
        return _Locked(row, cert.body_id)

    def update_order(
        self,
        number: str,
        fields: Mapping[str, Any],
        lines: Sequence[Mapping[str, Any]] | None,
        check: Check,
        actor: str,
    ) -> None:
        with self.engine.begin() as conn:
            row = self._locked(conn, number, check)
            if fields:
                conn.execute(t.orders.update().where(t.orders.c.id == row.id).values(**fields))
            if lines is not None:
                self._write_lines(conn, row.id, lines)
            self._history(conn, row.id, row.status, "edited", None, actor)

    def submit(
        self, number: str, check: Check, certificate_usable: Callable[[Any], str | None], actor: str
    ) -> tuple[str, list[Shortfall], str | None]:
        """Submit an order: consume its quantity and approve it automatically, or reject it
        automatically (over quantity, or the certificate not usable). Returns (status,
        shortfalls, reason)."""
        p, c = t.certificate_products, t.certificates
        with self.engine.begin() as conn:
            row = self._locked(conn, number, check)
            needs = order_needs(conn, row.id)
            if not needs:
                raise Conflict(f"order {number} has no lines", code="order_empty")
            cert = conn.execute(sa.select(c).where(c.c.id == row.certificate_id)).one()
            reason = certificate_usable(cert)
            shortfalls: list[Shortfall] = []
            consumed = False
            if reason is None:
                try:
                    with conn.begin_nested():
                        # Product-id order: two orders over the same products lock them in
                        # the same order and never deadlock.
                        for pid in sorted(needs):
                            done = conn.execute(
                                p.update()
                                .where(
                                    p.c.id == pid,
                                    p.c.certified_tonnes.is_not(None),
                                    p.c.used_g + needs[pid] <= p.c.certified_tonnes * 1_000_000,
                                )
                                .values(used_g=p.c.used_g + needs[pid])
                            ).rowcount
                            if not done:
                                raise _Rejected
                        consumed = True
                except _Rejected:
                    # Read under lock: a plain read would see this transaction's snapshot,
                    # older than the commits that used the quantity up.
                    shortfalls = self._shortfalls(conn, needs)
            if consumed:
                status = OrderStatus.AUTO_APPROVED.value
                details = None
            else:
                status = OrderStatus.AUTO_REJECTED.value
                details = [s.as_dict() for s in shortfalls] or None
                reason = reason or "; ".join(s.text() for s in shortfalls) or "over the certified quantity"
            conn.execute(
                t.orders.update().where(t.orders.c.id == row.id).values(status=status, submitted_at=_now())
            )
            self._history(conn, row.id, status, reason, details, actor)
        return status, shortfalls, reason

    def _shortfalls(self, conn: sa.Connection, needs: Mapping[int, int]) -> list[Shortfall]:
        p = t.certificate_products
        rows = conn.execute(
            sa.select(p.c.id, p.c.name, p.c.certified_tonnes, p.c.used_g)
            .where(p.c.id.in_(list(needs)))
            .with_for_update(read=True)
        ).all()
        out = []
        for r in sorted(rows, key=lambda r: r.id):
            certified = (
                None if r.certified_tonnes is None else int(Decimal(str(r.certified_tonnes)) * 1_000_000)
            )
            available = 0 if certified is None else certified - int(r.used_g)
            if needs[r.id] > available:
                out.append(Shortfall(r.name, needs[r.id], available))
        return out

    def review(self, number: str, approve: bool, reason: str | None, check: Check, actor: str) -> str:
        """The body's manual review of an auto-approved order; a rejection gives its
        quantity back and the organization may edit and resubmit."""
        with self.engine.begin() as conn:
            row = self._locked(conn, number, check)
            status = (OrderStatus.MANUALLY_APPROVED if approve else OrderStatus.MANUALLY_REJECTED).value
            if not approve and row.status in CONSUMING:
                return_quantity(conn, row.id)
            conn.execute(t.orders.update().where(t.orders.c.id == row.id).values(status=status))
            self._history(conn, row.id, status, reason, None, actor)
        return status

    # -- allocation ------------------------------------------------------------------------------

    def allocate(self, number: str, codes_from: str, check: Check, actor: str) -> None:
        """Give each line a contiguous identity-code segment after the body's last one (the
        body's row is locked: two allocations of one body queue, and segments never
        overlap) and a label group; the order becomes allocated."""
        ln, b = t.order_lines, t.bodies
        with self.engine.begin() as conn:
            row = self._locked(conn, number, check)
            conn.execute(sa.select(b.c.id).where(b.c.id == row.body_id).with_for_update())
            last = conn.execute(
                sa.select(sa.func.max(ln.c.identity_end)).where(ln.c.body_id == row.body_id)
            ).scalar()
            nxt = max(int(last or 0) + 1, IDENTITY_FIRST)
            lines = conn.execute(
                sa.select(
                    ln.c.id, ln.c.product_id, ln.c.label_spec, ln.c.quantity, t.product_specs.c.package_spec
                )
                .select_from(ln.join(t.product_specs, t.product_specs.c.id == ln.c.spec_id))
                .where(ln.c.order_id == row.id)
                .order_by(ln.c.n)
            ).all()
            for line in lines:
                end = nxt + line.quantity - 1
                if end > IDENTITY_LAST:
                    raise Conflict("the body has no identity codes left", code="identities_exhausted")
                group = self.registry.ensure_group(
                    conn, row.certificate_id, line.product_id, row.id, line.package_spec, line.label_spec
                )
                conn.execute(
                    ln.update()
                    .where(ln.c.id == line.id)
                    .values(
                        group_id=group,
                        body_id=row.body_id,
                        identity_start=nxt,
                        identity_end=end,
                        codes_from=codes_from,
                    )
                )
                nxt = end + 1
            conn.execute(
                t.orders.update()
                .where(t.orders.c.id == row.id)
                .values(status=OrderStatus.ALLOCATED.value, allocated_at=_now())
            )
            self._history(conn, row.id, OrderStatus.ALLOCATED.value, None, {"codes_from": codes_from}, actor)

    def order_lines(self, number: str) -> list[dict[str, Any]]:
        """The lines of an order with what allocation gave them."""
        o, ln = t.orders, t.order_lines
        with self.registry._read() as conn:
            rows = conn.execute(
                sa.select(ln)
                .select_from(ln.join(o, o.c.id == ln.c.order_id))
                .where(o.c.number == number)
                .order_by(ln.c.n)
            ).all()
        return [dict(r._mapping) for r in rows]

    def insert_new_codes(
        self, line_id: int, progress: tuple[int, int], rows: Sequence[tuple[int, int, str]], issued_on: date
    ) -> list[int]:
        """Insert a chunk of generated codes (key, group id, identity) that must be new, and
        move the line's progress from `progress[0]` to `progress[1]`, in one transaction:
        the chunk lands whole with its progress, or not at all. A key already in the
        registry (another label's) rolls the chunk back and is returned: the caller draws
        those identities again and sends the whole chunk again.

        The progress moves first, on condition that it is still where the caller read it:
        two generations of one order at once (a retry beside a slow first try) would
        otherwise both write codes for the same identities. The later one waits on the
        line's row lock, finds it moved and gets a 409 with nothing written. Because a chunk
        never commits without its progress, no identity can get a code from each.

        MariaDB loads a file with `LOAD DATA ... IGNORE` (the import's fast path, several
        times executemany's rate); the rows it reports inserted tell whether any key was
        taken, and only then are the keys read back to find which."""
        start, end = progress
        try:
            return self._insert_chunk(line_id, start, end, rows, issued_on)
        except _Taken as taken:
            return taken.keys

    def _insert_chunk(
        self, line_id: int, start: int, end: int, rows: Sequence[tuple[int, int, str]], issued_on: date
    ) -> list[int]:
        oc, ln = t.organic_codes, t.order_lines
        with self.engine.begin() as conn:
            moved = conn.execute(
                ln.update().where(ln.c.id == line_id, ln.c.codes_written == start).values(codes_written=end)
            ).rowcount
            if moved != 1:
                raise Conflict(
                    "another request is generating this order's codes; ask again when it is done",
                    code="generation_in_progress",
                )
            if self.mysql:
                inserted = self._load_new(conn, rows, issued_on)
            else:
                values = [
                    {"code": k, "group_id": g, "issued_on": issued_on, "identity_code": i} for k, g, i in rows
                ]
                stmt = self.registry._insert(oc).on_conflict_do_nothing(index_elements=["code"])
                inserted = conn.execute(stmt, values).rowcount
            taken: list[int] = []
            if inserted != len(rows):
                mine = {k: (g, i) for k, g, i in rows}
                keys = list(mine)
                for at in range(0, len(keys), 5000):
                    for key, group, identity in conn.execute(
                        sa.select(oc.c.code, oc.c.group_id, oc.c.identity_code).where(
                            oc.c.code.in_(keys[at : at + 5000])
                        )
                    ):
                        if mine[int(key)] != (group, identity):
                            taken.append(int(key))
            if taken:
                raise _Taken(taken)  # the chunk and its progress roll back together
        return []

    def _load_new(self, conn: sa.Connection, rows: Sequence[tuple[int, int, str]], issued_on: date) -> int:
        """LOAD DATA LOCAL INFILE ... IGNORE of new codes (key, group, identity) issued on one
        day; the rows inserted. Sorted by key: InnoDB inserts a sorted chunk ~1.6x faster."""
        day = issued_on.isoformat()  # one day for the chunk: formatted once, not per row
        fd, path = tempfile.mkstemp(suffix=".tsv")
        try:
            with os.fdopen(fd, "w", encoding="ascii", newline="") as fh:
                fh.writelines(f"{k}\t{g}\t{day}\t{i}\n" for k, g, i in sorted(rows))
            sql = (
                "LOAD DATA LOCAL INFILE :path IGNORE INTO TABLE organic_codes "
                "CHARACTER SET ascii FIELDS TERMINATED BY '\\t' LINES TERMINATED BY '\\n' "
                "(code, group_id, issued_on, identity_code)"
            )
            return int(conn.execute(sa.text(sql), {"path": path}).rowcount or 0)
        finally:
            os.unlink(path)

    def existing_codes(self, keys: Sequence[int]) -> dict[int, tuple[int, str | None]]:
        """organic key -> (group id, identity code) of codes already in the registry."""
        oc = t.organic_codes
        out: dict[int, tuple[int, str | None]] = {}
        with self.registry._read() as conn:
            for start in range(0, len(keys), 5000):
                for r in conn.execute(
                    sa.select(oc.c.code, oc.c.group_id, oc.c.identity_code).where(
                        oc.c.code.in_(list(keys[start : start + 5000]))
                    )
                ):
                    out[int(r.code)] = (int(r.group_id), r.identity_code)
        return out

    def codes_of_identities(self, group_ids: Sequence[int], identities: Sequence[str]) -> dict[str, int]:
        """identity -> organic key of the codes in these label groups with these identities."""
        oc = t.organic_codes
        out: dict[str, int] = {}
        with self.registry._read() as conn:
            for start in range(0, len(identities), 5000):
                for r in conn.execute(
                    sa.select(oc.c.identity_code, oc.c.code).where(
                        oc.c.identity_code.in_(list(identities[start : start + 5000])),
                        oc.c.group_id.in_(list(group_ids)),
                    )
                ):
                    out[r.identity_code] = int(r.code)
        return out

    def iter_order_codes(self, group_ids: Sequence[int], first: int, last: int) -> Iterator[tuple[str, int]]:
        """(identity, organic key) of an identity range's codes in these groups, in identity
        order, streamed in pages."""
        oc = t.organic_codes
        cursor = identity_text(first)
        end = identity_text(last)
        with self.registry._read() as conn:
            while True:
                rows = conn.execute(
                    sa.select(oc.c.identity_code, oc.c.code)
                    .where(
                        oc.c.identity_code >= cursor,
                        oc.c.identity_code <= end,
                        oc.c.group_id.in_(list(group_ids)),
                    )
                    .order_by(oc.c.identity_code)
                    .limit(10_000)
                ).all()
                if not rows:
                    return
                for r in rows:
                    yield r.identity_code, int(r.code)
                if len(rows) < 10_000:
                    return
                cursor = rows[-1].identity_code + "\x00"

    def record_losses(self, number: str, identities: Sequence[int], check: Check, actor: str) -> list[int]:
        """Record printing losses of an allocated order: their codes move to the order's loss
        group (a voided order `<number>-L`, so they verify `voided`). Returns the organic keys
        moved."""
        o, ln, oc, pl = t.orders, t.order_lines, t.organic_codes, t.printing_losses
        moved: list[int] = []
        with self.engine.begin() as conn:
            row = self._locked(conn, number, check)
            loss_no = loss_order_number(number)
            loss_id = conn.execute(sa.select(o.c.id).where(o.c.number == loss_no)).scalar()
            now = _now()
            if loss_id is None:
                loss_id = conn.execute(
                    o.insert().values(
                        number=loss_no,
                        certificate_id=row.certificate_id,
                        organization_id=row.organization_id,
                        status=OrderStatus.LOSSES.value,
                        voided_at=now,
                        void_reason="印制损耗 printing loss",
                        created_at=now,
                    )
                ).inserted_primary_key[0]  # type: ignore[index]
            lines = conn.execute(sa.select(ln).where(ln.c.order_id == row.id)).all()
            groups = {}
            for line in lines:
                if line.group_id is None:
                    continue
                g = t.label_groups
                grp = conn.execute(sa.select(g).where(g.c.id == line.group_id)).one()
                groups[line.id] = self.registry.ensure_group(
                    conn, row.certificate_id, grp.product_id, int(loss_id), grp.package, grp.label_spec
                )
            for identity in identities:
                inside = [
                    x
                    for x in lines
                    if x.identity_start is not None and x.identity_start <= identity <= x.identity_end
                ]
                if not inside:
                    continue
                line = inside[0]
                key = conn.execute(
                    sa.select(oc.c.code).where(
                        oc.c.identity_code == identity_text(identity),
                        oc.c.group_id.in_([line.group_id, groups[line.id]]),
                    )
                ).scalar()
                exists = conn.execute(
                    sa.select(pl.c.identity).where(pl.c.order_id == row.id, pl.c.identity == identity)
                ).first()
                if exists is None:
                    conn.execute(pl.insert().values(order_id=row.id, identity=identity, recorded_at=now))
                if key is not None:
                    conn.execute(oc.update().where(oc.c.code == key).values(group_id=groups[line.id]))
                    moved.append(int(key))
            self._history(conn, row.id, row.status, "printing losses", {"identities": len(identities)}, actor)
        return moved

    def losses(self, number: str) -> list[int]:
        o, pl = t.orders, t.printing_losses
        with self.registry._read() as conn:
            return [
                int(i)
                for i in conn.execute(
                    sa.select(pl.c.identity)
                    .select_from(pl.join(o, o.c.id == pl.c.order_id))
                    .where(o.c.number == number)
                    .order_by(pl.c.identity)
                ).scalars()
            ]

    # -- attachments -------------------------------------------------------------------------------

    def add_attachment(
        self, number: str, kind: str, content_type: str, sha256: str, data: bytes, check: Check, most: int
    ) -> int:
        a = t.order_attachments
        with self.engine.begin() as conn:
            row = self._locked(conn, number, check)
            found = conn.execute(
                sa.select(a.c.id).where(a.c.order_id == row.id, a.c.sha256 == sha256)
            ).scalar()
            if found is not None:
                return int(found)
            if conn.execute(sa.select(sa.func.count()).where(a.c.order_id == row.id)).scalar_one() >= most:
                raise Conflict(f"an order has at most {most} attachments", code="too_many_attachments")
            return int(
                conn.execute(
                    a.insert().values(
                        order_id=row.id,
                        kind=kind,
                        content_type=content_type,
                        sha256=sha256,
                        data=data,
                        created_at=_now(),
                    )
                ).inserted_primary_key[0]  # type: ignore[index]
            )

    def attachment(self, number: str, attachment_id: int) -> tuple[str, bytes] | None:
        a, o = t.order_attachments, t.orders
        with self.registry._read() as conn:
            row = conn.execute(
                sa.select(a.c.content_type, a.c.data)
                .select_from(a.join(o, o.c.id == a.c.order_id))
                .where(o.c.number == number, a.c.id == attachment_id)
            ).first()
        return None if row is None else (row.content_type, bytes(row.data))

    # -- reads -------------------------------------------------------------------------------------

    def order(self, number: str) -> dict[str, Any] | None:
        """An order with its owner, certificate, holder, lines, history and attachments."""
        o, c, org, ln, h, a = (
            t.orders,
            t.certificates,
            t.organizations,
            t.order_lines,
            t.order_history,
            t.order_attachments,
        )
        with self.registry._read() as conn:
            row = conn.execute(
                sa.select(
                    o,
                    c.c.number.label("certificate"),
                    c.c.kind,
                    c.c.valid_from,
                    c.c.valid_until,
                    c.c.body_id,
                    c.c.organization_id.label("holder_id"),
                    org.c.name.label("organization"),
                )
                .select_from(
                    o.join(c, c.c.id == o.c.certificate_id).join(org, org.c.id == c.c.organization_id)
                )
                .where(o.c.number == number)
            ).first()
            if row is None:
                return None
            s, p = t.product_specs, t.certificate_products
            lines = conn.execute(
                sa.select(
                    ln,
                    s.c.trade_name,
                    s.c.package_spec,
                    s.c.weight_kg,
                    p.c.name.label("product"),
                    p.c.description,
                    p.c.certified_tonnes,
                )
                .select_from(ln.join(s, s.c.id == ln.c.spec_id).join(p, p.c.id == ln.c.product_id))
                .where(ln.c.order_id == row.id)
                .order_by(ln.c.n)
            ).all()
            history = conn.execute(
                sa.select(h.c.status, h.c.reason, h.c.details, h.c.changed_at, h.c.changed_by)
                .where(h.c.order_id == row.id)
                .order_by(h.c.id)
            ).all()
            attachments = conn.execute(
                sa.select(a.c.id, a.c.kind, a.c.content_type, a.c.created_at)
                .where(a.c.order_id == row.id)
                .order_by(a.c.id)
            ).all()
        return {
            **dict(row._mapping),
            "owner": Owner(row.body_id, row.holder_id),
            "lines": [dict(r._mapping) for r in lines],
            "history": [
                {**dict(r._mapping), "details": json.loads(r.details) if r.details else None} for r in history
            ],
            "attachments": [dict(r._mapping) for r in attachments],
        }

    def list_orders(self, owned_by: Owner | None, status: str | None) -> list[dict[str, Any]]:
        """Orders of the issuance workflow (those with an organization), newest first."""
        o, c, ln, org = t.orders, t.certificates, t.order_lines, t.organizations
        total = (
            sa.select(sa.func.coalesce(sa.func.sum(ln.c.quantity * ln.c.unit_price), 0))
            .where(ln.c.order_id == o.c.id)
            .scalar_subquery()
        )
        query = (
            sa.select(
                o.c.number,
                o.c.status,
                o.c.created_at,
                o.c.submitted_at,
                c.c.number.label("certificate"),
                org.c.name.label("organization"),
                total.label("total"),
            )
            .select_from(o.join(c, c.c.id == o.c.certificate_id).join(org, org.c.id == c.c.organization_id))
            .where(o.c.organization_id.is_not(None), o.c.status != OrderStatus.LOSSES.value)
            .order_by(o.c.id.desc())
            .limit(1000)
        )
        if owned_by is not None:
            query = query.where(
                c.c.body_id == owned_by.body_id
                if owned_by.body_id is not None
                else c.c.organization_id == owned_by.organization_id
            )
        if status:
            query = query.where(o.c.status == status)
        with self.registry._read() as conn:
            return [dict(r._mapping) for r in conn.execute(query).all()]

    def issued_so_far(self, product_ids: Sequence[int]) -> dict[int, int]:
        """Labels allocated so far per certificate product (voided orders not counted)."""
        o, ln = t.orders, t.order_lines
        with self.registry._read() as conn:
            rows = conn.execute(
                sa.select(ln.c.product_id, sa.func.sum(ln.c.quantity))
                .select_from(ln.join(o, o.c.id == ln.c.order_id))
                .where(ln.c.product_id.in_(list(product_ids)), o.c.status == OrderStatus.ALLOCATED.value)
                .group_by(ln.c.product_id)
            ).all()
        return {int(pid): int(n) for pid, n in rows}

    # -- use records (领用) ------------------------------------------------------------------------

    def uses(self, number: str) -> list[dict[str, Any]]:
        u, o, ln = t.label_uses, t.orders, t.order_lines
        with self.registry._read() as conn:
            rows = conn.execute(
                sa.select(u, ln.c.n)
                .select_from(u.join(o, o.c.id == u.c.order_id).join(ln, ln.c.id == u.c.line_id))
                .where(o.c.number == number)
                .order_by(u.c.id)
            ).all()
        return [dict(r._mapping) for r in rows]

    def take_into_use(
        self,
        number: str,
        n: int,
        span: tuple[int, int] | int,
        record: Mapping[str, Any],
        check: Check,
    ) -> int:
        """Take labels of line `n` into use: `span` is a count (the lowest identities in
        stock, contiguous) or an identity range (inside the line's segment, none in use).
        The order's row is locked: two takes of one order queue and never overlap."""
        u, ln = t.label_uses, t.order_lines
        with self.engine.begin() as conn:
            row = self._locked(conn, number, check)
            line = conn.execute(sa.select(ln).where(ln.c.order_id == row.id, ln.c.n == n)).first()
            if line is None or line.identity_start is None:
                raise NotFound(f"order {number} has no allocated line {n}", code="line_not_found")
            taken = sorted(
                (r.first_identity, r.last_identity)
                for r in conn.execute(
                    sa.select(u.c.first_identity, u.c.last_identity).where(u.c.line_id == line.id)
                )
            )
            if isinstance(span, int):
                first = None
                cursor = line.identity_start
                for lo, hi in [*taken, (line.identity_end + 1, line.identity_end + 1)]:
                    if lo - cursor >= span:
                        first = cursor
                        break
                    cursor = max(cursor, hi + 1)
                if first is None:
                    raise Conflict(
                        f"line {n} has no {span} contiguous labels in stock", code="not_enough_stock"
                    )
                last = first + span - 1
            else:
                first, last = span
                if first < line.identity_start or last > line.identity_end:
                    raise Conflict(
                        f"identities {identity_text(first)}-{identity_text(last)} are not all in line {n}'s "
                        f"segment {identity_text(line.identity_start)}-{identity_text(line.identity_end)}",
                        code="outside_segment",
                    )
                if any(lo <= last and first <= hi for lo, hi in taken):
                    raise Conflict("some of these labels are already in use", code="already_in_use")
            return int(
                conn.execute(
                    u.insert().values(
                        order_id=row.id,
                        line_id=line.id,
                        first_identity=first,
                        last_identity=last,
                        created_at=_now(),
                        **record,
                    )
                ).inserted_primary_key[0]  # type: ignore[index]
            )

    def roll_back_use(self, number: str, use_id: int, check: Check) -> None:
        """回退: the record goes and its labels are in stock again."""
        u = t.label_uses
        with self.engine.begin() as conn:
            row = self._locked(conn, number, check)
            if not conn.execute(u.delete().where(u.c.id == use_id, u.c.order_id == row.id)).rowcount:
                raise NotFound(f"no use record {use_id} of order {number}", code="use_not_found")
