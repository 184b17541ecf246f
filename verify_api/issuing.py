"""The issuance part of the admin API (issue 17): product specs, label orders, allocation,
printer codes, printing losses and the exports. Authenticated like the rest of the admin
API (a bearer token becomes a Scope); what a scope may do is services.issuing's decision."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, g, jsonify, request

from domain.bulk import Scope
from domain.errors import BadInput
from services import issuing_files
from services.sheets import rows_from_file
from verify_api.admin import _authenticate, _rows
from verify_api.context import services
from verify_api.request_input import json_body

bp = Blueprint("issuing", __name__, url_prefix="/api/v1/admin")
bp.before_request(_authenticate)

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def _scope() -> Scope:
    return g.scope


def _upload(field: str) -> bytes:
    if request.mimetype != "multipart/form-data":
        raise BadInput(f"send the file as multipart/form-data in the field '{field}'", code="file_required")
    upload = request.files.get(field)
    if upload is None:
        raise BadInput(f"send the file in the multipart field '{field}'", code="file_required")
    try:
        return upload.read()
    finally:
        upload.close()  # a large part is spooled to a temporary file


def _file(data: bytes, mimetype: str, name: str) -> Response:
    resp = Response(data, mimetype=mimetype)
    resp.headers["Content-Disposition"] = f'attachment; filename="{name}"'
    return resp


@bp.get("/certificates/<number>/quantities")
def quantities(number: str) -> Response:
    return jsonify(services().issuing.quantities(number, _scope()))


@bp.post("/product-specs")
def upsert_specs() -> Response:
    return jsonify(services().issuing.upsert_specs(_rows(), _scope()))


@bp.get("/product-specs")
def list_specs() -> Response:
    return jsonify(services().issuing.list_specs(_scope()))


@bp.post("/product-specs/<int:spec_id>/photos")
def add_photo(spec_id: int) -> tuple[Response, int]:
    return jsonify(services().issuing.add_spec_photo(spec_id, _upload("photo"), _scope())), 201


@bp.get("/product-specs/<int:spec_id>/photos/<int:photo_id>")
def photo(spec_id: int, photo_id: int) -> Response:
    media, data = services().issuing.spec_photo(spec_id, photo_id, _scope())
    return Response(data, mimetype=media)


@bp.get("/orders")
def list_orders() -> Response:
    unknown = set(request.args) - {"status"}
    if unknown:
        raise BadInput(f"unknown query parameters {sorted(unknown)}", code="invalid_query")
    return jsonify(services().issuing.list_orders(_scope(), request.args.get("status")))


@bp.post("/orders")
def create_order() -> tuple[Response, int]:
    return jsonify(services().issuing.create_order(json_body(), _scope())), 201


@bp.get("/orders/<number>")
def order(number: str) -> Response:
    return jsonify(services().issuing.order(number, _scope()))


@bp.put("/orders/<number>")
def update_order(number: str) -> Response:
    return jsonify(services().issuing.update_order(number, json_body(), _scope()))


@bp.post("/orders/<number>/submit")
def submit(number: str) -> Response:
    return jsonify(services().issuing.submit(number, _scope()))


@bp.post("/orders/<number>/review")
def review(number: str) -> Response:
    return jsonify(services().issuing.review(number, json_body(), _scope()))


@bp.post("/orders/<number>/allocate")
def allocate(number: str) -> Response:
    body = json_body() if request.content_length else {}
    return jsonify(services().issuing.allocate(number, body, _scope()))


@bp.post("/orders/<number>/losses")
def losses(number: str) -> Response:
    return jsonify(services().issuing.record_losses(number, json_body(), _scope()))


@bp.post("/orders/<number>/attachments")
def add_attachment(number: str) -> tuple[Response, int]:
    data = _upload("file")
    kind = request.form.get("kind", "other")
    return jsonify(services().issuing.add_attachment(number, kind, data, _scope())), 201


@bp.get("/orders/<number>/attachments/<int:attachment_id>")
def attachment(number: str, attachment_id: int) -> Response:
    media, data = services().issuing.attachment(number, attachment_id, _scope())
    return Response(data, mimetype=media)


@bp.post("/orders/<number>/printer-codes")
def printer_codes_import(number: str) -> Response:
    if request.mimetype == "multipart/form-data":
        data = _upload("file")
        rows: Any = rows_from_file(data)
    else:
        rows = _rows()
    return jsonify(services().issuing.import_printer_codes(number, rows, _scope()).as_dict())


@bp.get("/orders/<number>/printer-codes.csv")
def printer_codes_export(number: str) -> Response:
    chunks = issuing_files.printer_codes_csv(
        services().issuing, number, _scope(), handed_out=request.method != "HEAD"
    )
    resp = Response(chunks, mimetype="text/csv")
    resp.headers["Content-Disposition"] = f'attachment; filename="{number}-codes.csv"'
    return resp


@bp.get("/orders/<number>/uses")
def uses(number: str) -> Response:
    return jsonify(services().issuing.uses(number, _scope()))


@bp.post("/orders/<number>/uses")
def take_into_use(number: str) -> tuple[Response, int]:
    return jsonify(services().issuing.take_into_use(number, json_body(), _scope())), 201


@bp.delete("/orders/<number>/uses/<int:use_id>")
def roll_back_use(number: str, use_id: int) -> Response:
    return jsonify(services().issuing.roll_back_use(number, use_id, _scope()))


@bp.get("/orders/<number>/sheet.xlsx")
def order_sheet(number: str) -> Response:
    return _file(issuing_files.order_sheet(services().issuing, number, _scope()), XLSX, f"{number}.xlsx")


@bp.get("/orders/<number>/filing.xlsx")
def filing_xlsx(number: str) -> Response:
    return _file(
        issuing_files.filing(services().issuing, number, _scope(), "xlsx"), XLSX, f"{number}-filing.xlsx"
    )


@bp.get("/orders/<number>/filing.csv")
def filing_csv(number: str) -> Response:
    return _file(
        issuing_files.filing(services().issuing, number, _scope(), "csv"), "text/csv", f"{number}-filing.csv"
    )


# -- Wuchang raw-grain ledger and inspection reports (issue 17, item 6) ------------------------


@bp.post("/grain-purchases")
def grain_purchases() -> Response:
    """Raw-grain purchases in bulk (JSON rows, or a CSV/XLSX upload in the field `file`)."""
    upload = request.mimetype == "multipart/form-data"
    rows = rows_from_file(_upload("file"), key=None) if upload else _rows()
    return jsonify(services().grain.upsert_purchases(rows, _scope()).as_dict())


@bp.get("/grain-ledger")
def grain_ledger() -> Response:
    return jsonify(services().grain.ledger(_scope(), request.args.get("organization")))


@bp.patch("/grain-ledger")
def grain_yield() -> Response:
    body = json_body()
    if not isinstance(body, dict):
        raise BadInput('send a JSON object: {"milling_yield": ...}', code="invalid_body")
    org = request.args.get("organization")
    return jsonify(services().grain.set_yield(_scope(), org, body))


@bp.post("/batches/<number>/inspection")
def upload_inspection(number: str) -> tuple[Response, int]:
    """The inspection report as multipart: the scan in `report`, its facts as form fields."""
    data = _upload("report")
    fields = {k: request.form.get(k) for k in ("report_number", "laboratory", "result", "inspected_on")}
    return jsonify(services().grain.upload_inspection(number, fields, data, _scope())), 201


@bp.get("/batches/<number>/inspection")
def inspection(number: str) -> Response:
    return jsonify(services().grain.inspection(number, _scope()))


@bp.get("/batches/<number>/inspection/report")
def inspection_report(number: str) -> Response:
    media, data = services().grain.inspection_file(number, _scope())
    ext = {"application/pdf": "pdf", "image/jpeg": "jpg", "image/png": "png"}[media]
    return _file(data, media, f"inspection-{number}.{ext}")
