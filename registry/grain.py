"""The Wuchang raw-grain ledger in SQL (issue 17, item 6): purchases per company, its
milling yield, batches' inspection reports, and the balance of raw grain against marks
(domain.grain) that batch creation and activation check inside their own transactions.

Every write that can move a company's balance the wrong way (linking codes to a batch,
activating one) first locks the company's `organizations` row, before any plain read:
two batches of one company queue there, and the second one's reads see the first one's
codes (a snapshot taken before the lock would not; see `lock_organization`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from domain.grain import DEFAULT_MILLING_YIELD, GrainBalance
from registry import schema as t

if TYPE_CHECKING:
    from registry.store import SqlRegistry


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def lock_organization(conn: sa.Connection, organization_id: int) -> None:
    """Lock the company's row for this transaction. Call it before any plain read: InnoDB
    takes a repeatable-read snapshot at the first one, and a snapshot taken before the
    lock would miss a concurrent batch committed while this one waited."""
    o = t.organizations
    conn.execute(sa.select(o.c.id).where(o.c.id == organization_id).with_for_update())


def grain_balance(conn: sa.Connection, organization_id: int) -> GrainBalance:
    """The company's raw grain, yield and the milled rice its marks (A codes) go on."""
    p, o, b, q = t.grain_purchases, t.organizations, t.batches, t.bq_codes
    raw = conn.execute(
        sa.select(sa.func.coalesce(sa.func.sum(p.c.quantity_g), 0)).where(
            p.c.organization_id == organization_id
        )
    ).scalar()
    milling_yield = conn.execute(sa.select(o.c.milling_yield).where(o.c.id == organization_id)).scalar()
    marks = conn.execute(
        sa.select(b.c.net_content_kg, sa.func.count())
        .select_from(q.join(b, b.c.id == q.c.batch_id))
        .where(b.c.organization_id == organization_id, q.c.role == "a")
        .group_by(b.c.id, b.c.net_content_kg)
    ).all()
    marked = sum(_grams(net) * int(n) for net, n in marks)
    return GrainBalance(
        int(raw or 0),
        Decimal(str(milling_yield)) if milling_yield is not None else DEFAULT_MILLING_YIELD,
        marked,
    )


def _grams(kg: Any) -> int:
    return int(Decimal(str(kg)) * 1000) if kg is not None else 0


def batch_marks(conn: sa.Connection, batch_id: int) -> int:
    q = t.bq_codes
    return int(
        conn.execute(sa.select(sa.func.count()).where(q.c.batch_id == batch_id, q.c.role == "a")).scalar()
        or 0
    )


def inspection_of(conn: sa.Connection, batch_id: int) -> dict[str, Any] | None:
    i = t.batch_inspections
    row = conn.execute(
        sa.select(
            i.c.report_number,
            i.c.laboratory,
            i.c.result,
            i.c.inspected_on,
            i.c.content_type,
            i.c.sha256,
            i.c.uploaded_at,
        ).where(i.c.batch_id == batch_id)
    ).first()
    return dict(row._mapping) if row is not None else None


def purchases_of(conn: sa.Connection, batch_id: int) -> list[dict[str, Any]]:
    p, bp = t.grain_purchases, t.batch_purchases
    rows = conn.execute(
        sa.select(p.c.reference, p.c.purchased_on, p.c.supplier, p.c.quantity_g)
        .select_from(bp.join(p, p.c.id == bp.c.purchase_id))
        .where(bp.c.batch_id == batch_id)
        .order_by(p.c.purchased_on, p.c.reference)
    ).all()
    return [dict(r._mapping) for r in rows]


def link_purchases(
    conn: sa.Connection, batch_id: int, organization_id: int | None, references: Sequence[str]
) -> list[str]:
    """Link the batch to these purchases of its company (replacing earlier links); the
    references the company's ledger does not have are returned, and nothing is linked."""
    p, bp = t.grain_purchases, t.batch_purchases
    found: dict[str, int] = {}
    if references and organization_id is not None:
        found = dict(
            conn.execute(
                sa.select(p.c.reference, p.c.id).where(
                    p.c.organization_id == organization_id, p.c.reference.in_(list(references))
                )
            ).all()
        )
    missing = [r for r in references if r not in found]
    if missing:
        return missing
    conn.execute(bp.delete().where(bp.c.batch_id == batch_id))
    if found:
        conn.execute(bp.insert(), [{"batch_id": batch_id, "purchase_id": pid} for pid in found.values()])
    return []


class SqlGrain:
    """The ledger's own reads and writes (domain.ports.GrainRegistry)."""

    def __init__(self, registry: SqlRegistry) -> None:
        self.registry = registry
        self.engine = registry.engine

    def organization_ids(self, names: Sequence[str]) -> dict[str, int]:
        o = t.organizations
        with self.registry._read() as conn:
            return {
                str(n): int(i)
                for n, i in conn.execute(sa.select(o.c.name, o.c.id).where(o.c.name.in_(list(names)))).all()
            }

    def organization_name(self, organization_id: int) -> str | None:
        o = t.organizations
        with self.registry._read() as conn:
            name = conn.execute(sa.select(o.c.name).where(o.c.id == organization_id)).scalar()
        return str(name) if name is not None else None

    def upsert_purchases(self, rows: Sequence[Mapping[str, Any]], actor: str) -> None:
        """Insert or update purchases by (company, reference): the same rows twice are the
        same ledger."""
        p = t.grain_purchases
        with self.engine.begin() as conn:
            for row in rows:
                values = {
                    "purchased_on": row["purchased_on"],
                    "supplier": row["supplier"],
                    "quantity_g": row["quantity_g"],
                    "updated_at": _now(),
                    "updated_by": actor,
                }
                updated = conn.execute(
                    p.update()
                    .where(p.c.organization_id == row["organization_id"], p.c.reference == row["reference"])
                    .values(**values)
                ).rowcount
                if not updated:
                    conn.execute(
                        p.insert().values(
                            organization_id=row["organization_id"], reference=row["reference"], **values
                        )
                    )

    def ledger(self, organization_id: int) -> tuple[GrainBalance, list[dict[str, Any]], dict[str, int]]:
        """The company's balance, its purchases (oldest first) and its marks per net content
        (kg text -> marks)."""
        p, b, q = t.grain_purchases, t.batches, t.bq_codes
        with self.registry._read() as conn:
            balance = grain_balance(conn, organization_id)
            purchases = [
                dict(r._mapping)
                for r in conn.execute(
                    sa.select(p.c.reference, p.c.purchased_on, p.c.supplier, p.c.quantity_g)
                    .where(p.c.organization_id == organization_id)
                    .order_by(p.c.purchased_on, p.c.reference)
                ).all()
            ]
            per_net: dict[str, int] = {}
            for net, n in conn.execute(
                sa.select(b.c.net_content_kg, sa.func.count())
                .select_from(q.join(b, b.c.id == q.c.batch_id))
                .where(b.c.organization_id == organization_id, q.c.role == "a")
                .group_by(b.c.net_content_kg)
            ).all():
                key = str(Decimal(str(net)).normalize()) if net is not None else "none"
                per_net[key] = per_net.get(key, 0) + int(n)
        return balance, purchases, per_net

    def set_yield(self, organization_id: int, milling_yield: Decimal | None) -> None:
        o = t.organizations
        with self.engine.begin() as conn:
            conn.execute(o.update().where(o.c.id == organization_id).values(milling_yield=milling_yield))

    def save_inspection(self, batch_id: int, fields: Mapping[str, Any], actor: str) -> None:
        i = t.batch_inspections
        values = {**fields, "uploaded_at": _now(), "uploaded_by": actor}
        with self.engine.begin() as conn:
            if not conn.execute(i.update().where(i.c.batch_id == batch_id).values(**values)).rowcount:
                conn.execute(i.insert().values(batch_id=batch_id, **values))

    def batch_ref(self, number: str) -> tuple[int, int | None, bool] | None:
        """(id, company id, activated) of a batch."""
        b = t.batches
        with self.registry._read() as conn:
            row = conn.execute(
                sa.select(b.c.id, b.c.organization_id, b.c.activated_at).where(b.c.number == number)
            ).first()
        if row is None:
            return None
        return int(row.id), row.organization_id, row.activated_at is not None

    def inspection(self, batch_id: int) -> tuple[dict[str, Any], bytes] | None:
        i = t.batch_inspections
        with self.registry._read() as conn:
            meta = inspection_of(conn, batch_id)
            if meta is None:
                return None
            data = conn.execute(sa.select(i.c.data).where(i.c.batch_id == batch_id)).scalar()
        return meta, bytes(data or b"")
