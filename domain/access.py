"""Who may read or change what: the one authorization policy over a Scope.

A Scope (domain.bulk) says whom an admin token or a dashboard account speaks for: every
owner (the regulator, the CLI), one certification body, or one organization (a holder or
brand). Repositories say who owns a thing (an Owner: the body that certified it and the
organization it belongs to); the services ask this module and refuse; the entrypoints only
authenticate (turn a bearer token or a sign-in into a Scope).

The rules (../shared/DOMAIN.md):
- the all scope reads and writes everything;
- a body reads what it certified (certificates, their codes, orders, flags, scans) and
  writes certificates, codes and orders of its own body only; it writes no BQ batch
  (a batch has no certification body) and no body;
- an organization reads what it holds (its certificates' codes and flags, its batches)
  and writes its own BQ batches until the regulator activates them; nothing else;
- tokens are seen and revoked within the same scope only.
A thing a scope may not read is answered as not found, never as forbidden: a token learns
nothing of what exists outside its scope.
"""

from __future__ import annotations

from dataclasses import dataclass

from domain.bulk import Scope


@dataclass(frozen=True, slots=True)
class Owner:
    """Who owns a thing: the certification body that certified it and the organization it
    belongs to. Either may be None (a BQ batch has no body; a batch may have no owner)."""

    body_id: int | None = None
    organization_id: int | None = None


def visible_to(scope: Scope) -> Owner | None:
    """The owner whose things a scope sees, for filtering a list in the query; None: all.

    A body scope sees what body `scope.id` owns, an organization scope what organization
    `scope.id` owns (a repository matches the one id the Owner names)."""
    if scope.is_all:
        return None
    if scope.kind == "body":
        return Owner(body_id=scope.id)
    return Owner(organization_id=scope.id)


def may_read(scope: Scope, owner: Owner) -> bool:
    """A thing (code, flag, scan, batch) owned by `owner` is visible to the scope."""
    if scope.is_all:
        return True
    if scope.kind == "body":
        return owner.body_id is not None and owner.body_id == scope.id
    return owner.organization_id is not None and owner.organization_id == scope.id


def may_certify(scope: Scope, owner: Owner) -> bool:
    """The scope may write certificates, codes and orders certified by `owner.body_id`:
    the certifying body itself, or the all scope."""
    return scope.is_all or (scope.kind == "body" and owner.body_id is not None and owner.body_id == scope.id)


def may_manage_bodies(scope: Scope) -> bool:
    """Certification bodies are the regulator's list."""
    return scope.is_all


def may_write_batches(scope: Scope) -> bool:
    """BQ batches are written by their organization or the regulator: a body has none."""
    return scope.kind != "body"


def may_change_batch(scope: Scope, owner: Owner) -> bool:
    """An existing batch is changed by its own organization (or the all scope)."""
    return may_read(scope, owner)


def may_change_activated_batch(scope: Scope) -> bool:
    """Once activated (after its inspection) a batch is the regulator's to change: shoppers
    would otherwise see a forged producer or inspection."""
    return scope.is_all


def may_activate_batches(scope: Scope) -> bool:
    """Activation follows the inspection; the regulator does it, never the producer."""
    return scope.is_all


def may_load_files(scope: Scope) -> bool:
    """A LOAD DATA file REPLACEs whoever owned a code: the all scope only."""
    return scope.is_all


def code_guard(scope: Scope) -> int | None:
    """The body a code write is kept to (an existing code is changed only while it is that
    body's), or None for an unguarded write: the all scope (an organization certifies
    nothing, so `may_certify` refuses its rows before any write)."""
    return scope.id if scope.kind == "body" else None


def may_manage_webhooks(scope: Scope, organization_id: int | None = None) -> bool:
    """Webhook alerts belong to an organization (they alert a brand about its own codes):
    its own scope manages them, and the all scope any organization's. A body has none.
    Without `organization_id`: whether the scope may have webhooks at all."""
    if scope.is_all:
        return True
    if scope.kind != "organization":
        return False
    return organization_id is None or organization_id == scope.id


def may_manage_scope(scope: Scope, other: Scope) -> bool:
    """A dashboard admin of `scope` invites and disables accounts of `other`: the all scope
    any account; a body or an organization only accounts of that same body or organization
    (tokens follow the same rule: seen and revoked within the same scope)."""
    if scope.is_all:
        return True
    return other.kind == scope.kind and other.id == scope.id


def may_order(scope: Scope, owner: Owner) -> bool:
    """Product specs and label orders are written by the organization that holds the
    certificate (seed 000: the 获证组织 orders), or the all scope; the certifying body
    reviews, allocates and voids them (`may_certify`) but orders nothing itself."""
    return scope.is_all or (
        scope.kind == "organization"
        and owner.organization_id is not None
        and owner.organization_id == scope.id
    )
