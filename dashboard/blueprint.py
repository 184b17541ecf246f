"""The dashboard (issue 16): brand-protection and issuer pages under /dashboard/, for
people signed in with an account (not admin tokens).

`bp` is registered by the composition root, which calls `init_app` with what the pages
need from it: sign-in sessions (Flask-Login), CSRF protection of every form (Flask-WTF),
the languages (Flask-Babel, dashboard/i18n.py) and the sign-in throttle. Every page
module in PAGES adds its routes to `bp` and its entry to the navigation (dashboard/nav.py).
Templates are under dashboard/templates/dashboard/ (the layout is `dashboard/base.html`,
pages fill `{% block content %}`); static files under dashboard/static/, served at
/dashboard/static/.
"""

from __future__ import annotations

import importlib
from datetime import timedelta
from typing import Any

from flask import Blueprint, Flask, request
from flask_wtf.csrf import CSRFProtect

from dashboard import i18n
from dashboard.auth import login_manager
from dashboard.context import THROTTLE

bp = Blueprint(
    "dashboard",
    __name__,
    url_prefix="/dashboard",
    template_folder="templates",
    static_folder="static",
    static_url_path="/static",
)
csrf = CSRFProtect()

# The modules whose routes make the dashboard; each registers on `bp` when imported.
PAGES = ("dashboard.views", "dashboard.overview", "dashboard.alerts", "dashboard.issuing")

SESSION_HOURS = 8


def init_app(app: Flask, *, throttle: Any, secure_cookies: bool = False) -> None:
    """Register the dashboard on `app`. `secure_cookies` marks the session cookie Secure on
    every response (behind TLS that a proxy terminates without X-Forwarded-Proto); it is
    Secure anyway on a request that arrived over https."""
    for name in PAGES:
        importlib.import_module(name)
    app.config.update(
        # The cookie goes to the dashboard only: the verify API and the shopper's pages
        # never receive or set it.
        SESSION_COOKIE_NAME="dashboard_session",
        SESSION_COOKIE_PATH="/dashboard",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=secure_cookies,
        # A session cookie (gone when the browser closes) whose signature is refused after
        # this long in any case (Flask checks the signed time against this lifetime).
        PERMANENT_SESSION_LIFETIME=timedelta(hours=SESSION_HOURS),
        # No "remember me": Flask-Login's cookie is never set; its name and path are ours
        # so the one it clears stays on the dashboard.
        REMEMBER_COOKIE_NAME="dashboard_remember",
        REMEMBER_COOKIE_PATH="/dashboard",
        REMEMBER_COOKIE_HTTPONLY=True,
        REMEMBER_COOKIE_SAMESITE="Lax",
        # Forms are checked by the dashboard's own hook below, not on every blueprint (the
        # APIs take bearer tokens, not cookies, and need no CSRF token).
        WTF_CSRF_CHECK_DEFAULT=False,
        WTF_CSRF_TIME_LIMIT=SESSION_HOURS * 3600,
        WTF_CSRF_SSL_STRICT=True,
    )
    app.extensions[THROTTLE] = throttle
    login_manager.init_app(app)
    csrf.init_app(app)
    i18n.init(app)
    app.register_blueprint(bp)


@bp.before_request
def _protect() -> None:
    # Every state-changing request of the dashboard carries the form's CSRF token (Flask-WTF
    # answers 400 without a valid one).
    if request.method not in ("GET", "HEAD", "OPTIONS"):
        csrf.protect()
