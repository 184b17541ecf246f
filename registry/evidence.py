"""Reads an evidence pack (domain/evidence.py) from SQL: the flag with its code's current
owner, the code's record (certificate, holder, body, product, package, order; or the BQ
batch), its scans and the shoppers' reports with their photos."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from domain.access import Owner
from domain.codes import organic_key
from domain.evidence import MAX_PHOTOS, MAX_SCANS, EvidencePack, EvidenceReport, EvidenceScan
from registry import schema as t
from registry.scans import _current_owner, _iso, _owned_flags

SCANNER_PREFIX = 8  # hex digits of a scanner's keyed hash shown, as in a flag's evidence


class SqlEvidenceReader:
    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    def flag_owner(self, flag_id: int) -> tuple[dict[str, Any], Owner] | None:
        f = t.flags
        body, org, cert = _current_owner()
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(f, body.label("owner_body"), org.label("owner_org"), cert.label("cert_number"))
                .select_from(_owned_flags())
                .where(f.c.id == flag_id)
            ).first()
        if row is None:
            return None
        flag = {
            "id": row.id,
            "code": row.code,
            "rule": row.rule,
            "severity": row.severity,
            "status": row.status,
            "raised_at": _iso(row.raised_at),
            "updated_at": _iso(row.updated_at),
            "note": row.note,
            "certificate": row.cert_number,
            "evidence": json.loads(row.evidence) if row.evidence else {},
        }
        return flag, Owner(row.owner_body, row.owner_org)

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

    def pack(
        self, flag: dict[str, Any], max_scans: int = MAX_SCANS, max_photos: int = MAX_PHOTOS
    ) -> EvidencePack:
        code = flag["code"]
        e, r = t.scan_events, t.reports
        with self.engine.connect() as conn:
            record = self._record(conn, code)
            total = int(
                conn.execute(sa.select(sa.func.count()).select_from(e).where(e.c.code == code)).scalar_one()
            )
            rows = conn.execute(
                sa.select(
                    e.c.at,
                    e.c.channel,
                    e.c.verdict,
                    e.c.city,
                    e.c.province,
                    e.c.lat,
                    e.c.lng,
                    e.c.client_hash,
                )
                .where(e.c.code == code)
                .order_by(e.c.at.desc())
                .limit(max_scans)
            ).all()
            reports = conn.execute(
                sa.select(
                    r.c.created_at, r.c.text, r.c.shop, r.c.city, r.c.province, r.c.photo, r.c.photo_type
                )
                .where(r.c.code == code)
                .order_by(r.c.created_at.desc())
                .limit(50)
            ).all()
        scans = [
            EvidenceScan(
                at=row.at.replace(tzinfo=UTC),
                channel=row.channel,
                verdict=row.verdict,
                city=row.city,
                province=row.province,
                lat=row.lat,
                lng=row.lng,
                scanner=row.client_hash[:SCANNER_PREFIX] if row.client_hash else None,
            )
            for row in reversed(rows)
        ]
        photos = 0
        kept = []
        for row in reports:
            photo = row.photo if row.photo and photos < max_photos else None
            photos += photo is not None
            kept.append(
                EvidenceReport(
                    row.created_at.replace(tzinfo=UTC),
                    row.text,
                    row.shop,
                    row.city,
                    row.province,
                    photo,
                    row.photo_type if photo else None,
                )
            )
        return EvidencePack(flag, record, scans, total, kept, datetime.now(UTC))
