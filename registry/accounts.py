"""Dashboard accounts and the audit log in SQL (tables `users` and `audit_log`)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from domain.accounts import AuditEntry
from domain.bulk import Scope
from registry import schema as t


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


class SqlAccounts:
    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    def _one(self, where: Any) -> Mapping[str, Any] | None:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(t.users).where(where)).first()
        return dict(row._mapping) if row is not None else None

    def find_login(self, login: str) -> Mapping[str, Any] | None:
        return self._one(t.users.c.login == login)

    def get(self, user_id: int) -> Mapping[str, Any] | None:
        return self._one(t.users.c.id == user_id)

    def find_invite(self, invite_hash: str) -> Mapping[str, Any] | None:
        return self._one(t.users.c.invite_hash == invite_hash)

    def create(self, values: Mapping[str, Any]) -> int:
        with self.engine.begin() as conn:
            result = conn.execute(t.users.insert().values(created_at=_now(), **values))
            return int(result.inserted_primary_key[0])  # type: ignore[index]

    def update(self, user_id: int, values: Mapping[str, Any]) -> None:
        with self.engine.begin() as conn:
            conn.execute(t.users.update().where(t.users.c.id == user_id).values(**values))

    def list_in(self, scope: Scope) -> list[Mapping[str, Any]]:
        u = t.users
        query = sa.select(u).order_by(u.c.login)
        if not scope.is_all:
            query = query.where(u.c.scope_kind == scope.kind, u.c.scope_id == scope.id)
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(query)]

    def scope_names(self, scopes: Sequence[tuple[str, int | None]]) -> dict[tuple[str, int | None], str]:
        """Names to show for scopes: a body's name and code, an organization's name."""
        body_ids = {i for k, i in scopes if k == "body" and i is not None}
        org_ids = {i for k, i in scopes if k == "organization" and i is not None}
        names: dict[tuple[str, int | None], str] = {}
        with self.engine.connect() as conn:
            if body_ids:
                b = t.bodies
                for r in conn.execute(sa.select(b.c.id, b.c.code, b.c.name).where(b.c.id.in_(body_ids))):
                    names[("body", r.id)] = f"{r.name} ({r.code})"
            if org_ids:
                o = t.organizations
                for o_row in conn.execute(sa.select(o.c.id, o.c.name).where(o.c.id.in_(org_ids))):
                    names[("organization", o_row.id)] = o_row.name
        return names


class SqlAuditLog:
    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    def append(self, entry: AuditEntry) -> int:
        a = entry.actor
        with self.engine.begin() as conn:
            result = conn.execute(
                t.audit_log.insert().values(
                    at=(entry.at or datetime.now(UTC)).astimezone(UTC).replace(tzinfo=None),
                    actor_kind=a.kind,
                    actor_id=a.id,
                    actor_name=a.name[:254],
                    scope_kind=a.scope.kind,
                    scope_id=a.scope.id,
                    action=entry.action,
                    target=entry.target[:80],
                    before=None if entry.before is None else json.dumps(entry.before, ensure_ascii=False),
                    after=None if entry.after is None else json.dumps(entry.after, ensure_ascii=False),
                    body_id=entry.body_id,
                    organization_id=entry.organization_id,
                )
            )
            return int(result.inserted_primary_key[0])  # type: ignore[index]

    def list_in(
        self, scope: Scope, *, limit: int, before_id: int | None = None, target: str | None = None
    ) -> list[Mapping[str, Any]]:
        """Entries about the scope's data, or made by someone of the scope, newest first
        (about one target when given)."""
        a = t.audit_log
        query = sa.select(a).order_by(a.c.id.desc()).limit(limit)
        if target is not None:
            query = query.where(a.c.target == target)
        if scope.kind == "body":
            query = query.where(
                sa.or_(a.c.body_id == scope.id, sa.and_(a.c.scope_kind == "body", a.c.scope_id == scope.id))
            )
        elif scope.kind == "organization":
            query = query.where(
                sa.or_(
                    a.c.organization_id == scope.id,
                    sa.and_(a.c.scope_kind == "organization", a.c.scope_id == scope.id),
                )
            )
        if before_id is not None:
            query = query.where(a.c.id < before_id)
        with self.engine.connect() as conn:
            rows: list[dict[str, Any]] = [dict(r._mapping) for r in conn.execute(query)]
        for row in rows:
            row["at"] = row["at"].replace(tzinfo=UTC)
            for key in ("before", "after"):
                row[key] = json.loads(row[key]) if row[key] else None
        return list(rows)
