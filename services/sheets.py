"""Uploaded sheets to rows: CSV and XLSX readers with their bounds, and the progress line
of long CLI imports. The admin API, the dashboard and the CLI read files with these; the
use cases take rows: a row the reader cannot read is a `domain.bulk.RowProblem`, rejected
by the service like any bad row.
"""

from __future__ import annotations

import csv
import io
import itertools
import operator
import time
import zipfile
from collections.abc import Iterator
from datetime import date, datetime
from typing import Any, TextIO

from domain.bulk import RowProblem
from domain.errors import BadInput, PayloadTooLarge


def rows_from_csv(
    stream: TextIO | io.TextIOBase | Iterator[str], key: str | None = "code"
) -> Iterator[dict[str, Any] | RowProblem]:
    """A CSV's rows as dicts. A line the csv module refuses (a field over its 128 KiB limit)
    is a rejected row and reading goes on at the next line; only a missing header refuses
    the whole file (before anything is saved)."""
    yield from CsvTable(stream, key)


class CsvTable:
    """A CSV read lazily: row by row as `rows_from_csv` gives them, or in blocks of rows
    (`blocks`) that also give their columns, for a million-row import that checks columns
    rather than rows. The header is read at the first row asked for."""

    def __init__(self, stream: TextIO | io.TextIOBase | Iterator[str], key: str | None = "code") -> None:
        self.reader = csv.reader(stream)
        self.key = key
        self._names: list[str] | None = None

    def names(self) -> list[str]:
        """The header's names, stripped; BadInput without a header (or without `key`)."""
        if self._names is None:
            try:
                header = next(self.reader, None)
            except csv.Error as exc:
                raise BadInput(f"the CSV's header row cannot be read: {exc}", code="invalid_file") from exc
            names = [h.strip() for h in header or []]
            if self.key is not None and self.key not in names:
                raise BadInput(
                    f"the CSV needs a header row with at least a '{self.key}' column", code="invalid_file"
                )
            self._names = names
        return self._names

    def _next(self) -> tuple[str, ...] | RowProblem | None:
        """The next line's cells, a RowProblem for a line csv cannot read, None at the end."""
        try:
            # A tuple, not csv's list: a block keeps 100,000 of them, and the collector stops
            # tracking a tuple of strings once it has seen it; lists it would walk at every
            # collection (the import's reading measured ~60 % slower with the lists kept).
            return tuple(next(self.reader))
        except StopIteration:
            return None
        except csv.Error as exc:
            return self._unreadable(exc)

    def _unreadable(self, exc: csv.Error) -> RowProblem:
        return RowProblem("", "invalid_row", f"line {self.reader.line_num} cannot be read as CSV: {exc}")

    def __iter__(self) -> Iterator[dict[str, Any] | RowProblem]:
        names = self.names()
        plain = "" not in names
        while (values := self._next()) is not None:
            yield _row(names, plain, values)

    def blocks(self, size: int) -> Iterator[CsvBlock]:
        """The rows in blocks of `size` (the last may be shorter)."""
        names = self.names()
        while True:
            lines: list[tuple[str, ...] | RowProblem] = []
            while len(lines) < size:
                want = size - len(lines)
                before = len(lines)
                try:
                    # The lines read in C, no Python call a line (~0.16 s of a million-row
                    # import); extend keeps what it read before a line csv cannot read.
                    lines.extend(map(tuple, itertools.islice(self.reader, want)))
                except csv.Error as exc:
                    lines.append(self._unreadable(exc))
                    continue
                if len(lines) - before < want:
                    break  # the end
            if not lines:
                return
            yield CsvBlock(names, lines)


class CsvBlock:
    """A block of CSV lines: its rows as `rows_from_csv` gives them, made when asked for,
    and its columns when every row is plain."""

    def __init__(self, names: list[str], lines: list[tuple[str, ...] | RowProblem]) -> None:
        self.names = names
        self.lines = lines
        self._rows: list[dict[str, Any] | RowProblem] | None = None

    def __len__(self) -> int:
        return len(self.lines)

    def rows(self) -> list[dict[str, Any] | RowProblem]:
        if self._rows is None:
            plain = "" not in self.names
            self._rows = [_row(self.names, plain, values) for values in self.lines]
        return self._rows

    def columns(self) -> dict[str, list[str]] | None:
        """Each column's cells by its name, when every row holds every column of the header and
        no blank cell (then each row, as a dict, holds exactly these names and cells), and the
        header names each column once; None otherwise."""
        names, lines = self.names, self.lines
        if "" in names or len(set(names)) != len(names):
            return None
        if set(map(type, lines)) != {tuple} or set(map(len, lines)) != {len(names)}:
            return None
        # A pass per column: zip(*lines) would make an iterator per line (GC-tracked, a
        # collection every few hundred), which measured slower than eight passes.
        columns = [list(map(operator.itemgetter(i), lines)) for i in range(len(names))]
        if any("" in column for column in columns):
            return None
        return dict(zip(names, columns, strict=True))


def _row(names: list[str], plain: bool, values: tuple[str, ...] | RowProblem) -> dict[str, Any] | RowProblem:
    # Blank cells are absent fields; pydantic strips whitespace from the rest. Most rows have
    # no blank cell: those are built in one C call (a million-row import).
    if isinstance(values, RowProblem):
        return values
    if plain and "" not in values:
        return dict(zip(names, values, strict=False))
    return {name: value for name, value in zip(names, values, strict=False) if value and name}


def _cell(value: Any) -> Any:
    """A spreadsheet cell as the row models expect it: dates as dates, numbers as text."""
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, int):
        return value
    return str(value).strip()


# XLSX bounds, checked on the zip's directory before openpyxl opens anything: a workbook is
# a zip of XML, and a few KB can unpack to GBs (a bomb), declare a sheet of 17 billion
# cells (openpyxl's read-only mode pads every row to the declared width) or hold shared
# strings that all sit in memory at once. Legitimate files stay far below: a million codes
# make ~35 MB of shared strings; XML compresses 5-20x.
XLSX_MAX_UNPACKED = 512 * 1024 * 1024  # all members together
XLSX_MAX_SHARED_STRINGS = 64 * 1024 * 1024  # xl/sharedStrings.xml, parsed whole into memory
XLSX_MAX_RATIO = 200  # unpacked/packed of any member over 1 MiB (bombs: 1,000x and more)
XLSX_MAX_ROWS = 1_048_576  # Excel's own limit, whatever the sheet declares
XLSX_MAX_COLUMNS = 64  # the code row has 8 fields; columns further right are never read


def _check_xlsx_zip(data: bytes) -> None:
    try:
        members = zipfile.ZipFile(io.BytesIO(data)).infolist()
    except (zipfile.BadZipFile, ValueError) as exc:
        raise BadInput("not a readable XLSX workbook", code="invalid_file") from exc
    # The sizes are the directory's claims; zipfile never unpacks more than a member claims
    # (past it the CRC fails and openpyxl's read raises), so they bound what is unpacked.
    if sum(m.file_size for m in members) > XLSX_MAX_UNPACKED:
        raise PayloadTooLarge(
            f"the workbook unpacks to more than {XLSX_MAX_UNPACKED // 2**20} MiB; split it or send CSV",
            code="xlsx_too_large",
        )
    for m in members:
        if m.filename.lower().endswith("sharedstrings.xml") and m.file_size > XLSX_MAX_SHARED_STRINGS:
            raise PayloadTooLarge(
                f"the workbook's shared strings exceed {XLSX_MAX_SHARED_STRINGS // 2**20} MiB; send CSV",
                code="xlsx_too_large",
            )
        if m.file_size > 2**20 and m.file_size > XLSX_MAX_RATIO * max(m.compress_size, 1):
            raise BadInput(
                f"{m.filename} unpacks {m.file_size // max(m.compress_size, 1):,} times its size: "
                "not a workbook a spreadsheet program writes",
                code="invalid_file",
            )


def rows_from_xlsx(data: bytes, key: str | None = "code") -> Iterator[dict[str, Any] | RowProblem]:
    """The first worksheet's rows as dicts, within the XLSX bounds above. Rows are read as
    they are in the file (the declared dimension is ignored), at most XLSX_MAX_ROWS of them
    and the first XLSX_MAX_COLUMNS columns. A sheet that breaks off mid-way is a rejected
    row there; the rows before it land."""
    from openpyxl import load_workbook

    _check_xlsx_zip(data)
    try:
        book = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises many types for a non-workbook
        raise BadInput("not a readable XLSX workbook", code="invalid_file") from exc
    if not book.worksheets:
        raise BadInput("the workbook has no worksheet", code="invalid_file")
    sheet = book.worksheets[0]
    sheet.reset_dimensions()  # never the declared size: openpyxl pads every row up to it
    rows = sheet.iter_rows(max_row=XLSX_MAX_ROWS, max_col=XLSX_MAX_COLUMNS, values_only=True)
    try:
        header = next(rows, None)
    except Exception as exc:
        raise BadInput("the sheet's first row cannot be read", code="invalid_file") from exc
    if header is None or (key is not None and key not in [str(h).strip() for h in header if h is not None]):
        raise BadInput(f"the sheet needs a header row with at least a '{key}' column", code="invalid_file")
    names = [str(h).strip() if h is not None else "" for h in header]
    seen = 1
    while True:
        try:
            values = next(rows)
        except StopIteration:
            return
        except Exception as exc:  # broken XML mid-sheet: what came before stands
            detail = f"the sheet cannot be read past row {seen}: {type(exc).__name__}"
            yield RowProblem("", "invalid_file", detail)
            return
        seen += 1
        if values is None or values.count(None) == len(values):
            continue
        row = {
            name: _cell(value)
            for name, value in zip(names, values, strict=False)
            if name and value is not None
        }
        if isinstance(row.get("code"), int):
            # Excel keeps 15 significant digits and drops leading zeros: a code stored as a
            # number is already damaged, so say so instead of guessing its digits.
            row["code"] = f"number-cell:{row['code']}"
        for name in ("identity_code", "order", "package", "label_spec", "product", "certificate"):
            if isinstance(row.get(name), int):
                row[name] = str(row[name])
        yield row


# What a spreadsheet program runs as a formula when a cell starts with it (OWASP, "CSV
# Injection"): every CSV or XLSX this service writes passes its cells through here.
class Progress:
    """Prints rows/s to stderr at most twice a second (for long CLI imports)."""

    def __init__(self, out: TextIO, total: int | None = None) -> None:
        self.out = out
        self.total = total
        self.start = time.monotonic()
        self.last = 0.0

    def __call__(self, seen: int, accepted: int) -> None:
        now = time.monotonic()
        if now - self.last < 0.5:
            return
        self.last = now
        rate = seen / max(now - self.start, 1e-9)
        total = f"/{self.total:,}" if self.total else ""
        self.out.write(f"\r{seen:,}{total} rows read, {accepted:,} accepted, {rate:,.0f} rows/s")
        self.out.flush()


def rows_from_file(data: bytes, key: str | None = "code") -> Iterator[dict[str, Any] | RowProblem]:
    """The rows of an uploaded sheet: XLSX when it is a zip (its magic bytes), else UTF-8 CSV
    (a byte-order mark allowed)."""
    if data[:4] == b"PK\x03\x04":
        return rows_from_xlsx(data, key)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise BadInput("the CSV must be UTF-8 encoded", code="invalid_file") from exc
    return rows_from_csv(io.StringIO(text), key)
