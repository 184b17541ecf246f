"""Dashboard accounts: the people who sign in (not tokens), their roles and scopes, and the
audit entry every review and settings change leaves.

A role ranks what an account may do: a viewer reads, an analyst also reviews flags, an
admin also invites and disables accounts and changes settings. The scope is an admin
token's (domain.bulk.Scope): everything (a regulator), one certification body, or one
organization (a brand); an account sees and changes only its scope's data.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import IntEnum
from typing import Any

from domain import access
from domain.bulk import Scope


class Role(IntEnum):
    """Ordered: each role may do what the ones below it may."""

    VIEWER = 1
    ANALYST = 2
    ADMIN = 3

    @property
    def label(self) -> str:
        return self.name.lower()

    @classmethod
    def parse(cls, value: str) -> Role:
        try:
            return cls[value.strip().upper()]
        except KeyError:
            raise ValueError(f"role must be one of {[r.label for r in cls]}") from None


ROLES = tuple(r.label for r in Role)
SCOPE_KINDS = ("all", "body", "organization")


@dataclass(frozen=True, slots=True)
class Account:
    """A signed-in person as the use cases see them (never their password hash)."""

    id: int
    login: str
    name: str
    role: Role
    scope: Scope
    disabled: bool = False
    invited: bool = False  # invited and the password not set yet
    created_at: datetime | None = None
    last_sign_in_at: datetime | None = None

    def may(self, role: Role) -> bool:
        return not self.disabled and self.role >= role

    def may_manage(self, other: Account) -> bool:
        """An admin manages the accounts inside their own scope: an all-scope admin every
        account, a body's or organization's admin only that body's or organization's."""
        return self.may(Role.ADMIN) and access.may_manage_scope(self.scope, other.scope)

    @property
    def actor(self) -> Actor:
        return Actor("user", self.id, self.login, self.scope)


@dataclass(frozen=True, slots=True)
class Actor:
    """Who made a change: a dashboard user, an admin token or the operator's CLI."""

    kind: str  # user | token | cli
    id: int | None
    name: str
    scope: Scope


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One change: who, when, what (action on target), before and after, and whose data it
    touched (the target's body and organization, for the scopes that read it)."""

    actor: Actor
    action: str
    target: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    body_id: int | None = None
    organization_id: int | None = None
    at: datetime | None = None
    extra: dict[str, Any] = field(default_factory=dict)
