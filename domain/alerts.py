"""Webhook alerts (告警): what an organization subscribes to, which flag changes an
alert is owed for, the signed body a receiver gets, and when a failed delivery is tried
again. Pure: the outbox and delivery log live in registry/alerts.py, the HTTP call in
webapp/webhooks.py, the use cases in services/alerts.py.

The contract (CONTRACT.md, "Issuing, dashboard and alerts"): a `POST` of JSON to the
webhook's URL, `X-Signature` = hex HMAC-SHA256 of the exact body bytes with the
webhook's secret, and an idempotency key per event (the same on every retry of it), so a
receiver can accept a repeat.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from domain.scans import SEVERITY_RANK, FlagRule, Severity

SIGNATURE_HEADER = "X-Signature"
IDEMPOTENCY_HEADER = "Idempotency-Key"
EVENT_HEADER = "X-Event-Type"

EVENT_RAISED = "flag.raised"  # a new flag at a subscribed severity
EVENT_ESCALATED = "flag.escalated"  # an existing flag whose severity rose to a subscribed one

# Retries: 10 s, 20 s, 40 s ... doubling up to an hour between tries, ten tries in all
# (about 2.5 hours), each wait drawn between half and all of its step so that many
# webhooks failing together do not retry in step ("full jitter" halved).
BACKOFF_BASE_S = 10.0
BACKOFF_CAP_S = 3600.0
MAX_ATTEMPTS = 10


@dataclass(frozen=True, slots=True)
class Webhook:
    """One organization's subscription: where to POST, which rules (empty: every rule)
    and the lowest severity it wants. The secret is never part of this value; it is
    shown once, when created."""

    id: int
    organization_id: int
    url: str
    rules: tuple[str, ...]
    min_severity: str
    active: bool
    description: str
    created_at: datetime
    updated_at: datetime

    def wants(self, rule: str, severity: str) -> bool:
        return (
            self.active
            and (not self.rules or rule in self.rules)
            and SEVERITY_RANK.get(severity, 0) >= SEVERITY_RANK[self.min_severity]
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "organization_id": self.organization_id,
            "url": self.url,
            "rules": list(self.rules),
            "min_severity": self.min_severity,
            "active": self.active,
            "description": self.description,
            "created_at": iso(self.created_at),
            "updated_at": iso(self.updated_at),
        }


def alert_event(old_severity: str | None, new_severity: str, min_severity: str) -> str | None:
    """The event a webhook with `min_severity` is owed when a flag goes from `old_severity`
    (None: the flag is new) to `new_severity`; None when it is owed nothing. A flag that
    first reaches the webhook's level is `flag.raised` for it (a warning that becomes
    suspicious is a new suspicious flag to a webhook of suspicious flags); one that rises
    further is `flag.escalated`; one that stays at its level, or rises without reaching
    the webhook's level, is no news."""
    rank = SEVERITY_RANK
    if rank.get(new_severity, 0) < rank[min_severity]:
        return None
    if old_severity is None or rank.get(old_severity, 0) < rank[min_severity]:
        return EVENT_RAISED
    if rank.get(new_severity, 0) > rank.get(old_severity, 0):
        return EVENT_ESCALATED
    return None


def sign(body: bytes, secret: str) -> str:
    """The `X-Signature` of a body: hex HMAC-SHA256 with the webhook's secret."""
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify_signature(body: bytes, secret: str, signature: str) -> bool:
    """What a receiver does (and the tests): compare in constant time."""
    return hmac.compare_digest(sign(body, secret), signature)


def event_body(
    event_id: str, event: str, created_at: datetime, flag: dict[str, Any], organization_id: int
) -> bytes:
    """The exact bytes POSTed (and stored in the outbox, so every retry sends the same
    bytes and the same signature). Compact, sorted JSON in UTF-8."""
    document = {
        "id": event_id,
        "type": event,
        "created_at": iso(created_at),
        "organization_id": organization_id,
        "flag": flag,
    }
    return json.dumps(document, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode()


def next_attempt(attempts: int, now: datetime, rng: random.Random | None = None) -> datetime | None:
    """When to try again after `attempts` failed tries; None once the tries are spent."""
    if attempts >= MAX_ATTEMPTS:
        return None
    step = min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2 ** (attempts - 1))
    wait = step * (0.5 + 0.5 * (rng or random).random())
    return now + timedelta(seconds=wait)


def iso(value: datetime | None) -> str | None:
    """UTC with Z, as the API writes instants."""
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


RULES: tuple[str, ...] = tuple(FlagRule)
SEVERITIES: tuple[str, ...] = tuple(Severity)


@dataclass(frozen=True, slots=True)
class Outgoing:
    """An outbox row claimed for one send: the stored body, the webhook's URL and secret."""

    id: int
    event_id: str
    event: str
    webhook_id: int
    url: str
    secret: str | None  # None: stored sealed under a key this process does not have
    body: bytes
    attempts: int  # tries before this one


@dataclass(frozen=True, slots=True)
class SendResult:
    """A receiver's answer to one send: its status, or why there was none."""

    status_code: int | None
    error: str | None
    duration_ms: int

    @property
    def delivered(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


# -- ports (adapters: registry.alerts.SqlAlertStore, webapp.webhooks.HttpSender) ------------


class AlertStore(Protocol):
    def organization_exists(self, organization_id: int) -> bool: ...
    def create_webhook(
        self,
        organization_id: int,
        url: str,
        secret: str,
        rules: Sequence[str],
        min_severity: str,
        active: bool,
        description: str,
    ) -> Webhook: ...
    def webhook(self, webhook_id: int) -> Webhook: ...  # raises NotFound
    def webhooks(self, organization_id: int | None) -> list[Webhook]: ...
    def update_webhook(self, webhook_id: int, changes: dict[str, Any]) -> Webhook: ...
    def delete_webhook(self, webhook_id: int) -> None: ...
    def claim_due(self, limit: int = ..., now: datetime | None = ...) -> list[Outgoing]: ...
    def seal_stored(self) -> int: ...  # secrets stored in clear before sealing: sealed now
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
        counted: bool = ...,
    ) -> None: ...
    def deliveries(self, webhook_ids: Sequence[int], limit: int = ...) -> list[dict[str, Any]]: ...


class WebhookSender(Protocol):
    def check_url(self, url: str) -> str | None:
        """Why this URL may not be a webhook's (None: it may)."""
        ...

    def send(self, url: str, body: bytes, headers: dict[str, str]) -> SendResult:
        """POST once, never following a redirect; a URL `check_url` refuses is not sent."""
        ...
