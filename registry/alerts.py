"""Webhooks, their outbox and the delivery log in SQL (tables in registry/schema.py).

`enqueue_alerts` runs inside the transaction that writes a flag (registry/scans.py): the
outbox row commits with the flag or not at all. The worker then claims due rows with a
lease (a conditional UPDATE, so two workers never send the same row at once and a worker
that dies mid-send leaves the row to be claimed again when the lease runs out), sends
them, and records each try.

A webhook's secret is stored sealed (registry/sealing.py) and opened only for the send.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from domain.alerts import Outgoing, Webhook, alert_event, event_body, iso
from domain.errors import NotFound
from registry import schema as t
from registry.aggregates import Owner
from registry.sealing import SecretBox, SecretUnreadable

log = logging.getLogger(__name__)

# A claimed row is the claimer's this long: well above one send's timeout.
LEASE_S = 120


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def _webhook(row: Any) -> Webhook:
    return Webhook(
        id=row.id,
        organization_id=row.organization_id,
        url=row.url,
        rules=tuple(r for r in row.rules.split(",") if r),
        min_severity=row.min_severity,
        active=bool(row.active),
        description=row.description or "",
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def enqueue_alerts(
    conn: sa.Connection,
    *,
    flag_id: int,
    code: str,
    rule: str,
    old_severity: str | None,
    severity: str,
    status: str,
    raised_at: datetime,
    evidence: dict[str, Any],
    owner: Owner | None,
) -> int:
    """Queue the alert every webhook of the flag's organization (its code's `owner`) is
    owed for this change, in the caller's transaction. Returns how many were queued."""
    if owner is None or owner.organization_id is None:
        return 0
    organization_id, certificate_id = owner.organization_id, owner.certificate_id or None
    if alert_event(old_severity, severity, "warn") is None:
        return 0
    w = t.webhooks
    hooks = conn.execute(
        sa.select(w).where(w.c.organization_id == organization_id, w.c.active == sa.true())
    ).all()
    owed = []
    for row in hooks:
        hook = _webhook(row)
        event = alert_event(old_severity, severity, hook.min_severity)
        if event is not None and hook.wants(rule, severity):
            owed.append((hook, event))
    if not owed:
        return 0
    certificate = None
    if certificate_id is not None:
        certificate = conn.execute(
            sa.select(t.certificates.c.number).where(t.certificates.c.id == certificate_id)
        ).scalar()
    flag = {
        "id": flag_id,
        "code": code,
        "rule": rule,
        "severity": severity,
        "previous_severity": old_severity,
        "status": status,
        "raised_at": iso(raised_at),
        "certificate": certificate,
        "evidence": evidence,
    }
    now = _now()
    rows = []
    for hook, event in owed:
        event_id = str(uuid.uuid4())
        body = event_body(event_id, event, now, flag, organization_id)
        rows.append(
            {
                "event_id": event_id,
                "webhook_id": hook.id,
                "flag_id": flag_id,
                "event": event,
                "body": body.decode(),
                "status": "pending",
                "attempts": 0,
                "next_attempt_at": now,
                "created_at": now,
            }
        )
    conn.execute(t.webhook_outbox.insert(), rows)
    return len(rows)


class SqlAlertStore:
    """Webhooks (per organization), the outbox and the delivery log."""

    def __init__(self, engine: sa.Engine, box: SecretBox) -> None:
        self.engine = engine
        self.box = box

    # -- webhooks ---------------------------------------------------------------------------

    def organization_exists(self, organization_id: int) -> bool:
        with self.engine.connect() as conn:
            found = conn.execute(
                sa.select(t.organizations.c.id).where(t.organizations.c.id == organization_id)
            ).first()
        return found is not None

    def create_webhook(
        self,
        organization_id: int,
        url: str,
        secret: str,
        rules: Sequence[str],
        min_severity: str,
        active: bool,
        description: str,
    ) -> Webhook:
        now = _now()
        with self.engine.begin() as conn:
            new_id = conn.execute(
                t.webhooks.insert().values(
                    organization_id=organization_id,
                    url=url,
                    secret=self.box.seal(secret),
                    rules=",".join(rules),
                    min_severity=min_severity,
                    active=active,
                    description=description,
                    created_at=now,
                    updated_at=now,
                )
            ).inserted_primary_key[0]  # type: ignore[index]
        return self.webhook(int(new_id))

    def webhook(self, webhook_id: int) -> Webhook:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(t.webhooks).where(t.webhooks.c.id == webhook_id)).first()
        if row is None:
            raise NotFound(f"no webhook {webhook_id}", code="webhook_not_found")
        return _webhook(row)

    def webhooks(self, organization_id: int | None) -> list[Webhook]:
        """An organization's webhooks (None: every organization's), oldest first."""
        query = sa.select(t.webhooks).order_by(t.webhooks.c.id)
        if organization_id is not None:
            query = query.where(t.webhooks.c.organization_id == organization_id)
        with self.engine.connect() as conn:
            return [_webhook(r) for r in conn.execute(query)]

    def update_webhook(self, webhook_id: int, changes: dict[str, Any]) -> Webhook:
        values = dict(changes)
        if "rules" in values:
            values["rules"] = ",".join(values["rules"])
        if "secret" in values:
            values["secret"] = self.box.seal(values["secret"])
        values["updated_at"] = _now()
        with self.engine.begin() as conn:
            conn.execute(t.webhooks.update().where(t.webhooks.c.id == webhook_id).values(**values))
        return self.webhook(webhook_id)

    def delete_webhook(self, webhook_id: int) -> None:
        """The webhook, its queued alerts and their log go together."""
        o, a = t.webhook_outbox, t.webhook_attempts
        with self.engine.begin() as conn:
            outbox = sa.select(o.c.id).where(o.c.webhook_id == webhook_id).scalar_subquery()
            conn.execute(a.delete().where(a.c.outbox_id.in_(outbox)))
            conn.execute(o.delete().where(o.c.webhook_id == webhook_id))
            conn.execute(t.webhooks.delete().where(t.webhooks.c.id == webhook_id))

    # -- delivery ---------------------------------------------------------------------------

    def claim_due(self, limit: int = 20, now: datetime | None = None) -> list[Outgoing]:
        """Claim up to `limit` rows whose time has come, oldest first, each for LEASE_S."""
        now = now or _now()
        o, w = t.webhook_outbox, t.webhooks
        lease_until = now + timedelta(seconds=LEASE_S)
        with self.engine.connect() as conn:
            candidates = conn.execute(
                sa.select(o.c.id, o.c.next_attempt_at)
                .where(o.c.status == "pending", o.c.next_attempt_at <= now)
                .order_by(o.c.next_attempt_at, o.c.id)
                .limit(limit)
            ).all()
        claimed_ids = []
        for row in candidates:
            # Only the claimer whose condition still holds moves the row on: the others'
            # UPDATE matches nothing.
            with self.engine.begin() as conn:
                got = conn.execute(
                    o.update()
                    .where(
                        o.c.id == row.id, o.c.status == "pending", o.c.next_attempt_at == row.next_attempt_at
                    )
                    .values(next_attempt_at=lease_until)
                ).rowcount
            if got:
                claimed_ids.append(row.id)
        if not claimed_ids:
            return []
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(
                    o.c.id,
                    o.c.event_id,
                    o.c.event,
                    o.c.webhook_id,
                    o.c.body,
                    o.c.attempts,
                    w.c.url,
                    w.c.secret,
                )
                .select_from(o.join(w, w.c.id == o.c.webhook_id))
                .where(o.c.id.in_(claimed_ids))
                .order_by(o.c.id)
            ).all()
        return [
            Outgoing(
                r.id, r.event_id, r.event, r.webhook_id, r.url, self._open(r), r.body.encode(), r.attempts
            )
            for r in rows
        ]

    def _open(self, row: Any) -> str | None:
        try:
            return self.box.open(row.secret)
        except SecretUnreadable:
            log.error(
                "webhook %s: its secret cannot be opened with SECRET_KEY (or SECRET_KEY_PREVIOUS)",
                row.webhook_id,
            )
            return None

    def seal_stored(self) -> int:
        """Seal under SECRET_KEY the secrets stored in clear (before sealing) or sealed by an
        older key: the senders call it as they start; idempotent. Returns how many."""
        w = t.webhooks
        sealed = 0
        with self.engine.begin() as conn:
            for row in conn.execute(sa.select(w.c.id, w.c.secret)).all():
                again = self.box.reseal(row.secret)
                if again is None:
                    continue
                sealed += conn.execute(
                    w.update().where(w.c.id == row.id, w.c.secret == row.secret).values(secret=again)
                ).rowcount
        return sealed

    def record_attempt(
        self,
        claimed: Outgoing,
        *,
        at: datetime,
        status_code: int | None,
        error: str | None,
        duration_ms: int,
        delivered: bool,
        retry_at: datetime | None,
        counted: bool = True,
    ) -> None:
        """Log one try and move the row on: delivered, due again at `retry_at`, or failed
        for good (no `retry_at`). A try that is not `counted` (nothing could be sent) is
        logged without spending one of the row's tries."""
        o = t.webhook_outbox
        attempt = claimed.attempts + 1
        at = at.astimezone(UTC).replace(tzinfo=None) if at.tzinfo else at
        values: dict[str, Any] = {
            "attempts": attempt if counted else claimed.attempts,
            "last_status": status_code,
            "last_error": error,
        }
        if delivered:
            values.update(status="delivered", delivered_at=at)
        elif retry_at is None:
            values.update(status="failed")
        else:
            values.update(next_attempt_at=retry_at.astimezone(UTC).replace(tzinfo=None))
        with self.engine.begin() as conn:
            conn.execute(
                t.webhook_attempts.insert().values(
                    outbox_id=claimed.id,
                    webhook_id=claimed.webhook_id,
                    attempt=attempt,
                    at=at,
                    status_code=status_code,
                    error=error,
                    duration_ms=duration_ms,
                )
            )
            conn.execute(o.update().where(o.c.id == claimed.id).values(**values))

    # -- the log ----------------------------------------------------------------------------

    def deliveries(self, webhook_ids: Sequence[int], limit: int = 100) -> list[dict[str, Any]]:
        """The latest queued alerts of these webhooks, newest first, each with its tries."""
        if not webhook_ids:
            return []
        o, a = t.webhook_outbox, t.webhook_attempts
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(o)
                .where(o.c.webhook_id.in_(list(webhook_ids)))
                .order_by(o.c.created_at.desc(), o.c.id.desc())
                .limit(limit)
            ).all()
            ids = [r.id for r in rows]
            tries: dict[int, list[dict[str, Any]]] = {i: [] for i in ids}
            if ids:
                for r in conn.execute(sa.select(a).where(a.c.outbox_id.in_(ids)).order_by(a.c.id)):
                    tries[r.outbox_id].append(
                        {
                            "attempt": r.attempt,
                            "at": iso(r.at),
                            "status_code": r.status_code,
                            "error": r.error,
                            "duration_ms": r.duration_ms,
                        }
                    )
        out = []
        for r in rows:
            flag = json.loads(r.body).get("flag", {})
            out.append(
                {
                    "id": r.id,
                    "event_id": r.event_id,
                    "webhook_id": r.webhook_id,
                    "event": r.event,
                    "flag_id": r.flag_id,
                    "code": flag.get("code"),
                    "rule": flag.get("rule"),
                    "severity": flag.get("severity"),
                    "status": r.status,
                    "attempts": r.attempts,
                    "created_at": iso(r.created_at),
                    "delivered_at": iso(r.delivered_at),
                    "next_attempt_at": iso(r.next_attempt_at) if r.status == "pending" else None,
                    "last_status": r.last_status,
                    "last_error": r.last_error,
                    "tries": tries[r.id],
                }
            )
        return out
