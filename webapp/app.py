"""The composition root: `create_app(settings)` builds the app: the adapters and services
(webapp/wiring.py, each built on first use), the blueprints, the CLI, the rate limits,
the logs. Nothing happens at import time, and nothing below imports this package: the
blueprints reach their services through `verify_api.context.services()`.

Migrations run in one place: `webapp.schema.migrate` (gunicorn's master runs it before
any worker starts, `flask --app wsgi db upgrade` runs it by hand, tests and scripts ask
for it with `create_app(settings, migrate=True)`)."""

from __future__ import annotations

import itertools
import logging
import os
import re
import time
import types
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from flask import Blueprint, Flask, Response, request
from flask.sessions import SecureCookieSessionInterface
from werkzeug.middleware.proxy_fix import ProxyFix
from werkzeug.routing import IntegerConverter

from domain import metrics
from services.catalog import EXTENSION, Services
from verify_api import problems
from verify_api.lane import VerifyLane
from webapp import logs
from webapp.schema import migrate as migrate_schema
from webapp.settings import Settings
from webapp.wiring import Container, container

log = logging.getLogger(__name__)

# Security headers on every response (a small hook rather than flask-talisman, whose
# defaults force HTTPS redirects and session-cookie settings this app has no use for, and
# which adds two hooks per request on the verify path). The pages' scripts and styles are
# files under /static and /docs/assets, so no inline script or style is allowed; Swagger
# UI draws its icons from data: URLs; nothing may frame a page (clickjacking).
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
        "frame-ancestors 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
}
# A client's X-Request-Id is echoed (and logged) only when it looks like an id: past that
# a header of any length and content would land in our logs and answers.
_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")


# Templates and static files belong to the web entrypoint (verify_api); the root serves them.
_WEB = Path(problems.__file__).resolve().parent


def create_app(settings: Settings | None = None, *, migrate: bool = False) -> Flask:
    """The app for `settings`. `migrate=True` migrates the schema first (tests, scripts); a
    served app is migrated by gunicorn's master or `flask --app wsgi db upgrade`."""
    settings = settings or Settings.from_env()
    logs.configure()
    container = Container(settings)  # checks the settings now; builds each member on first use
    if migrate:
        migrate_schema(container.engine)
    app = _App(__name__, static_folder=str(_WEB / "static"), template_folder=str(_WEB / "templates"))
    app.config.update(
        SECRET_KEY=settings.secret_key,
        MAX_CONTENT_LENGTH=settings.max_admin_upload_bytes,
        JSON_AS_ASCII=False,
    )
    app.json.ensure_ascii = False  # type: ignore[attr-defined]
    # Before any blueprint: every <int:…> in our routes is a row id.
    app.url_map.converters["int"] = RowIdConverter
    # Typed here so mypy checks the container against what the blueprints are promised.
    promised: Services = container
    app.extensions[EXTENSION] = promised
    app.extensions["container"] = container
    app.extensions["web_visits"] = container.recent_visits  # no I/O: a client, not a connection
    problems.register(app)

    from verify_api import admin, docs, health, issuing, public, web
    from verify_api.limits import PUBLIC_UPLOAD, bearer_key, client_key, init_limits
    from webapp import cli

    for module in (public, admin, issuing, health, docs, web):
        app.register_blueprint(module.bp)
    cli.register(app)
    wechat = _wechat(app, container)
    _dashboard(app, settings)
    if settings.rate_limits:
        from webapp.limits import RateLimits

        # The public API per IP and per client id; the mini-program's shoppers the same, per
        # IP and per session token. Photo uploads per IP, with their own tighter limit.
        limited: list[tuple[Blueprint, Callable[[], str], str]] = [(public.bp, client_key, PUBLIC_UPLOAD)]
        if wechat is not None:
            limited.append((wechat, bearer_key, "wechat.scan"))
        in_scan = settings.scan_store_url == settings.redis_url
        init_limits(app, RateLimits(settings.redis_url, in_scan_store=in_scan), limited)

    # Cookie sessions for the dashboard's pages only: elsewhere Flask builds no signing
    # serializer per request and nothing sets or reads a session cookie.
    app.session_interface = _DashboardSessions()
    stamp = _Stamp()

    @app.after_request
    def _stamp(resp: Response) -> Response:
        # Stamped here rather than in a before_request hook: one hook less on every request.
        rule = request.url_rule
        resp.headers["X-Request-Id"] = stamp(
            request.environ, request.method, rule.rule if rule is not None else None, resp.status_code
        )
        resp.headers.update(SECURITY_HEADERS)
        return resp

    # The verify path's own WSGI lane (verify_api.lane) in front of Flask, inside the
    # request timer and the proxy fix, so it sees the shopper's address and is timed alike.
    app.wsgi_app = VerifyLane(  # type: ignore[method-assign]
        app.wsgi_app,
        container,
        app.extensions.get("verify_limits"),
        finish=stamp,
        headers=list(SECURITY_HEADERS.items()),
    )
    app.wsgi_app = _Timed(app.wsgi_app)  # type: ignore[method-assign]
    if settings.proxy_count:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=settings.proxy_count, x_proto=settings.proxy_count)  # type: ignore[method-assign]
    return app


class _Stamp:
    """What every answer gets, whichever lane made it: its request id (the client's when
    it looks like one), its access log line and the 5xx count. Returns the request id."""

    def __init__(self) -> None:
        self.ids = itertools.count()
        self.prefix = f"{os.getpid():x}-{uuid.uuid4().hex[:6]}-"
        self.access = logs.request_logger()

    def __call__(self, environ: dict[str, Any], method: str, route: str | None, status: int) -> str:
        given = environ.get("HTTP_X_REQUEST_ID")
        rid = given if given and _REQUEST_ID.fullmatch(given) else f"{self.prefix}{next(self.ids):x}"
        if status >= 500:
            metrics.incr("responses_5xx")
        start = environ.get(_START)
        # The route's template, never the path (a path carries the code); no IP, no client.
        self.access.info(
            "request",
            request_id=rid,
            method=method,
            route=route,
            status=status,
            duration_ms=round((time.perf_counter() - start) * 1000, 2) if start is not None else None,
        )
        return rid


class _App(Flask):
    """Flask, with `ensure_sync` asked once per function rather than per call: Flask asks
    `inspect.iscoroutinefunction` of every hook and the view on every request (six times
    a request here, measured at 8 % of a /healthz request's CPU in process), and the
    answer for a registered function never changes.

    Only plain functions are remembered: a bound method may be made per request (a
    class-based view's, a new instance each time), and remembering those would grow
    without end; they are asked every time, as Flask does."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._sync: dict[Callable[..., Any], Callable[..., Any]] = {}

    def ensure_sync(self, func: Callable[..., Any]) -> Callable[..., Any]:
        if type(func) is not types.FunctionType:
            return super().ensure_sync(func)
        try:
            return self._sync[func]
        except KeyError:
            made = self._sync[func] = super().ensure_sync(func)
            return made


class RowIdConverter(IntegerConverter):
    """`<int:…>` in a route is a row id: at most ten digits, past every INTEGER key. A longer
    number matches no route, so routing answers 404 before any query (SQLite cannot even bind
    a number past 2**63: such a path was a 500). The bound is in the pattern, not a `max`:
    werkzeug counts a rule whose converter refuses the value as matched for its method, so a
    PATCH beside a GET rule answered 405 instead of 404."""

    regex = r"\d{1,10}"


def warm(app: Flask) -> None:
    """Build what serving needs before the first request (gunicorn's post_worker_init);
    embedded, start sending webhook alerts from this process (there is no worker).

    gunicorn.conf.py also serves apps that are not ours (the bench runs its floor app under
    the same config, to compare like with like): those have no container and nothing to
    warm."""
    if "container" not in app.extensions:
        return
    built = container(app)
    built.warm()
    if built.settings.scan_store_url is None:
        built.start_deliverer()


_START = "webapp.start"


class _Timed:
    """Notes when a request arrived, for the request's log line (a WSGI wrapper rather than
    a before_request hook: no Flask hook on the verify path for it)."""

    def __init__(self, wsgi_app: Callable[..., Iterable[bytes]]) -> None:
        self.wsgi_app = wsgi_app

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        environ[_START] = time.perf_counter()
        return self.wsgi_app(environ, start_response)


class _DashboardSessions(SecureCookieSessionInterface):
    """Flask's signed-cookie sessions under /dashboard (its cookie's path), none elsewhere.
    The cookie is Secure when settings say so or the request came over https (behind a
    proxy: PROXY_COUNT lets X-Forwarded-Proto say it)."""

    def open_session(self, app: Flask, request: Any) -> Any:
        if request.path != "/dashboard" and not request.path.startswith("/dashboard/"):
            return None
        return super().open_session(app, request)

    def get_cookie_secure(self, app: Flask) -> bool:
        return bool(app.config["SESSION_COOKIE_SECURE"]) or request.is_secure


def _wechat(app: Flask, container: Container) -> Blueprint | None:
    """The mini-program's blueprint and its WeChat adapters (client, sessions), built on
    first use; skipped when its protocol layer is not installed in this build."""
    try:
        from miniprogram_backend import blueprint
        from webapp import wechat  # noqa: F401 - its protocol layer (wechatpy) is importable
    except ModuleNotFoundError as exc:
        log.warning("WeChat backend disabled: %s", exc)
        return None
    app.extensions[blueprint.EXTENSION] = container.wechat
    app.register_blueprint(blueprint.bp)
    return blueprint.bp


def _dashboard(app: Flask, settings: Settings) -> None:
    """The dashboard's blueprint with its sign-in throttle (webapp.limits.SignInThrottle)."""
    from dashboard import blueprint
    from webapp.limits import SignInThrottle

    blueprint.init_app(
        app, throttle=SignInThrottle(settings.redis_url), secure_cookies=settings.secure_cookies
    )
