"""The dashboard's label issuance pages (issue 17, item 8), over services.issuing.

For an organization: its product specs (with photos of the labelled package), its label
orders (create, edit the lines, submit; an automatic rejection says which product is over
by how much; fix and resubmit), the certified, used and available tonnes of each
certificate product, and the use records of an allocated order (take labels into use by
quantity or by identity range, roll a record back). For a certification body: the orders
on its certificates as a review queue (approve, or reject with a reason), allocation (codes
generated here, or the printer's file imported with its per-row errors), the exports (order
sheet, printer's code file, CNCA filing record) and voiding. The regulator's all scope sees
and may do both sides.

Viewers read; analysts and admins act. What an account may see or change is the service's
decision over its scope (an order outside it is not found); the page only offers the forms
that fit the account's side of the workflow. Every change goes through the same use case as
the admin API and lands in the audit log under the signed-in account; the order's own
history names the account's login.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from flask import Response, abort, flash, redirect, render_template, request, stream_with_context, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from werkzeug.wrappers import Response as BaseResponse
from wtforms import StringField
from wtforms.validators import Length, Optional

from dashboard import nav
from dashboard.auth import current_account, require_role
from dashboard.blueprint import bp
from dashboard.context import services
from domain.accounts import Actor, Role
from domain.bulk import Scope
from domain.china_time import china_today
from domain.errors import DomainError, NotFound
from domain.issuing import ALLOCATABLE, EDITABLE, REVIEWABLE, VOIDABLE, OrderStatus
from services import issuing_files
from services.sheets import rows_from_file

nav.add(
    "dashboard.orders",
    _l("Label orders"),
    Role.VIEWER,
    order=40,
    also=("dashboard.order", "dashboard.order_new", "dashboard.order_edit"),
)
nav.add("dashboard.specs", _l("Product specs"), Role.VIEWER, order=42)
nav.add("dashboard.quantities", _l("Quantities"), Role.VIEWER, order=44)

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
BLANK_LINES = 1  # empty line rows an order form offers beyond the order's own
MAX_FORM_LINES = 50

# The status tabs of the order list: (key, label, statuses).
TABS: tuple[tuple[str, Any, frozenset[str]], ...] = (
    ("all", _l("All"), frozenset()),
    ("drafts", _l("To submit"), frozenset(s.value for s in EDITABLE)),
    ("review", _l("To review"), frozenset(s.value for s in REVIEWABLE)),
    ("allocate", _l("To allocate"), frozenset(s.value for s in ALLOCATABLE)),
    ("allocated", _l("Allocated"), frozenset({OrderStatus.ALLOCATED.value})),
    ("voided", _l("Voided order"), frozenset({OrderStatus.VOIDED.value})),
)


# The printer-file import's per-row problems (services.issuing.import_printer_codes).
IMPORT_PROBLEMS: dict[str, Any] = {
    "invalid_row": _l("Unreadable row"),
    "invalid_identity": _l("Not an identity code"),
    "invalid_code": _l("Not an organic code"),
    "code_body_mismatch": _l("Another body's code"),
    "duplicate_identity": _l("Identity twice in the file"),
    "duplicate_code": _l("Code twice in the file"),
    "stray_identity": _l("Identity outside the segments"),
    "code_taken": _l("Code already issued"),
    "identity_taken": _l("Identity already has a code"),
    "invalid_file": _l("Unreadable file"),
}


# An order's attachments (seed 000: the certificate scan, the signed mark-use agreement).
ATTACHMENT_KINDS: dict[str, Any] = {
    "certificate": _l("Certificate scan"),
    "agreement": _l("Signed mark-use agreement"),
    "other": _l("Other"),
}


@bp.app_template_filter("tonnes")
def tonnes(value: Any) -> str:
    """Tonnes as people read them: three decimals (kilograms), more only where grams count
    ("0.050000" is 0.050, "0.000250" is 0.00025)."""
    if not isinstance(value, str):
        return ""
    try:
        number = Decimal(value)
    except InvalidOperation:
        return value
    kg = number.quantize(Decimal("0.001"))
    return f"{kg:,}" if kg == number else f"{number.normalize():,f}"


class ActionForm(FlaskForm):
    """A button's form: the CSRF token, and whatever the button posts beside it."""


class SpecForm(FlaskForm):
    product = StringField(_l("Certificate product"), validators=[Length(max=240)])
    trade_name = StringField(_l("Trade name"), validators=[Length(max=200)])
    package_spec = StringField(_l("Package spec"), validators=[Length(max=100)])
    weight_kg = StringField(_l("Weight (kg)"), validators=[Length(max=20)])
    label_spec = StringField(_l("Label spec"), validators=[Length(max=100)])


class OrderForm(FlaskForm):
    applicant_code = StringField(_l("Organization code"), validators=[Optional(), Length(max=40)])
    address = StringField(_l("Shipping address"), validators=[Length(max=300)])
    postcode = StringField(_l("Postcode"), validators=[Optional(), Length(max=10)])
    contact = StringField(_l("Contact"), validators=[Length(max=100)])
    phone = StringField(_l("Phone"), validators=[Length(max=40)])
    application = StringField(_l("How marks are applied"), default="affix")


def _who() -> tuple[Scope, Actor]:
    """The account's scope as the use cases take it, named by the account's login (the name
    an order's history records a step under), and the account as the audit log's actor."""
    account = current_account()
    return replace(account.scope, name=account.login), account.actor


def _sides(scope: Scope) -> tuple[bool, bool]:
    """(places orders, certifies) for the forms a page offers: an organization orders on the
    certificates it holds, a body reviews and allocates the orders on its certificates, the
    all scope does both. The service decides each action again."""
    return scope.kind in ("organization", "all"), scope.kind in ("body", "all")


def _acts() -> bool:
    return current_account().may(Role.ANALYST)


def _problem(exc: DomainError) -> None:
    flash(exc.detail, "error")


# -- quantities -----------------------------------------------------------------------------


def _share(product: dict[str, Any]) -> float | None:
    if not product["certified_tonnes"] or float(product["certified_tonnes"]) == 0:
        return None
    return float(product["used_tonnes"]) / float(product["certified_tonnes"])


@bp.get("/quantities")
@require_role(Role.VIEWER)
def quantities() -> str:
    scope, _actor = _who()
    certificates = services().issuing.certificates(scope)
    for cert in certificates:
        for p in cert["products"]:
            p["share"] = _share(p)
    return render_template("dashboard/quantities.html", certificates=certificates)


# -- product specs --------------------------------------------------------------------------


def _photo_ids(spec: dict[str, Any]) -> list[int]:
    return [int(url.rsplit("/", 1)[1]) for url in spec["photos"]]


def _spec_choices(scope: Scope) -> list[tuple[str, str, str]]:
    """(value, certificate, product) of each certificate product the scope may write specs of."""
    return [
        (f"{c['certificate']}|{p['product']}", c["certificate"], p["product"])
        for c in services().issuing.certificates(scope)
        if c["may_order"]
        for p in c["products"]
    ]


@bp.route("/specs", methods=["GET", "POST"])
@require_role(Role.VIEWER)
def specs() -> str | tuple[str, int]:
    scope, actor = _who()
    orders_side, _certifies = _sides(scope)
    form = SpecForm()
    errors: list[str] = []
    status = 200
    if request.method == "POST":
        if not _acts():
            abort(403)
        if not form.validate():
            abort(400)
        certificate, _sep, product = (form.product.data or "").partition("|")
        row = {
            "certificate": certificate,
            "product": product,
            "trade_name": (form.trade_name.data or "").strip(),
            "package_spec": (form.package_spec.data or "").strip(),
            "weight_kg": (form.weight_kg.data or "").strip(),
            "label_spec": (form.label_spec.data or "").strip(),
        }
        result = services().issuing.upsert_specs([row], scope, actor)
        errors = [e["detail"] for e in result["rejected"]]
        photo = request.files.get("photo")
        if not errors and photo is not None and photo.filename:
            spec_id = result["items"][0]["id"]
            try:
                services().issuing.add_spec_photo(spec_id, photo.read(), scope, actor)
            except DomainError as exc:
                errors.append(exc.detail)
            finally:
                photo.close()
        if errors:
            status = 400
        else:
            flash(_("The product spec %(name)s is saved.", name=row["trade_name"]), "success")
            form = SpecForm(formdata=None)
    items = services().issuing.list_specs(scope)["items"]
    for spec in items:
        spec["photo_ids"] = _photo_ids(spec)
    return render_template(
        "dashboard/specs.html",
        specs=items,
        form=form,
        errors=errors,
        choices=_spec_choices(scope) if orders_side else [],
        may_write=orders_side and _acts(),
        photo_form=ActionForm(),
    ), status


@bp.post("/specs/<int:spec_id>/photos")
@require_role(Role.ANALYST)
def spec_photo_add(spec_id: int) -> BaseResponse:
    if not ActionForm().validate():
        abort(400)
    scope, actor = _who()
    photo = request.files.get("photo")
    if photo is None or not photo.filename:
        flash(_("Choose a photo first."), "error")
        return redirect(url_for("dashboard.specs"))
    try:
        services().issuing.add_spec_photo(spec_id, photo.read(), scope, actor)
    except NotFound:
        abort(404)
    except DomainError as exc:
        _problem(exc)
    else:
        flash(_("The photo is added."), "success")
    finally:
        photo.close()
    return redirect(url_for("dashboard.specs"))


@bp.get("/specs/<int:spec_id>/photos/<int:photo_id>")
@require_role(Role.VIEWER)
def spec_photo(spec_id: int, photo_id: int) -> Response:
    scope, _actor = _who()
    try:
        media, data = services().issuing.spec_photo(spec_id, photo_id, scope)
    except DomainError:
        abort(404)
    resp = Response(data, mimetype=media)
    resp.headers["Cache-Control"] = "private, max-age=3600"
    return resp


# -- the order list and the order forms ------------------------------------------------------


@bp.get("/orders")
@require_role(Role.VIEWER)
def orders() -> str:
    scope, _actor = _who()
    orders_side, certifies = _sides(scope)
    items = services().issuing.list_orders(scope, None)["items"]
    counts = {key: sum(1 for o in items if not sts or o["status"] in sts) for key, _label, sts in TABS}
    tab = request.args.get("tab", "")
    if tab not in counts:
        # A body opens on its review queue when something waits there.
        tab = "review" if certifies and not orders_side and counts["review"] else "all"
    wanted = next(sts for key, _label, sts in TABS if key == tab)
    shown = [o for o in items if not wanted or o["status"] in wanted]
    return render_template(
        "dashboard/orders.html",
        orders=shown,
        tabs=TABS,
        tab=tab,
        counts=counts,
        may_order=orders_side and _acts(),
    )


def _whole(text: str) -> int | str:
    """A typed whole number as a number (ASCII digits only: "²".isdigit() is true too); any
    other text goes to the use case as typed, which says what is wrong with it."""
    return int(text) if text.isascii() and text.isdigit() and len(text) <= 12 else text


def _lines_from_form() -> tuple[list[dict[str, Any]], list[dict[str, str]]]:
    """(the order's lines for the use case, every row as typed for the form again). A row
    with neither a spec nor a quantity is an unused blank row."""
    rows: list[dict[str, str]] = []
    for n in range(MAX_FORM_LINES):
        if f"lines-{n}-spec_id" not in request.form:
            break
        rows.append(
            {
                k: (request.form.get(f"lines-{n}-{k}") or "").strip()[:100]
                for k in ("spec_id", "label_spec", "quantity", "unit_price")
            }
        )
    lines: list[dict[str, Any]] = []
    for row in rows:
        if not row["spec_id"] and not row["quantity"]:
            continue
        line: dict[str, Any] = {
            "spec_id": _whole(row["spec_id"]),
            "quantity": _whole(row["quantity"]),
            "unit_price": row["unit_price"] or "0",
        }
        if row["label_spec"]:
            line["label_spec"] = row["label_spec"]
        lines.append(line)
    return lines, rows


def _order_body(form: OrderForm, lines: list[dict[str, Any]]) -> dict[str, Any]:
    body: dict[str, Any] = {
        "address": (form.address.data or "").strip(),
        "contact": (form.contact.data or "").strip(),
        "phone": (form.phone.data or "").strip(),
        "application": form.application.data if form.application.data in ("affix", "print") else "affix",
        "lines": lines,
    }
    if (form.postcode.data or "").strip():
        body["postcode"] = form.postcode.data.strip()
    if (form.applicant_code.data or "").strip():
        body["applicant_code"] = form.applicant_code.data.strip()
    return body


def _order_form(
    form: OrderForm, rows: list[dict[str, str]], error: str | None, number: str | None, status: int
) -> tuple[str, int]:
    scope, _actor = _who()
    specs_by_cert: dict[str, list[dict[str, Any]]] = {}
    for spec in services().issuing.list_specs(scope)["items"]:
        specs_by_cert.setdefault(spec["certificate"], []).append(spec)
    while len(rows) < BLANK_LINES or (rows and any(rows[-1].values()) and len(rows) < MAX_FORM_LINES):
        rows.append({"spec_id": "", "label_spec": "", "quantity": "", "unit_price": ""})
    return render_template(
        "dashboard/order_form.html",
        form=form,
        rows=rows,
        specs_by_cert=specs_by_cert,
        error=error,
        number=number,
    ), status


def _save_order(number: str | None) -> BaseResponse | tuple[str, int]:
    """Create (number None) or edit an order from the posted form; "Add a line" draws the
    form again with one more row; "Save and submit" submits it too."""
    scope, actor = _who()
    form = OrderForm()
    if not form.validate():
        abort(400)
    lines, rows = _lines_from_form()
    if request.form.get("then") == "add_line":
        rows.append({"spec_id": "", "label_spec": "", "quantity": "", "unit_price": ""})
        return _order_form(form, rows, None, number, 200)
    if not lines:
        return _order_form(
            form, rows, _("Add at least one line: a product spec and a quantity."), number, 400
        )
    issuing = services().issuing
    body = _order_body(form, lines)
    try:
        if number is None:
            specs = {s["id"]: s for s in issuing.list_specs(scope)["items"]}
            first = specs.get(lines[0]["spec_id"]) if isinstance(lines[0]["spec_id"], int) else None
            if first is None:
                return _order_form(form, rows, _("Choose a product spec for each line."), number, 400)
            # An order covers one certificate: the one of its first line's spec (the use case
            # refuses a line of another certificate).
            saved = issuing.create_order({**body, "certificate": first["certificate"]}, scope, actor)
            number = saved["number"]
        else:
            saved = issuing.update_order(number, body, scope, actor)
    except NotFound as exc:
        if number is not None and exc.code == "order_not_found":
            abort(404)
        return _order_form(form, rows, exc.detail, number, 400)
    except DomainError as exc:
        return _order_form(form, rows, exc.detail, number, 400)
    if request.form.get("then") == "submit":
        return _submit(number, scope, actor)
    flash(_("Order %(number)s is saved.", number=number), "success")
    return redirect(url_for("dashboard.order", number=number))


@bp.route("/orders/new", methods=["GET", "POST"])
@require_role(Role.ANALYST)
def order_new() -> BaseResponse | str | tuple[str, int]:
    scope, _actor = _who()
    if not _sides(scope)[0]:
        abort(403)  # label orders are placed by the certificate's holder
    if request.method == "POST":
        return _save_order(None)
    return _order_form(OrderForm(), [], None, None, 200)


@bp.route("/orders/<number>/edit", methods=["GET", "POST"])
@require_role(Role.ANALYST)
def order_edit(number: str) -> BaseResponse | str | tuple[str, int]:
    if request.method == "POST":
        return _save_order(number)
    scope, _actor = _who()
    try:
        order = services().issuing.order(number, scope)
    except DomainError:
        abort(404)
    if order["status"] not in {s.value for s in EDITABLE} or not _sides(scope)[0]:
        flash(_("Order %(number)s can no longer be edited.", number=number), "error")
        return redirect(url_for("dashboard.order", number=number))
    form = OrderForm(
        data={
            k: order[k] for k in ("applicant_code", "address", "postcode", "contact", "phone", "application")
        }
    )
    rows = [
        {
            "spec_id": str(line["spec_id"]),
            "label_spec": line["label_spec"],
            "quantity": str(line["quantity"]),
            "unit_price": line["unit_price"],
        }
        for line in order["lines"]
    ]
    return _order_form(form, rows, None, number, 200)


# -- one order ------------------------------------------------------------------------------


def _order_page(number: str, status: int = 200, **extra: Any) -> tuple[str, int]:
    scope, _actor = _who()
    issuing = services().issuing
    try:
        order = issuing.order(number, scope)
    except DomainError:
        abort(404)
    orders_side, certifies = _sides(scope)
    allocated = order["status"] == OrderStatus.ALLOCATED
    uses = issuing.uses(number, scope) if allocated else None
    losses = issuing.losses(number, scope) if allocated or order["status"] == OrderStatus.VOIDED else []
    last = order["history"][-1] if order["history"] else None
    return render_template(
        "dashboard/order.html",
        order=order,
        uses=uses,
        last=last,
        acts=_acts(),
        orders_side=orders_side,
        certifies=certifies,
        editable=order["status"] in {s.value for s in EDITABLE},
        reviewable=order["status"] in {s.value for s in REVIEWABLE},
        allocatable=order["status"] in {s.value for s in ALLOCATABLE},
        voidable=order["status"] in {s.value for s in VOIDABLE} and order["status"] != OrderStatus.VOIDED,
        allocated=allocated,
        losses=losses,
        attachment_kinds=ATTACHMENT_KINDS,
        from_printer=any(line["codes_from"] == "printer" for line in order["lines"]),
        action_form=ActionForm(),
        import_problems=IMPORT_PROBLEMS,
        today=china_today(datetime.now(UTC)).isoformat(),
        **extra,
    ), status


@bp.get("/orders/<number>")
@require_role(Role.VIEWER)
def order(number: str) -> tuple[str, int]:
    return _order_page(number)


def _acted(number: str) -> tuple[Scope, Actor]:
    """The scope and actor of a button's POST, its CSRF token checked."""
    if not ActionForm().validate():
        abort(400)
    return _who()


def _submit(number: str, scope: Scope, actor: Actor) -> BaseResponse:
    try:
        got = services().issuing.submit(number, scope, actor)
    except NotFound:
        abort(404)
    except DomainError as exc:
        _problem(exc)
    else:
        if got["status"] == OrderStatus.AUTO_REJECTED:
            flash(_("Order %(number)s was rejected automatically: see why below.", number=number), "error")
        else:
            flash(_("Order %(number)s is submitted and approved automatically.", number=number), "success")
    return redirect(url_for("dashboard.order", number=number))


@bp.post("/orders/<number>/submit")
@require_role(Role.ANALYST)
def order_submit(number: str) -> BaseResponse:
    scope, actor = _acted(number)
    return _submit(number, scope, actor)


@bp.post("/orders/<number>/review")
@require_role(Role.ANALYST)
def order_review(number: str) -> BaseResponse:
    scope, actor = _acted(number)
    decision = request.form.get("decision", "")
    body = {"decision": decision, "reason": (request.form.get("reason") or "").strip()[:1000] or None}
    try:
        services().issuing.review(number, body, scope, actor)
    except NotFound:
        abort(404)
    except DomainError as exc:
        if exc.code == "invalid_body" and decision == "reject":
            flash(_("A rejection needs a reason: the organization reads it in the history."), "error")
        else:
            _problem(exc)
    else:
        if decision == "approve":
            flash(_("Order %(number)s is approved.", number=number), "success")
        else:
            flash(_("Order %(number)s is rejected; its quantity is returned.", number=number), "success")
    return redirect(url_for("dashboard.order", number=number))


@bp.post("/orders/<number>/allocate")
@require_role(Role.ANALYST)
def order_allocate(number: str) -> BaseResponse:
    scope, actor = _acted(number)
    codes = request.form.get("codes", "generated")
    try:
        services().issuing.allocate(number, {"codes": codes}, scope, actor)
    except NotFound:
        abort(404)
    except DomainError as exc:
        _problem(exc)
    else:
        flash(_("Order %(number)s is allocated.", number=number), "success")
    return redirect(url_for("dashboard.order", number=number))


@bp.post("/orders/<number>/printer-codes")
@require_role(Role.ANALYST)
def order_printer_codes(number: str) -> BaseResponse | tuple[str, int]:
    scope, actor = _acted(number)
    upload = request.files.get("file")
    if upload is None or not upload.filename:
        flash(_("Choose the printer's file first."), "error")
        return redirect(url_for("dashboard.order", number=number))
    try:
        data = upload.read()
    finally:
        upload.close()
    try:
        result = services().issuing.import_printer_codes(number, rows_from_file(data), scope, actor)
    except NotFound:
        abort(404)
    except DomainError as exc:
        _problem(exc)
        return redirect(url_for("dashboard.order", number=number))
    return _order_page(number, 200, imported=result.as_dict())


@bp.post("/orders/<number>/uses")
@require_role(Role.ANALYST)
def order_take_into_use(number: str) -> BaseResponse:
    scope, actor = _acted(number)
    form = request.form
    body: dict[str, Any] = {
        "line": _whole(form.get("line", "")),
        "batch": (form.get("batch") or "").strip()[:60],
        "person": (form.get("person") or "").strip()[:60],
    }
    if form.get("used_on"):
        body["used_on"] = form["used_on"][:10]
    if form.get("mode") == "range":
        body["first_identity"] = (form.get("first_identity") or "").strip()[:9]
        body["last_identity"] = (form.get("last_identity") or "").strip()[:9]
    else:
        body["quantity"] = _whole((form.get("quantity") or "").strip()[:20])
    try:
        use = services().issuing.take_into_use(number, body, scope, actor)
    except NotFound as exc:
        if exc.code == "order_not_found":
            abort(404)
        _problem(exc)
    except DomainError as exc:
        _problem(exc)
    else:
        flash(
            _(
                "%(n)d labels of %(label)s are taken into use (%(first)s–%(last)s).",
                n=use["quantity"],
                label=use["label_number"],
                first=use["first_identity"],
                last=use["last_identity"],
            ),
            "success",
        )
    return redirect(url_for("dashboard.order", number=number, _anchor="uses-h"))


@bp.post("/orders/<number>/uses/<int:use_id>/rollback")
@require_role(Role.ANALYST)
def order_roll_back_use(number: str, use_id: int) -> BaseResponse:
    scope, actor = _acted(number)
    try:
        services().issuing.roll_back_use(number, use_id, scope, actor)
    except NotFound as exc:
        if exc.code == "order_not_found":
            abort(404)
        _problem(exc)
    except DomainError as exc:
        _problem(exc)
    else:
        flash(_("The use record is rolled back; its labels are in stock again."), "success")
    return redirect(url_for("dashboard.order", number=number, _anchor="uses-h"))


@bp.post("/orders/<number>/void")
@require_role(Role.ANALYST)
def order_void(number: str) -> BaseResponse:
    scope, actor = _acted(number)
    reason = (request.form.get("reason") or "").strip()[:500] or None
    try:
        services().issuing.void_order(number, reason, scope, actor)
    except NotFound:
        abort(404)
    except DomainError as exc:
        _problem(exc)
    else:
        flash(
            _(
                "Order %(number)s is voided: its codes verify as voided and its quantity is returned.",
                number=number,
            ),
            "success",
        )
    return redirect(url_for("dashboard.order", number=number))


@bp.post("/orders/<number>/losses")
@require_role(Role.ANALYST)
def order_losses(number: str) -> BaseResponse:
    """Printing losses (印制损耗) the printer reported: their codes verify `voided`."""
    scope, actor = _acted(number)
    text = (request.form.get("identity_codes") or "")[:200_000]
    identities = [x for x in text.replace(",", " ").replace("，", " ").split() if x]
    try:
        got = services().issuing.record_losses(number, {"identity_codes": identities}, scope, actor)
    except NotFound as exc:
        if exc.code == "order_not_found":
            abort(404)
        _problem(exc)
    except DomainError as exc:
        if exc.code == "invalid_body":
            flash(_("Give 9-digit identity codes, separated by spaces, commas or new lines."), "error")
        else:
            _problem(exc)
    else:
        flash(
            _("%(n)d printing losses recorded: their codes verify as voided.", n=got["voided_codes"]),
            "success",
        )
    return redirect(url_for("dashboard.order", number=number, _anchor="lines-h"))


@bp.post("/orders/<number>/attachments")
@require_role(Role.ANALYST)
def order_attachment_add(number: str) -> BaseResponse:
    scope, actor = _acted(number)
    upload = request.files.get("file")
    if upload is None or not upload.filename:
        flash(_("Choose a file first."), "error")
        return redirect(url_for("dashboard.order", number=number, _anchor="attachments-h"))
    try:
        data = upload.read()
    finally:
        upload.close()
    try:
        services().issuing.add_attachment(number, request.form.get("kind", "other"), data, scope, actor)
    except NotFound:
        abort(404)
    except DomainError as exc:
        _problem(exc)
    else:
        flash(_("The attachment is added."), "success")
    return redirect(url_for("dashboard.order", number=number, _anchor="attachments-h"))


@bp.get("/orders/<number>/attachments/<int:attachment_id>")
@require_role(Role.VIEWER)
def order_attachment(number: str, attachment_id: int) -> Response:
    scope, _actor = _who()
    try:
        media, data = services().issuing.attachment(number, attachment_id, scope)
    except DomainError:
        abort(404)
    extension = {"application/pdf": "pdf", "image/jpeg": "jpg", "image/png": "png", "image/gif": "gif"}
    resp = _download(data, media, f"{number}-{attachment_id}.{extension.get(media, 'bmp')}")
    resp.headers["Cache-Control"] = "private, max-age=3600"
    return resp


# -- exports --------------------------------------------------------------------------------


def _download(data: Any, mimetype: str, name: str) -> Response:
    resp = Response(data, mimetype=mimetype)
    resp.headers["Content-Disposition"] = f'attachment; filename="{name}"'
    return resp


@bp.get("/orders/<number>/sheet.xlsx")
@require_role(Role.VIEWER)
def order_sheet(number: str) -> Response:
    scope, _actor = _who()
    try:
        return _download(issuing_files.order_sheet(services().issuing, number, scope), XLSX, f"{number}.xlsx")
    except DomainError:
        abort(404)


@bp.get("/orders/<number>/printer-codes.csv")
@require_role(Role.ANALYST)  # the scratch-off codes themselves: not for viewers
def order_printer_file(number: str) -> Response:
    scope, actor = _who()
    try:
        chunks = issuing_files.printer_codes_csv(
            services().issuing, number, scope, actor, handed_out=request.method != "HEAD"
        )
    except NotFound:
        abort(404)
    except DomainError:
        abort(403)
    return _download(stream_with_context(chunks), "text/csv", f"{number}-codes.csv")


@bp.get("/orders/<number>/filing.<any(xlsx, csv):kind>")
@require_role(Role.VIEWER)
def order_filing(number: str, kind: str) -> Response | BaseResponse:
    scope, _actor = _who()
    try:
        data = issuing_files.filing(services().issuing, number, scope, kind)
    except NotFound:
        abort(404)
    except DomainError as exc:
        _problem(exc)
        return redirect(url_for("dashboard.order", number=number))
    return _download(data, XLSX if kind == "xlsx" else "text/csv", f"{number}-filing.{kind}")
