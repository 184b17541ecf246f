"""The audit log use case: every review and settings change is recorded with who, when,
what, before and after; each scope reads the entries about its own data."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from domain.accounts import Actor, AuditEntry
from domain.bulk import Scope
from domain.ports import AuditLog


def token_actor(scope: Scope) -> Actor:
    """An admin token's changes carry its id and name (the bootstrap token has no id)."""
    return Actor("token", scope.token_id, scope.name or "token", scope)


class AuditService:
    def __init__(self, log: AuditLog) -> None:
        self.log = log

    def record(
        self,
        actor: Actor,
        action: str,
        target: str,
        before: dict[str, Any] | None,
        after: dict[str, Any] | None,
        *,
        owner: tuple[int | None, int | None] = (None, None),
    ) -> int:
        return self.log.append(
            AuditEntry(actor, action, target, before, after, body_id=owner[0], organization_id=owner[1])
        )

    def entries(
        self, scope: Scope, *, limit: int = 50, before_id: int | None = None, target: str | None = None
    ) -> list[Mapping[str, Any]]:
        return self.log.list_in(scope, limit=max(1, min(limit, 200)), before_id=before_id, target=target)
