"""The flag list as a file: CSV (streamed, page by page) or XLSX (openpyxl's write-only
workbook), with the same filters and scope as the list itself, every text cell made safe
for spreadsheets (domain.spreadsheets: a cell starting with = + - @, a tab or a carriage
return is shown, never run). Bounded: at most MAX_ROWS flags; past that the file ends with
a row saying so (narrow the filters)."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from typing import Any

from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell

from domain.bulk import Scope
from domain.spreadsheets import spreadsheet_safe
from services.scans import ScanAdminService

MAX_ROWS = 100_000
PAGE = 500
COLUMNS = ("id", "code", "rule", "severity", "status", "raised_at", "updated_at", "note", "evidence")
TRUNCATED = f"… more than {MAX_ROWS:,} flags: narrow the filters to export the rest"


def _row(item: dict[str, Any]) -> list[Any]:
    evidence = json.dumps(item.get("evidence") or {}, ensure_ascii=False, separators=(",", ":"))
    values = [item.get(c) for c in COLUMNS[:-1]] + [evidence[:2000]]
    return [spreadsheet_safe(v) for v in values]


class FlagExport:
    def __init__(self, flags: ScanAdminService) -> None:
        self.flags = flags

    def rows(self, scope: Scope, args: dict[str, str]) -> Iterator[list[Any]]:
        """The header, then one row per flag, newest first. The first page is read (and the
        filters checked: a bad one raises) before the first row is yielded."""
        query = {k: v for k, v in args.items() if k not in ("cursor", "limit", "format")}
        page = self.flags.list_flags(scope, {**query, "limit": str(PAGE)})
        return self._rows(scope, query, page)

    def _rows(self, scope: Scope, query: dict[str, str], page: dict[str, Any]) -> Iterator[list[Any]]:
        yield list(COLUMNS)
        sent = 0
        while True:
            for item in page["items"]:
                if sent == MAX_ROWS:
                    yield [TRUNCATED]
                    return
                yield _row(item)
                sent += 1
            if not page["next"]:
                return
            page = self.flags.list_flags(scope, {**query, "limit": str(PAGE), "cursor": page["next"]})

    def csv(self, scope: Scope, args: dict[str, str]) -> Iterator[bytes]:
        """UTF-8 with a byte order mark (Excel then reads the Chinese right), streamed."""
        rows = self.rows(scope, args)

        def stream() -> Iterator[bytes]:
            out = io.StringIO()
            writer = csv.writer(out)
            yield "\ufeff".encode()
            for i, row in enumerate(rows):
                writer.writerow(row)
                if i % 200 == 0:
                    yield out.getvalue().encode()
                    out.seek(0)
                    out.truncate()
            yield out.getvalue().encode()

        return stream()

    def xlsx(self, scope: Scope, args: dict[str, str]) -> bytes:
        """One sheet; text cells are typed as text, so even an unneutralized formula
        would be shown, not run."""
        rows = self.rows(scope, args)
        book = Workbook(write_only=True)
        sheet = book.create_sheet("flags")
        for row in rows:
            cells = []
            for value in row:
                cell = WriteOnlyCell(sheet, value=value)
                if isinstance(value, str):
                    cell.data_type = "s"
                cells.append(cell)
            sheet.append(cells)
        out = io.BytesIO()
        book.save(out)
        return out.getvalue()
