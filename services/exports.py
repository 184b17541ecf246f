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

import orjson

from domain.bulk import Scope
from domain.scans import FLAG_FILE_COLUMNS
from domain.spreadsheets import spreadsheet_safe
from services.scans import ScanAdminService

MAX_ROWS = 100_000
COLUMNS = FLAG_FILE_COLUMNS
TRUNCATED = f"… more than {MAX_ROWS:,} flags: narrow the filters to export the rest"


def _evidence(text: str | None) -> str:
    """The stored evidence as compact JSON, cut to 2,000 characters.

    Written by orjson: the standard library's compact, non-ASCII writer took 50 µs for a
    velocity flag's twenty scans (3.5 k characters), orjson 7, and a file has thousands of
    rows. Read by the standard library, which keeps every number as written (orjson reads
    integers past 64 bits as floats). orjson writes what `json.dumps(..., ensure_ascii=False,
    separators=(",", ":"))` does but for a float's spelling past 1e16 or below 1e-4 (1e-5 is
    0.00001) and NaN, which JSON has no word for (null); an integer past 64 bits, which it
    refuses, goes the standard library's way."""
    evidence = (json.loads(text) if text else None) or {}
    try:
        return orjson.dumps(evidence).decode()[:2000]
    except orjson.JSONEncodeError:
        return json.dumps(evidence, ensure_ascii=False, separators=(",", ":"))[:2000]


def _row(flag: tuple[Any, ...]) -> list[Any]:
    flag_id, code, rule, severity, status, raised_at, updated_at, note, evidence = flag
    values = [
        flag_id,
        code,
        rule,
        severity,
        status,
        raised_at,
        updated_at,
        note,
        _evidence(evidence),
    ]
    return [spreadsheet_safe(v) for v in values]


class FlagExport:
    def __init__(self, flags: ScanAdminService) -> None:
        self.flags = flags

    def rows(self, scope: Scope, args: dict[str, str]) -> Iterator[list[Any]]:
        """The header, then one row per flag, newest first. The filters are checked and the
        first flags read before the first row is yielded (a bad filter raises)."""
        query = {k: v for k, v in args.items() if k not in ("cursor", "limit", "format")}
        flags = self.flags.export_flags(scope, query, MAX_ROWS + 1)
        return self._rows(flags)

    @staticmethod
    def _rows(flags: Iterator[tuple[Any, ...]]) -> Iterator[list[Any]]:
        yield list(COLUMNS)
        for sent, flag in enumerate(flags):
            if sent == MAX_ROWS:
                yield [TRUNCATED]
                return
            yield _row(flag)

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
        # openpyxl is imported where a sheet is written: ~0.15 s of every process's start.
        from openpyxl import Workbook
        from openpyxl.cell import WriteOnlyCell

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
