"""The dashboard's own pages: signing in and out, the language, the flag queue with its
bulk review, accounts (invite, disable) and the audit log.

Views read the request, call a use case with the signed-in account's scope and draw the
answer; what is visible or allowed is the services' decision (a flag outside the scope is
not found, an account outside an admin's scope is not theirs to change).
"""

from __future__ import annotations

from datetime import datetime, time, timedelta
from typing import Any
from urllib.parse import urlsplit

from flask import Response, abort, flash, redirect, render_template, request, session, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user, login_user, logout_user
from werkzeug.wrappers import Response as BaseResponse

from dashboard import labels, nav
from dashboard.auth import SessionUser, client_ip, current_account, require_role
from dashboard.blueprint import bp
from dashboard.context import services, throttle
from dashboard.forms import (
    AccountActionForm,
    InviteForm,
    ReviewForm,
    SetPasswordForm,
    SignInForm,
    SignOutForm,
)
from dashboard.i18n import LANGUAGES
from domain.accounts import Role
from domain.china_time import CHINA
from domain.errors import BadInput, DomainError
from domain.scans import FlagRule
from services.accounts import normalize_login

labels.register(bp)
nav.add("dashboard.flags", _l("Flags"), Role.VIEWER, order=20, also=("dashboard.flag",))
nav.add("dashboard.lookup", _l("Code lookup"), Role.VIEWER, order=30)
nav.add("dashboard.users", _l("Accounts"), Role.ADMIN, order=80)
nav.add("dashboard.audit", _l("Audit log"), Role.ADMIN, order=90)

PAGE_SIZE = 50


@bp.app_context_processor
def _layout() -> dict[str, Any]:
    """What the layout draws on every dashboard page: the navigation for the account, the
    sign-out form, the languages."""
    from flask import request as req

    if not req.blueprint or not req.blueprint.startswith("dashboard"):
        return {}
    signed_in = current_user.is_authenticated
    account = current_account() if signed_in else None
    scope_name = ""
    if account is not None and not account.scope.is_all:
        scope_name = (
            services().accounts.scope_names([account.scope]).get((account.scope.kind, account.scope.id), "")
        )
    return {
        "account": account,
        "scope_name": scope_name,
        "nav_entries": nav.visible(account) if account is not None else [],
        "sign_out_form": SignOutForm() if signed_in else None,
        "languages": LANGUAGES,
        "lang": session.get("lang", "zh"),
    }


def _safe_next(target: str | None) -> str:
    """Only a dashboard path of this site: an open redirect would hand a signed-in session
    to another site's page."""
    if target:
        parts = urlsplit(target)
        if not parts.scheme and not parts.netloc and target.startswith("/dashboard") and "\\" not in target:
            return target
    return url_for("dashboard.index")


@bp.errorhandler(403)
def _forbidden(_exc: Exception) -> tuple[str, int]:
    return render_template("dashboard/error.html", status=403, message=_("Your role may not do this.")), 403


@bp.errorhandler(404)
def _not_found(_exc: Exception) -> tuple[str, int]:
    return render_template(
        "dashboard/error.html", status=404, message=_("Nothing here, or not in your scope.")
    ), 404


@bp.errorhandler(400)
def _bad_request(exc: Exception) -> tuple[str, int]:
    # A form without a valid CSRF token (expired page, another site's form) lands here too.
    return render_template(
        "dashboard/error.html",
        status=400,
        message=_("The form expired or was not ours. Go back and try again."),
    ), 400


# -- signing in and out -------------------------------------------------------------------


@bp.route("/login", methods=["GET", "POST"])
def login() -> BaseResponse | str | tuple[str, int]:
    form = SignInForm()
    if request.method == "GET":
        if current_user.is_authenticated:
            return redirect(_safe_next(request.args.get("next")))
        form.next.data = request.args.get("next", "")
        return render_template("dashboard/login.html", form=form)
    if not form.validate_on_submit():
        return render_template("dashboard/login.html", form=form), 400
    try:
        # Counted under the login as stored: "139 1234 5678" and "13912345678" are one account.
        login_key = normalize_login(form.login.data or "")
    except BadInput:
        login_key = (form.login.data or "").strip().lower()
    ip = client_ip()
    wait = throttle().retry_after(login_key, ip)
    if wait is not None:
        error = _(
            "Too many failed sign-ins. Try again in %(minutes)d minutes.", minutes=max(1, -(-wait // 60))
        )
        resp = Response(render_template("dashboard/login.html", form=form, error=error), status=429)
        resp.headers["Retry-After"] = str(wait)
        return resp
    account = services().accounts.authenticate(form.login.data or "", form.password.data or "")
    if account is None:
        throttle().failed(login_key, ip)
        error = _("That email or phone and password do not match an active account.")
        return render_template("dashboard/login.html", form=form, error=error), 401
    # A fresh session for the signed-in account (no identifier carried over from before).
    lang = session.get("lang")
    session.clear()
    if lang:
        session["lang"] = lang
    login_user(SessionUser(account))
    return redirect(_safe_next(form.next.data))


@bp.post("/logout")
def logout() -> BaseResponse:
    lang = session.get("lang")
    logout_user()
    session.clear()
    if lang:
        session["lang"] = lang
    flash(_("You are signed out."), "info")
    return redirect(url_for("dashboard.login"))


@bp.get("/lang/<code>")
def language(code: str) -> BaseResponse:
    if code not in LANGUAGES:
        abort(404)
    session["lang"] = code
    return redirect(_safe_next(request.args.get("next")))


@bp.get("/")
@require_role(Role.VIEWER)
def index() -> BaseResponse:
    first = nav.visible(current_account())
    return redirect(url_for(first[0].endpoint if first else "dashboard.flags"))


# -- the flag queue -----------------------------------------------------------------------

_FILTERS = ("rule", "severity", "status", "certificate", "product", "province", "since", "until")


def _day_start(text: str, name: str, *, next_day: bool = False) -> str:
    """A China calendar day from the period filter, as the UTC instant it starts (the day
    after it for `until`, which includes its day)."""
    try:
        day = datetime.strptime(text, "%Y-%m-%d").date()
    except ValueError as exc:
        raise BadInput(
            _("%(name)s must be a date like 2026-12-31", name=name), code=f"invalid_{name}"
        ) from exc
    if next_day:
        day += timedelta(days=1)
    return datetime.combine(day, time.min, tzinfo=CHINA).isoformat()


def _queue_args(args: Any) -> tuple[dict[str, str], dict[str, str]]:
    """(the filters as the page shows them, the arguments of ScanAdminService.list_flags)."""
    shown = {name: (args.get(name) or "").strip()[:100] for name in _FILTERS}
    query = {k: v for k, v in shown.items() if v and k not in ("since", "until")}
    if shown["since"]:
        query["since"] = _day_start(shown["since"], "since")
    if shown["until"]:
        query["until"] = _day_start(shown["until"], "until", next_day=True)
    query["limit"] = str(PAGE_SIZE)
    if args.get("cursor"):
        query["cursor"] = args["cursor"][:200]
    return shown, query


@bp.get("/flags")
@require_role(Role.VIEWER)
def flags() -> str | tuple[str, int]:
    account = current_account()
    shown, query = _queue_args(request.args)
    error = None
    try:
        page = services().scan_admin.list_flags(account.scope, query)
    except DomainError as exc:
        page, error = {"items": [], "next": None}, exc.detail
    form = ReviewForm()
    form.next.data = request.full_path
    page_args = {k: v for k, v in shown.items() if v}
    return render_template(
        "dashboard/flags.html",
        page=page,
        filters=shown,
        page_args=page_args,
        first_page=not request.args.get("cursor"),
        rules=[r.value for r in FlagRule],
        form=form,
        may_review=account.may(Role.ANALYST),
        error=error,
    ), (400 if error else 200)


@bp.post("/flags/review")
@require_role(Role.ANALYST)
def review() -> BaseResponse:
    form = ReviewForm()
    if not form.validate():
        flash(_("Tick at least one flag, and keep the note under 1,000 characters."), "error")
        return redirect(_safe_next(form.next.data))
    account = current_account()
    result = services().scan_admin.review_flags(
        form.ids.data or [],
        form.action.data,
        (form.note.data or "").strip() or None,
        account.scope,
        account.actor,
    )
    if result.accepted:
        flash(
            _("%(n)d flags marked %(status)s.", n=result.accepted, status=labels.STATUSES[form.action.data]),
            "success",
        )
    if result.rejected:
        flash(
            _("%(n)d flags could not be reviewed (not found in your scope).", n=len(result.rejected)), "error"
        )
    return redirect(_safe_next(form.next.data))


# -- accounts -----------------------------------------------------------------------------


@bp.route("/users", methods=["GET", "POST"])
@require_role(Role.ADMIN)
def users() -> BaseResponse | str | tuple[str, int]:
    admin = current_account()
    form = InviteForm()
    invite_link = None
    status = 200
    if request.method == "POST":
        if form.validate():
            try:
                invitation = services().accounts.invite(
                    admin,
                    form.login.data or "",
                    form.name.data or "",
                    form.role.data,
                    form.scope_kind.data,
                    form.target.data,
                )
            except DomainError as exc:
                form.login.errors = [*form.login.errors, exc.detail]
                status = 400
            else:
                invite_link = url_for("dashboard.accept_invite", token=invitation.token, _external=True)
                form = InviteForm(formdata=None)
        else:
            status = 400
    accounts = services().accounts.users(admin)
    names = services().accounts.scope_names([a.scope for a in accounts])
    return render_template(
        "dashboard/users.html",
        form=form,
        accounts=accounts,
        scope_names=names,
        invite_link=invite_link,
        action_form=AccountActionForm(),
    ), status


@bp.post("/users/<int:user_id>/<any(disable, enable):action>")
@require_role(Role.ADMIN)
def set_disabled(user_id: int, action: str) -> BaseResponse:
    form = AccountActionForm()
    if not form.validate():
        abort(400)
    try:
        changed = services().accounts.set_disabled(current_account(), user_id, action == "disable")
    except DomainError as exc:
        if exc.code == "user_not_found":
            abort(404)
        flash(exc.detail, "error")
    else:
        message = _("%(login)s is disabled.") if action == "disable" else _("%(login)s is enabled.")
        flash(message % {"login": changed.login}, "success")
    return redirect(url_for("dashboard.users"))


@bp.route("/invite/<token>", methods=["GET", "POST"])
def accept_invite(token: str) -> BaseResponse | str | tuple[str, int]:
    invited = services().accounts.invitation(token[:100])
    if invited is None:
        return render_template(
            "dashboard/error.html", status=404, message=_("This invite link is used or expired.")
        ), 404
    form = SetPasswordForm()
    if request.method == "POST" and form.validate():
        account = services().accounts.accept_invite(token[:100], form.password.data or "")
        session.clear()
        login_user(SessionUser(account))
        return redirect(url_for("dashboard.index"))
    status = 400 if request.method == "POST" else 200
    return render_template("dashboard/invite.html", form=form, invited=invited), status


@bp.get("/audit")
@require_role(Role.ADMIN)
def audit() -> str:
    before = request.args.get("before", "")
    before_id = int(before) if before.isdigit() else None
    entries = services().audit.entries(current_account().scope, limit=PAGE_SIZE, before_id=before_id)
    older = entries[-1]["id"] if len(entries) == PAGE_SIZE else None
    return render_template("dashboard/audit.html", entries=entries, older=older)


# -- a flag's case, a report's photo, code lookup -----------------------------------------


@bp.get("/flags/<int:flag_id>")
@require_role(Role.VIEWER)
def flag(flag_id: int) -> str:
    account = current_account()
    try:
        case = services().cases.flag_case(flag_id, account.scope)
    except DomainError:
        abort(404)
    for point in case["route"]:
        point["when"] = labels.china_time(point["at"])
    form = ReviewForm()
    form.next.data = url_for("dashboard.flag", flag_id=flag_id)
    return render_template("dashboard/flag.html", case=case, form=form, may_review=account.may(Role.ANALYST))


@bp.get("/reports/<int:report_id>/photo")
@require_role(Role.VIEWER)
def report_photo(report_id: int) -> Response:
    try:
        photo, media_type = services().cases.report_photo(report_id, current_account().scope)
    except DomainError:
        abort(404)
    resp = Response(photo, mimetype=media_type)
    # Evidence of a signed-in scope: never kept by a shared cache.
    resp.headers["Cache-Control"] = "private, max-age=3600"
    resp.headers["Content-Disposition"] = f'inline; filename="report-{report_id}"'
    return resp


@bp.get("/lookup")
@require_role(Role.VIEWER)
def lookup() -> str | tuple[str, int]:
    raw = (request.args.get("code") or "").strip()[:200]
    result, error, status = None, None, 200
    if raw:
        try:
            result = services().cases.lookup(raw, current_account().scope)
        except BadInput:
            error, status = (
                _("This is not a code: give the 17 or 18 digits of an organic code, or a BQ code."),
                400,
            )
        except DomainError:
            error, status = _("No code %(code)s in your scope.", code=raw), 404
    return render_template("dashboard/lookup.html", code=raw, result=result, error=error), status
