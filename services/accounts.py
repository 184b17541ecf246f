"""Dashboard accounts: create (the operator's CLI), sign in, invite and disable (an admin,
inside their own scope), set a password from an invite.

Passwords are hashed with Argon2id (argon2-cffi's PasswordHasher and its current
parameters; an old hash is re-hashed at the next sign-in). An unknown login costs the same
hash check as a wrong password, so timing does not tell which logins exist. Invites are
links carrying a random token shown once to the inviting admin; only its SHA-256 is kept.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from domain import access
from domain.accounts import SCOPE_KINDS, Account, Actor, Role
from domain.bulk import Scope
from domain.errors import BadInput, Conflict, Forbidden, NotFound
from domain.ports import AccountStore
from services.audit import AuditService

MIN_PASSWORD = 10
MAX_PASSWORD = 128  # Argon2 hashes whatever it is given: bound the work a request can ask
INVITE_VALID = timedelta(days=7)
_EMAIL = re.compile(r"[^@\s]{1,64}@[^@\s]+\.[^@\s]{2,}")
_PHONE = re.compile(r"\+?[0-9]{6,15}")
_PHONE_SEPARATORS = re.compile(r"[\s().-]")


def normalize_login(raw: str) -> str:
    """An email address (lower-cased) or a phone number (digits, an optional leading +)."""
    value = (raw or "").strip()
    if "@" in value:
        value = value.lower()
        if len(value) > 254 or not _EMAIL.fullmatch(value):
            raise BadInput("not an email address", code="invalid_login")
        return value
    phone = _PHONE_SEPARATORS.sub("", value)
    if not _PHONE.fullmatch(phone):
        raise BadInput("give an email address or a phone number", code="invalid_login")
    return phone


def check_password(password: str) -> None:
    if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        raise BadInput(f"a password has {MIN_PASSWORD} to {MAX_PASSWORD} characters", code="invalid_password")


def _hash_invite(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


@dataclass(frozen=True, slots=True)
class Invitation:
    account: Account
    token: str  # shown once to the inviting admin, as part of the invite link
    expires_at: datetime


class AccountService:
    def __init__(
        self,
        store: AccountStore,
        audit: AuditService,
        scope_target_id: Callable[[str, str], int],
        hasher: PasswordHasher | None = None,
    ) -> None:
        self.store = store
        self.audit = audit
        # A body by its 4-digit code, an organization by its name: as tokens are scoped
        # (the registry's AdminRegistry.scope_target_id; raises NotFound).
        self.scope_target_id = scope_target_id
        self.hasher = hasher or PasswordHasher()
        # Checked against when the login is unknown: the same work as a wrong password.
        self._dummy = self.hasher.hash(secrets.token_urlsafe(16))

    # -- reading ----------------------------------------------------------------------------

    @staticmethod
    def _account(row: Mapping[str, Any]) -> Account:
        return Account(
            id=int(row["id"]),
            login=row["login"],
            name=row["name"] or "",
            role=Role.parse(row["role"]),
            scope=Scope(row["scope_kind"], row["scope_id"]),
            disabled=row["disabled_at"] is not None,
            invited=row["password_hash"] is None,
            created_at=row["created_at"],
            last_sign_in_at=row["last_sign_in_at"],
        )

    def load(self, user_id: int) -> Account | None:
        """The account of a session: None once it is disabled (its sessions end)."""
        row = self.store.get(user_id)
        if row is None or row["disabled_at"] is not None or row["password_hash"] is None:
            return None
        return self._account(row)

    def users(self, admin: Account) -> list[Account]:
        if not admin.may(Role.ADMIN):
            raise Forbidden("only an admin manages accounts", code="forbidden")
        return [self._account(r) for r in self.store.list_in(admin.scope)]

    def scope_names(self, scopes: list[Scope]) -> dict[tuple[str, int | None], str]:
        return self.store.scope_names([(s.kind, s.id) for s in scopes])

    # -- signing in -------------------------------------------------------------------------

    def authenticate(self, login: str, password: str) -> Account | None:
        """The account whose login and password these are, enabled; None otherwise."""
        try:
            key = normalize_login(login)
        except BadInput:
            key = ""
        row = self.store.find_login(key) if key else None
        stored = row["password_hash"] if row is not None else None
        if len(password) > MAX_PASSWORD:
            password = password[:MAX_PASSWORD]  # wrong anyway: no password set is this long
        try:
            self.hasher.verify(stored or self._dummy, password)
        except (VerificationError, InvalidHashError):
            return None
        if row is None or stored is None or row["disabled_at"] is not None:
            return None
        changes: dict[str, Any] = {"last_sign_in_at": _now()}
        if self.hasher.check_needs_rehash(stored):
            changes["password_hash"] = self.hasher.hash(password)
        self.store.update(int(row["id"]), changes)
        return self._account(row)

    # -- creating and managing --------------------------------------------------------------

    def _scope_for(self, scope_kind: str, target: str | None) -> Scope:
        if scope_kind not in SCOPE_KINDS:
            raise BadInput("scope must be all, body or organization", code="invalid_scope")
        if scope_kind == "all":
            return Scope("all")
        if not target:
            raise BadInput(f"a {scope_kind} account needs a target", code="target_required")
        return Scope(scope_kind, self.scope_target_id(scope_kind, target.strip()))

    def _role(self, role: str) -> Role:
        try:
            return Role.parse(role)
        except ValueError as exc:
            raise BadInput(str(exc), code="invalid_role") from exc

    def create_user(
        self, login: str, password: str, role: str, scope_kind: str, target: str | None, *, name: str = ""
    ) -> Account:
        """The operator's way to a first account (`flask --app wsgi create-user`)."""
        key = normalize_login(login)
        check_password(password)
        scope = self._scope_for(scope_kind, target)
        if self.store.find_login(key) is not None:
            raise Conflict(f"an account {key} exists", code="login_taken")
        values = {
            "login": key,
            "name": name.strip()[:100],
            "password_hash": self.hasher.hash(password),
            "role": self._role(role).label,
            "scope_kind": scope.kind,
            "scope_id": scope.id,
        }
        user_id = self.store.create(values)
        account = self.load(user_id)
        assert account is not None
        self.audit.record(
            Actor("cli", None, "cli", Scope("all")),
            "user.create",
            f"user:{user_id}",
            None,
            _public(values),
            owner=_owner(scope),
        )
        return account

    def set_password(self, login: str, password: str) -> Account:
        """The operator resets a password (the CLI); the account is enabled again."""
        row = self.store.find_login(normalize_login(login))
        if row is None:
            raise NotFound(f"no account {login}", code="user_not_found")
        check_password(password)
        self.store.update(
            int(row["id"]),
            {"password_hash": self.hasher.hash(password), "disabled_at": None, "invite_hash": None},
        )
        account = self.load(int(row["id"]))
        assert account is not None
        self.audit.record(
            Actor("cli", None, "cli", Scope("all")),
            "user.password_reset",
            f"user:{account.id}",
            {"disabled": row["disabled_at"] is not None},
            {"disabled": False},
            owner=_owner(account.scope),
        )
        return account

    def invite(
        self, admin: Account, login: str, name: str, role: str, scope_kind: str, target: str | None
    ) -> Invitation:
        """An admin invites a person into their own scope (an all-scope admin into any)."""
        if not admin.may(Role.ADMIN):
            raise Forbidden("only an admin invites", code="forbidden")
        key = normalize_login(login)
        scope = admin.scope if not admin.scope.is_all else self._scope_for(scope_kind, target)
        if not access.may_manage_scope(admin.scope, scope):
            raise Forbidden("an admin invites into their own scope only", code="forbidden")
        if self.store.find_login(key) is not None:
            raise Conflict(f"an account {key} exists", code="login_taken")
        raw = secrets.token_urlsafe(32)
        expires = _now() + INVITE_VALID
        values = {
            "login": key,
            "name": name.strip()[:100],
            "password_hash": None,
            "role": self._role(role).label,
            "scope_kind": scope.kind,
            "scope_id": scope.id,
            "created_by": admin.id,
            "invite_hash": _hash_invite(raw),
            "invite_expires_at": expires,
        }
        user_id = self.store.create(values)
        row = self.store.get(user_id)
        assert row is not None
        self.audit.record(
            admin.actor, "user.invite", f"user:{user_id}", None, _public(values), owner=_owner(scope)
        )
        return Invitation(self._account(row), raw, expires)

    def invitation(self, raw: str) -> Account | None:
        """The invited account a link names, while the link is valid."""
        row = self.store.find_invite(_hash_invite(raw)) if raw else None
        if row is None or row["disabled_at"] is not None:
            return None
        if row["invite_expires_at"] is None or row["invite_expires_at"] < _now():
            return None
        return self._account(row)

    def accept_invite(self, raw: str, password: str) -> Account:
        account = self.invitation(raw)
        if account is None:
            raise NotFound("this invite link is not valid (used or expired)", code="invite_not_found")
        check_password(password)
        self.store.update(
            account.id,
            {
                "password_hash": self.hasher.hash(password),
                "invite_hash": None,
                "invite_expires_at": None,
                "last_sign_in_at": _now(),
            },
        )
        loaded = self.load(account.id)
        assert loaded is not None
        return loaded

    def set_disabled(self, admin: Account, user_id: int, disabled: bool) -> Account:
        """Disable (its sessions end at their next request) or enable an account of the
        admin's scope; an admin cannot disable themself."""
        row = self.store.get(user_id)
        if row is None:
            raise NotFound(f"no user {user_id}", code="user_not_found")
        target = self._account(row)
        if not admin.may_manage(target):
            # Outside the admin's scope an account does not exist for them.
            raise NotFound(f"no user {user_id}", code="user_not_found")
        if target.id == admin.id:
            raise BadInput("you cannot disable your own account", code="own_account")
        if target.disabled == disabled:
            return target
        self.store.update(user_id, {"disabled_at": _now() if disabled else None})
        self.audit.record(
            admin.actor,
            "user.disable" if disabled else "user.enable",
            f"user:{user_id}",
            {"disabled": target.disabled},
            {"disabled": disabled},
            owner=_owner(target.scope),
        )
        row = self.store.get(user_id)
        assert row is not None
        return self._account(row)


def _owner(scope: Scope) -> tuple[int | None, int | None]:
    if scope.kind == "body":
        return scope.id, None
    if scope.kind == "organization":
        return None, scope.id
    return None, None


def _public(values: Mapping[str, Any]) -> dict[str, Any]:
    """What an audit entry keeps of an account: never a hash."""
    return {k: v for k, v in values.items() if k not in ("password_hash", "invite_hash", "invite_expires_at")}
