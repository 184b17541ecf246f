"""The admin API for certification bodies, brands and regulators (../shared/CONTRACT.md).

The blueprint authenticates (a bearer token becomes a Scope) and nothing more: what a scope
may read or write is decided by the services, with domain.access."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, Response, g, jsonify, request, stream_with_context

from domain.bulk import Scope
from domain.errors import BadInput
from services.admin import ImportStopped
from services.sheets import rows_from_file
from verify_api.context import services
from verify_api.problems import problem
from verify_api.request_input import bearer_token, json_body

bp = Blueprint("admin", __name__, url_prefix="/api/v1/admin")

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"

MAX_ROWS_JSON = 100_000


@bp.before_request
def _authenticate() -> Response | None:
    scope = services().admin.authenticate(bearer_token())
    if scope is None:
        return problem(
            401,
            "unauthorized",
            "a valid bearer token is required",
            headers={"WWW-Authenticate": 'Bearer realm="admin"'},
        )
    g.scope = scope
    return None


def _scope() -> Scope:
    return g.scope


def _rows() -> list[Any]:
    body = json_body()
    if isinstance(body, dict):
        body = [body]
    if not isinstance(body, list):
        raise BadInput("send a JSON array of rows", code="invalid_body")
    if len(body) > MAX_ROWS_JSON:
        raise BadInput(
            f"at most {MAX_ROWS_JSON} rows per call; use the CSV upload or the CLI for more",
            code="too_many_rows",
        )
    return body


@bp.post("/bodies")
def bodies() -> Response:
    return jsonify(services().admin.upsert_bodies(_rows(), _scope()).as_dict())


@bp.post("/certificates")
def certificates() -> Response:
    return jsonify(services().admin.upsert_certificates(_rows(), _scope()).as_dict())


@bp.patch("/certificates/<number>")
def certificate_status(number: str) -> Response:
    return jsonify(services().admin.change_certificate_status(number, json_body(), _scope()))


@bp.post("/codes")
def codes() -> Response:
    admin = services().admin
    if request.mimetype == "multipart/form-data":
        upload = request.files.get("file")
        if upload is None:
            raise BadInput("send the CSV or XLSX file in the multipart field 'file'", code="file_required")
        data = upload.read()
        rows: Any = rows_from_file(data)
    else:
        rows = _rows()
    try:
        return jsonify(admin.import_codes(rows, _scope()).as_dict())
    except ImportStopped as exc:
        # Part landed: the problem says exactly what (accepted, rejected, rows_read).
        headers = {"Retry-After": str(exc.retry_after_s)} if exc.status >= 500 else None
        return problem(exc.status, exc.code, exc.detail, headers=headers, **exc.extra())


@bp.post("/orders/<number>/void")
def void_order(number: str) -> Response:
    reason = None
    if request.content_length:
        body = json_body()
        reason = body.get("reason") if isinstance(body, dict) else None
        if reason is not None and not isinstance(reason, str):
            raise BadInput("reason must be a string", code="invalid_body")
    return jsonify(services().issuing.void_order(number, reason, _scope()))


@bp.post("/batches")
def batches() -> Response:
    return jsonify(services().admin.upsert_batch(json_body(), _scope()))


@bp.post("/batches/<number>/activate")
def activate(number: str) -> Response:
    return jsonify(services().admin.activate_batch(number, _scope()))


@bp.post("/scans")
def import_scans() -> Response:
    return jsonify(services().scan_admin.import_events(_rows(), _scope()).as_dict())


@bp.get("/flags")
def flags() -> Response:
    return jsonify(services().scan_admin.list_flags(_scope(), request.args.to_dict()))


@bp.get("/flags/export")
def export_flags() -> Response:
    """The filtered flag list as a file: CSV streamed, XLSX built (both bounded)."""
    args = request.args.to_dict()
    kind = args.pop("format", "csv")
    exports = services().exports
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M")
    if kind == "csv":
        body = exports.csv(_scope(), args)  # filters checked here, before the stream starts
        resp = Response(stream_with_context(body), mimetype="text/csv")
        resp.headers["Content-Type"] = "text/csv; charset=utf-8"
        name = f"flags-{stamp}.csv"
    elif kind == "xlsx":
        resp = Response(exports.xlsx(_scope(), args), mimetype=XLSX)
        name = f"flags-{stamp}.xlsx"
    else:
        raise BadInput("format must be csv or xlsx", code="invalid_format")
    resp.headers["Content-Disposition"] = f'attachment; filename="{name}"'
    return resp


@bp.get("/flags/<int:flag_id>/evidence.pdf")
def evidence_pack(flag_id: int) -> Response:
    name, pdf = services().evidence.pdf(flag_id, _scope())
    resp = Response(pdf, mimetype="application/pdf")
    resp.headers["Content-Disposition"] = f'attachment; filename="{name}"'
    return resp


@bp.patch("/flags/<int:flag_id>")
def review_flag(flag_id: int) -> Response:
    return jsonify(services().scan_admin.review_flag(flag_id, json_body(), _scope()))


@bp.get("/tokens")
def tokens() -> Response:
    return jsonify(services().admin.list_tokens(_scope()))


@bp.delete("/tokens/<int:token_id>")
def revoke_token(token_id: int) -> Response:
    return jsonify(services().admin.revoke_token(token_id, _scope()))


# -- webhook alerts (services/alerts.py) ------------------------------------------------------


@bp.get("/webhooks")
def webhooks() -> Response:
    return jsonify(services().alerts.list_webhooks(_scope()))


@bp.post("/webhooks")
def create_webhook() -> tuple[Response, int]:
    return jsonify(services().alerts.create_webhook(json_body(), _scope())), 201


@bp.get("/webhooks/<int:webhook_id>")
def webhook(webhook_id: int) -> Response:
    return jsonify(services().alerts.get_webhook(webhook_id, _scope()))


@bp.patch("/webhooks/<int:webhook_id>")
def update_webhook(webhook_id: int) -> Response:
    _before, after = services().alerts.update_webhook(webhook_id, json_body(), _scope())
    return jsonify(after)


@bp.delete("/webhooks/<int:webhook_id>")
def delete_webhook(webhook_id: int) -> Response:
    return jsonify(services().alerts.delete_webhook(webhook_id, _scope()))


@bp.get("/webhooks/<int:webhook_id>/deliveries")
def webhook_deliveries(webhook_id: int) -> Response:
    raw = request.args.get("limit", "100")
    if not raw.isascii() or not raw.isdigit() or not 1 <= int(raw) <= 500:
        raise BadInput("limit must be a whole number from 1 to 500", code="invalid_limit")
    return jsonify(services().alerts.deliveries(_scope(), webhook_id, int(raw)))
