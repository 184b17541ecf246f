"""The files of label issuance, as the admin API and the dashboard hand them out: the order
sheet in the layout of BCK's guide (seed 000, figures 14 and 19), the CNCA filing record as
XLSX or CSV, and the printer's code file (CSV, streamed). Every cell passes
`spreadsheet_safe` (no formula runs when a certification body opens a file an
organization's text went into); codes and identity codes are text cells, so a spreadsheet
keeps every digit.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from domain.accounts import Actor
from domain.bulk import Scope
from domain.spreadsheets import spreadsheet_safe

if TYPE_CHECKING:
    from services.issuing import IssuingService

ORDER_SHEET_TITLE = "认证产品防伪追溯标志订单"
ORDER_SHEET_HEADER = (
    "标签编号",
    "证书编号",
    "产品描述",
    "商品名称(产品描述)",
    "实际包装规格",
    "重量规格(千克)",
    "标签规格",
    "单价(元)",
    "订购数量(枚)",
    "总价(元)",
    "起始身份码",
    "结束身份码",
)


def _text(sheet: Any, row: int, col: int, value: Any) -> None:
    cell = sheet.cell(row=row, column=col, value=spreadsheet_safe(value))
    if isinstance(value, str):
        cell.number_format = "@"


def order_sheet_xlsx(order: Mapping[str, Any]) -> bytes:
    """The order sheet: the head (number, organization, address, postcode, contact, phone,
    total) and one row per line with its identity segment."""
    # openpyxl is imported where a sheet is written: ~0.15 s of every process's start.
    from openpyxl import Workbook
    from openpyxl.styles import Alignment, Font

    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = "订单"
    sheet.merge_cells(start_row=1, start_column=1, end_row=1, end_column=12)
    sheet.cell(row=1, column=1, value=ORDER_SHEET_TITLE).font = Font(bold=True, size=14)
    sheet.cell(row=1, column=1).alignment = Alignment(horizontal="center")
    head = [
        (2, 1, "订单编号"),
        (2, 2, order["number"]),
        (2, 4, "企业名称"),
        (2, 5, order["organization"]),
        (3, 1, "发货地址"),
        (3, 2, order["address"] or ""),
        (3, 11, "邮编"),
        (3, 12, order["postcode"] or ""),
        (4, 1, "联系人"),
        (4, 2, order["contact"] or ""),
        (4, 4, "联系电话"),
        (4, 5, order["phone"] or ""),
        (5, 1, "订购总价(元)"),
        (5, 2, order["total_price"]),
    ]
    for r, c, value in head:
        _text(sheet, r, c, value)
    for c, name in enumerate(ORDER_SHEET_HEADER, start=1):
        sheet.cell(row=6, column=c, value=name).font = Font(bold=True)
    for r, line in enumerate(order["lines"], start=7):
        values = (
            line["label_number"],
            order["certificate"],
            line["description"] or line["product"],
            line["trade_name"],
            line["package_spec"],
            line["weight_kg"],
            line["label_spec"],
            line["unit_price"],
            line["quantity"],
            line["total_price"],
            line["identity_start"] or "",
            line["identity_end"] or "",
        )
        for c, value in enumerate(values, start=1):
            _text(sheet, r, c, value)
    for c, width in enumerate((18, 16, 14, 18, 12, 12, 20, 10, 12, 12, 12, 12), start=1):
        sheet.column_dimensions[sheet.cell(row=6, column=c).column_letter].width = width
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def table_xlsx(title: str, header: Sequence[str], rows: Iterable[Sequence[Any]]) -> bytes:
    from openpyxl import Workbook

    book = Workbook(write_only=True)
    sheet = book.create_sheet(title)
    sheet.append(list(header))
    for row in rows:
        sheet.append([spreadsheet_safe(v) for v in row])
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def table_csv(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> bytes:
    """UTF-8 with a byte-order mark: the spreadsheet programs Chinese offices use read it as
    UTF-8 only then."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(header)
    for row in rows:
        writer.writerow([spreadsheet_safe(v) for v in row])
    return ("\ufeff" + out.getvalue()).encode("utf-8")


def order_sheet(issuing: IssuingService, number: str, scope: Scope) -> bytes:
    return order_sheet_xlsx(issuing.order_sheet(number, scope))


def filing(issuing: IssuingService, number: str, scope: Scope, kind: str) -> bytes:
    """The CNCA filing record of an allocated order: `xlsx` or `csv`."""
    records = issuing.filing(number, scope)
    fields = issuing.FILING_FIELDS
    header = [title for _, title in fields]
    rows = [[r[key] for key, _ in fields] for r in records]
    return table_xlsx("备案", header, rows) if kind == "xlsx" else table_csv(header, rows)


def printer_codes_csv(
    issuing: IssuingService, number: str, scope: Scope, actor: Actor | None = None, *, handed_out: bool = True
) -> Iterator[bytes]:
    """The printer's code file (label, identity, code), in chunks; the access is checked
    (and the hand-out audited) before the first chunk is asked for."""
    rows = issuing.printer_codes(number, scope, actor, handed_out=handed_out)

    def chunks() -> Iterator[bytes]:
        yield "\ufefflabel_number,identity_code,code\r\n".encode()
        batch: list[str] = []
        for label, ident, code in rows:
            batch.append(f"{label},{ident},{code}\r\n")  # digits and dashes: nothing to escape
            if len(batch) >= 10_000:
                yield "".join(batch).encode()
                batch = []
        yield "".join(batch).encode()

    return chunks()
