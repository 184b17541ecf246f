"""The code's record for an evidence pack (domain/evidence.py), as a regulator reads it:
certificate, its status and validity, holder, producer, body, product, package, label,
order, issue date, identity code; or the BQ batch. (The flag, its scans and the reports
come from the flag page's reader, registry/cases.py.)"""

from __future__ import annotations

import sqlalchemy as sa

from domain.codes import organic_key
from registry import schema as t
from registry.scans import _iso

SCANNER_PREFIX = 8  # hex digits of a scanner's keyed hash shown, as in a flag's evidence


class SqlEvidenceReader:
    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    def record(self, code: str) -> dict[str, str | None]:
        with self.engine.connect() as conn:
            return self._record(conn, code)

    def _record(self, conn: sa.Connection, code: str) -> dict[str, str | None]:
        if code.isdigit() and len(code) in (17, 18):
            oc, g, c, p, o, b = (
                t.organic_codes,
                t.label_groups,
                t.certificates,
                t.certificate_products,
                t.orders,
                t.bodies,
            )
            row = conn.execute(
                sa.select(
                    oc.c.issued_on,
                    oc.c.identity_code,
                    g.c.package,
                    g.c.label_spec,
                    c.c.number,
                    c.c.holder,
                    c.c.producer,
                    c.c.status,
                    c.c.valid_from,
                    c.c.valid_until,
                    p.c.name.label("product"),
                    o.c.number.label("order"),
                    o.c.status.label("order_status"),
                    b.c.name.label("body"),
                    b.c.code.label("body_code"),
                )
                .select_from(
                    oc.join(g, g.c.id == oc.c.group_id)
                    .join(c, c.c.id == g.c.certificate_id)
                    .join(p, p.c.id == g.c.product_id)
                    .join(b, b.c.id == c.c.body_id)
                    .outerjoin(o, o.c.id == g.c.order_id)
                )
                .where(oc.c.code == organic_key(code))
            ).first()
            if row is None:
                return {"code": code, "record": None}
            return {
                "code": code,
                "certificate": row.number,
                "certificate_status": row.status,
                "valid": f"{row.valid_from} – {row.valid_until}",
                "holder": row.holder,
                "producer": row.producer,
                "body": f"{row.body} ({row.body_code})",
                "product": row.product,
                "package": row.package or None,
                "label_spec": row.label_spec or None,
                "order": row.order,
                "order_status": row.order_status,
                "issued_on": str(row.issued_on) if row.issued_on else None,
                "identity_code": row.identity_code,
            }
        q, bt = t.bq_codes, t.batches
        batch = conn.execute(
            sa.select(bt.c.number, bt.c.producer, bt.c.product, bt.c.activated_at, q.c.role)
            .select_from(q.join(bt, bt.c.id == q.c.batch_id))
            .where(q.c.token == code)
        ).first()
        if batch is None:
            return {"code": code, "record": None}
        return {
            "code": code,
            "batch": batch.number,
            "producer": batch.producer,
            "product": batch.product,
            "role": batch.role,
            "activated_at": _iso(batch.activated_at),
        }
