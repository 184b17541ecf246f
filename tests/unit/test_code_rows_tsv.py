"""The load file of an import chunk: formatted directly, byte for byte what csv.writer
writes for LOAD DATA, and left to csv.writer when an identity code needs escaping."""

from __future__ import annotations

import csv
import io
from datetime import date

from registry.store import code_rows_tsv


def _csv_writer(rows: list[tuple[int, int, date | None, str | None]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, delimiter="\t", quoting=csv.QUOTE_NONE, escapechar="\\", lineterminator="\n")
    writer.writerows(rows)
    return out.getvalue()


def test_plain_rows_are_written_as_csv_writer_writes_them() -> None:
    rows: list[tuple[int, int, date | None, str | None]] = [
        (12324000000000001, 7, date(2024, 2, 1), "202400000001"),
        (12324000000000002, 7, None, "身份码-Ä 1"),  # not ASCII, a space, a dash
        (12324000000000003, 8, date(2024, 2, 1), None),
        (12324000000000004, 8, date(2023, 12, 31), ""),
        (100012324000000005, 9, None, None),
    ]
    assert code_rows_tsv(rows) == _csv_writer(rows)


def test_an_identity_csv_writer_escapes_is_left_to_it() -> None:
    for odd in ("a\tb", "a\nb", "a\rb", "a\\b", 'a"b', "a\x00b"):
        rows: list[tuple[int, int, date | None, str | None]] = [
            (12324000000000001, 7, date(2024, 2, 1), "plain"),
            (12324000000000002, 7, date(2024, 2, 1), odd),
        ]
        assert code_rows_tsv(rows) is None, odd
