"""Who is signed in: Flask-Login sessions over dashboard accounts, and the guards pages use.

Pages only authenticate: `@require_role(Role.ANALYST)` (or `Role.VIEWER`) lets the view
run for a signed-in account of that role or above, and `current_account()` hands the view
the account, whose `scope` it passes to the use cases. What an account may see or change
is decided by the services over that scope, never by a page.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar, cast

from flask import abort, request
from flask_login import LoginManager, UserMixin, current_user

from dashboard.context import services
from domain.accounts import Account, Role
from domain.bulk import Scope

F = TypeVar("F", bound=Callable[..., Any])

login_manager = LoginManager()
login_manager.login_view = "dashboard.login"
# A session copied to another browser or network is refused ("strong": the session is
# cleared when its identifier, a hash of the client's IP and user agent, changes).
login_manager.session_protection = "strong"
login_manager.login_message = None


class SessionUser(UserMixin):
    """Flask-Login's user: the account, read again from the database on every request, so a
    disabled account's sessions end at once."""

    def __init__(self, account: Account) -> None:
        self.account = account

    def get_id(self) -> str:
        return str(self.account.id)


@login_manager.user_loader
def _load(user_id: str) -> SessionUser | None:
    if not user_id.isdigit():
        return None
    account = services().accounts.load(int(user_id))
    return SessionUser(account) if account is not None else None


def current_account() -> Account:
    """The signed-in account (a view behind `require_role` always has one)."""
    return cast(SessionUser, current_user).account


def current_scope() -> Scope:
    return current_account().scope


def require_role(role: Role) -> Callable[[F], F]:
    """A signed-in account of `role` or above; others go to sign in (401) or get 403."""

    def wrap(view: F) -> F:
        @functools.wraps(view)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            if not current_user.is_authenticated:
                return login_manager.unauthorized()
            if not current_account().may(role):
                abort(403)
            return view(*args, **kwargs)

        return cast(F, guarded)

    return wrap


def client_ip() -> str:
    return request.remote_addr or "-"
