"""The dashboard's exports, evidence packs and webhook alerts (issue 16, items 5 and 6):
the flag queue's filtered list as CSV or XLSX, one flag's evidence pack as a PDF, and an
organization's webhooks with their delivery log.

Analysts and admins of an organization see its webhooks and the log; admins change them
(create, pause, rotate the secret, delete; each change in the audit log). The regulator's
all-scope admin names the organization. A certification body has no webhooks. What is
visible or allowed is the services' decision, as everywhere in the dashboard.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from flask import (
    Response,
    abort,
    flash,
    redirect,
    render_template,
    request,
    session,
    stream_with_context,
    url_for,
)
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from werkzeug.wrappers import Response as BaseResponse
from wtforms import BooleanField, IntegerField, SelectField, SelectMultipleField, StringField
from wtforms.validators import DataRequired, Length, NumberRange, Optional

from dashboard import nav
from dashboard.auth import current_account, require_role
from dashboard.blueprint import bp
from dashboard.context import services
from dashboard.views import _queue_args
from domain.accounts import Role
from domain.errors import DomainError
from domain.scans import FlagRule

nav.add("dashboard.webhooks", _l("Webhooks"), Role.ANALYST, order=70)

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def _attachment(resp: Response, name: str) -> Response:
    resp.headers["Content-Disposition"] = f'attachment; filename="{name}"'
    return resp


# -- exports and evidence packs -----------------------------------------------------------


@bp.get("/flags/export.<any(csv, xlsx):kind>")
@require_role(Role.VIEWER)
def export_flags(kind: str) -> Response:
    """The queue's filtered list (the same filters, the whole list, not one page)."""
    _shown, query = _queue_args(request.args)
    query.pop("limit", None)
    query.pop("cursor", None)
    scope = current_account().scope
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M")
    try:
        if kind == "csv":
            body = services().exports.csv(scope, query)
            resp = Response(stream_with_context(body), content_type="text/csv; charset=utf-8")
        else:
            resp = Response(services().exports.xlsx(scope, query), mimetype=XLSX)
    except DomainError as exc:
        abort(400, exc.detail)
    return _attachment(resp, f"flags-{stamp}.{kind}")


@bp.get("/flags/<int:flag_id>/evidence.pdf")
@require_role(Role.VIEWER)
def evidence_pack(flag_id: int) -> Response:
    try:
        name, pdf = services().evidence.pdf(flag_id, current_account().scope)
    except DomainError:
        abort(404)
    return _attachment(Response(pdf, mimetype="application/pdf"), name)


# -- webhooks -------------------------------------------------------------------------------


class WebhookForm(FlaskForm):
    url = StringField(_l("Receiver URL"), validators=[DataRequired(), Length(min=8, max=2000)])
    description = StringField(_l("Description"), validators=[Optional(), Length(max=200)])
    rules = SelectMultipleField(_l("Rules (none ticked: every rule)"), choices=[r.value for r in FlagRule])
    min_severity = SelectField(_l("Lowest severity"), choices=["suspicious", "warn"], default="suspicious")
    organization_id = IntegerField(_l("Organization ID"), validators=[Optional(), NumberRange(min=1)])


class WebhookActionForm(FlaskForm):
    active = BooleanField()


def _alerts_scope() -> Any:
    account = current_account()
    if account.scope.kind == "body":
        abort(404)  # a certification body has no webhooks
    return account


# A new secret is shown on the page the form's POST redirects to (Post/Redirect/Get: a reload
# does not add the webhook again nor rotate its secret again). It rides to that page in the
# signed session cookie (HttpOnly, SameSite, Secure over TLS), which the page's GET takes it
# out of: shown once, as before, and not kept.
_SHOWN_ONCE = "webhook_shown_once"


def _show_once(webhook_id: int, secret: str) -> BaseResponse:
    session[_SHOWN_ONCE] = [webhook_id, secret]
    return redirect(url_for("dashboard.webhooks"), code=303)


@bp.route("/webhooks", methods=["GET", "POST"])
@require_role(Role.ANALYST)
def webhooks() -> BaseResponse | str | tuple[str, int]:
    account = _alerts_scope()
    alerts = services().alerts
    form = WebhookForm()
    secret = None
    status = 200
    if request.method == "GET":
        shown = session.pop(_SHOWN_ONCE, None)
        if isinstance(shown, list) and len(shown) == 2:
            secret = (int(shown[0]), str(shown[1]))
    else:
        if not account.may(Role.ADMIN):
            abort(403)
        if form.validate():
            org = account.scope.id if account.scope.kind == "organization" else form.organization_id.data
            body = {
                "url": (form.url.data or "").strip(),
                "description": (form.description.data or "").strip(),
                "rules": form.rules.data or [],
                "min_severity": form.min_severity.data,
                "organization_id": org,
            }
            try:
                made = alerts.create_webhook(body, account.scope, account.actor)
            except DomainError as exc:
                form.url.errors = [*form.url.errors, exc.detail]
                status = 400
            else:
                return _show_once(int(made["id"]), str(made["secret"]))
        else:
            status = 400
    return _page(account, form, secret), status


def _page(account: Any, form: WebhookForm, secret: tuple[int, str] | None) -> str:
    alerts = services().alerts
    return render_template(
        "dashboard/webhooks.html",
        form=form,
        hooks=alerts.list_webhooks(account.scope)["items"],
        log=alerts.deliveries(account.scope, limit=20)["items"],
        secret=secret,
        may_change=account.may(Role.ADMIN),
        all_scope=account.scope.is_all,
        action_form=WebhookActionForm(),
    )


@bp.post("/webhooks/<int:webhook_id>/<any(pause, resume, rotate, delete):action>")
@require_role(Role.ADMIN)
def webhook_action(webhook_id: int, action: str) -> BaseResponse:
    account = _alerts_scope()
    if not WebhookActionForm().validate():
        abort(400)
    alerts = services().alerts
    try:
        if action == "delete":
            alerts.delete_webhook(webhook_id, account.scope, account.actor)
            flash(_("The webhook is deleted."), "success")
        elif action == "rotate":
            change = {"rotate_secret": True}
            _before, after = alerts.update_webhook(webhook_id, change, account.scope, account.actor)
            return _show_once(webhook_id, str(after["secret"]))
        else:
            alerts.update_webhook(webhook_id, {"active": action == "resume"}, account.scope, account.actor)
            flash(
                _("The webhook is paused.") if action == "pause" else _("The webhook is active."), "success"
            )
    except DomainError:
        abort(404)
    return redirect(url_for("dashboard.webhooks"))


@bp.get("/webhooks/<int:webhook_id>/deliveries")
@require_role(Role.ANALYST)
def webhooks_deliveries(webhook_id: int) -> str:
    account = _alerts_scope()
    try:
        hook = services().alerts.get_webhook(webhook_id, account.scope)
        log = services().alerts.deliveries(account.scope, webhook_id, limit=100)["items"]
    except DomainError:
        abort(404)
    return render_template("dashboard/webhook_deliveries.html", hook=hook, log=log)
