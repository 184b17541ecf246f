"""The dashboard's way to its use cases: the typed `Services` the composition root keeps in
`current_app.extensions` (the dashboard never imports the root or another entrypoint)."""

from __future__ import annotations

from typing import Any, Protocol, cast

from flask import current_app

from services.catalog import EXTENSION, Services

THROTTLE = "dashboard_sign_in_throttle"


class SignInThrottle(Protocol):
    """Failed sign-ins per account and per IP (webapp.limits.SignInThrottle)."""

    def retry_after(self, account: str, ip: str) -> int | None: ...
    def failed(self, account: str, ip: str) -> None: ...


def services() -> Services:
    return cast(Services, current_app.extensions[EXTENSION])


def throttle() -> SignInThrottle:
    return cast(SignInThrottle, current_app.extensions[THROTTLE])


def extension(name: str) -> Any:
    return current_app.extensions[name]
