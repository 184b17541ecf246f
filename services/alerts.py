"""Webhook alerts: an organization's webhooks (create, list, change, delete, the delivery
log) and the worker's delivery of the outbox (domain/alerts.py says what is owed and how
it is signed; registry/alerts.py fills the outbox in the flag's own transaction).

Who may do what: an organization's token or account manages that organization's
webhooks only (another's are `webhook_not_found`, as if absent); the all scope (a
regulator, the operator) manages any organization's, naming it; a certification body has
no webhooks (webhooks alert a brand about its own codes) and is refused.

Retries are rows, not loops: a failed send moves the row's `next_attempt_at` on by an
exponential backoff with jitter (domain.alerts.next_attempt). A retry library (tenacity)
would sleep inside the worker between tries, hold up every other webhook's alerts
behind one dead receiver, and forget where it was when the worker restarts; the outbox
survives restarts, needs no sleeping, and any worker can take the next try.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StringConstraints,
    ValidationError,
)

from domain.access import may_manage_webhooks
from domain.accounts import Actor
from domain.alerts import (
    EVENT_HEADER,
    IDEMPOTENCY_HEADER,
    RULES,
    SIGNATURE_HEADER,
    AlertStore,
    Webhook,
    WebhookSender,
    next_attempt,
    sign,
)
from domain.bulk import Scope
from domain.errors import BadInput, Forbidden, NotFound
from domain.scans import FlagRule
from services.audit import AuditService, token_actor

MAX_ID = 2**31 - 1
# The delivery log's words for a webhook whose stored secret no configured key opens.
UNREADABLE_SEAL = "secret unreadable: SECRET_KEY changed; set SECRET_KEY_PREVIOUS or rotate the secret"
UNREADABLE_RETRY = timedelta(minutes=30)
Url = Annotated[str, StringConstraints(strip_whitespace=True, min_length=8, max_length=2000)]
Description = Annotated[str, StringConstraints(strip_whitespace=True, max_length=200)]


def _json_integer(value: Any) -> Any:
    """A JSON integer (1 and 1.0), never a string or a boolean (pydantic's lax int takes both)."""
    if isinstance(value, bool | str) or (isinstance(value, float) and not value.is_integer()):
        raise ValueError("must be an integer")
    return value


class WebhookIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: Url
    rules: Annotated[list[FlagRule], Field(max_length=len(RULES))] = []
    min_severity: Literal["warn", "suspicious"] = "suspicious"
    active: StrictBool = True
    description: Description = ""
    # Named by every scope: an organization's token may name only its own.
    organization_id: Annotated[int, BeforeValidator(_json_integer), Field(ge=1, le=MAX_ID)]


class WebhookChange(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: Url | None = None
    rules: Annotated[list[FlagRule], Field(max_length=len(RULES))] | None = None
    min_severity: Literal["warn", "suspicious"] | None = None
    active: StrictBool | None = None
    description: Description | None = None
    rotate_secret: StrictBool = False


def _parse(model: type[BaseModel], body: Any) -> Any:
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        err = exc.errors(include_url=False)[0]
        where = ".".join(str(p) for p in err["loc"]) or "body"
        raise BadInput(f"{where}: {err['msg']}", code="invalid_body") from exc


def new_secret() -> str:
    return secrets.token_hex(32)


class AlertService:
    def __init__(
        self,
        store: AlertStore,
        sender: WebhookSender,
        *,
        audit: AuditService | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.store = store
        self.sender = sender
        self.audit = audit
        self.clock = clock

    def _audit(
        self,
        actor: Actor | None,
        scope: Scope,
        action: str,
        hook_id: int,
        organization_id: int,
        before: dict[str, Any] | None,
        after: dict[str, Any] | None,
    ) -> None:
        """Every settings change in the audit log (never a secret: only that it changed)."""
        if self.audit is not None:
            self.audit.record(
                actor or token_actor(scope),
                action,
                f"webhook:{hook_id}",
                before,
                after,
                owner=(None, organization_id),
            )

    # -- who may see a webhook ------------------------------------------------------------

    @staticmethod
    def _organization_of(scope: Scope) -> int | None:
        """The organization whose webhooks the scope sees (None: all of them)."""
        if not may_manage_webhooks(scope):
            raise Forbidden("webhooks belong to an organization; a certification body has none")
        return None if scope.is_all else scope.id

    def _visible(self, webhook_id: int, scope: Scope) -> Webhook:
        """The webhook, if the scope manages it; not found otherwise (never forbidden: a
        scope learns nothing of what exists outside it)."""
        if not 1 <= webhook_id <= MAX_ID:  # past any row id (and past what the database takes)
            raise NotFound(f"no webhook {webhook_id}", code="webhook_not_found")
        hook = self.store.webhook(webhook_id)
        if not may_manage_webhooks(scope, hook.organization_id):
            raise NotFound(f"no webhook {webhook_id}", code="webhook_not_found")
        return hook

    def _check_url(self, url: str) -> str:
        if not url.lower().startswith(("https://", "http://")):
            raise BadInput("url must be an http or https URL", code="invalid_url")
        why = self.sender.check_url(url)
        if why is not None:
            raise BadInput(f"url: {why}", code="invalid_url")
        return url

    # -- the admin calls ------------------------------------------------------------------

    def list_webhooks(self, scope: Scope) -> dict[str, Any]:
        return {"items": [h.as_dict() for h in self.store.webhooks(self._organization_of(scope))]}

    def get_webhook(self, webhook_id: int, scope: Scope) -> dict[str, Any]:
        return self._visible(webhook_id, scope).as_dict()

    def create_webhook(self, body: Any, scope: Scope, actor: Actor | None = None) -> dict[str, Any]:
        """Create a webhook; its secret is in this answer and never again."""
        own = self._organization_of(scope)
        data: WebhookIn = _parse(WebhookIn, body)
        org = data.organization_id
        if own not in (None, org) or not self.store.organization_exists(org):
            raise NotFound(f"no organization {org}", code="organization_not_found")
        secret = new_secret()
        hook = self.store.create_webhook(
            org,
            self._check_url(data.url),
            secret,
            sorted(set(data.rules)),
            data.min_severity,
            data.active,
            data.description,
        )
        self._audit(actor, scope, "webhook.create", hook.id, org, None, hook.as_dict())
        return {**hook.as_dict(), "secret": secret}

    def update_webhook(
        self, webhook_id: int, body: Any, scope: Scope, actor: Actor | None = None
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """Change a webhook; returns (before, after). `rotate_secret` puts a new secret in
        the answer (once)."""
        before = self._visible(webhook_id, scope)
        data: WebhookChange = _parse(WebhookChange, body)
        changes: dict[str, Any] = data.model_dump(exclude_unset=True, exclude={"rotate_secret"})
        changes = {k: v for k, v in changes.items() if v is not None}
        if "url" in changes:
            self._check_url(changes["url"])
        if "rules" in changes:
            changes["rules"] = sorted(set(changes["rules"]))
        secret = new_secret() if data.rotate_secret else None
        if secret is not None:
            changes["secret"] = secret
        after = self.store.update_webhook(webhook_id, changes) if changes else before
        answer = after.as_dict()
        logged = {**answer, "secret_rotated": True} if secret is not None else answer
        if changes:
            self._audit(
                actor, scope, "webhook.update", webhook_id, before.organization_id, before.as_dict(), logged
            )
        if secret is not None:
            answer["secret"] = secret
        return before.as_dict(), answer

    def delete_webhook(self, webhook_id: int, scope: Scope, actor: Actor | None = None) -> dict[str, Any]:
        hook = self._visible(webhook_id, scope)
        self.store.delete_webhook(webhook_id)
        self._audit(actor, scope, "webhook.delete", webhook_id, hook.organization_id, hook.as_dict(), None)
        return hook.as_dict()

    def deliveries(self, scope: Scope, webhook_id: int | None = None, limit: int = 100) -> dict[str, Any]:
        """The delivery log: one webhook's, or every webhook's in the scope."""
        if webhook_id is not None:
            ids = [self._visible(webhook_id, scope).id]
        else:
            ids = [h.id for h in self.store.webhooks(self._organization_of(scope))]
        return {"items": self.store.deliveries(ids, limit)}

    # -- the worker's part ----------------------------------------------------------------

    def deliver_due(self, limit: int = 20) -> int:
        """Send what is due now, once each; returns how many were delivered. Failed sends
        are due again after their backoff, or failed for good once the tries are spent."""
        delivered = 0
        for out in self.store.claim_due(limit, self.clock().astimezone(UTC).replace(tzinfo=None)):
            if out.secret is None:
                # Nothing can be signed, so nothing is sent: logged for the admin to see and
                # due again within the hour without spending a try, so the alert waits for
                # the key (SECRET_KEY_PREVIOUS) or a new secret instead of being lost.
                now = self.clock()
                self.store.record_attempt(
                    out,
                    at=now,
                    status_code=None,
                    error=UNREADABLE_SEAL,
                    duration_ms=0,
                    delivered=False,
                    retry_at=now + UNREADABLE_RETRY,
                    counted=False,
                )
                continue
            headers = {
                "Content-Type": "application/json",
                SIGNATURE_HEADER: sign(out.body, out.secret),
                IDEMPOTENCY_HEADER: out.event_id,
                EVENT_HEADER: out.event,
            }
            # The sender checks the address again at each send: a name may point elsewhere now.
            result = self.sender.send(out.url, out.body, headers)
            now = self.clock()
            self.store.record_attempt(
                out,
                at=now,
                status_code=result.status_code,
                error=result.error,
                duration_ms=result.duration_ms,
                delivered=result.delivered,
                retry_at=None if result.delivered else next_attempt(out.attempts + 1, now),
            )
            delivered += result.delivered
        return delivered
