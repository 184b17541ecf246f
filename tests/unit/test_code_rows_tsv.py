"""The load file of an import chunk: the columns themselves, NULL written \\N, and an
identity code LOAD DATA would misread escaped as csv.writer escaped it."""

from __future__ import annotations

from datetime import date

from registry.store import code_rows_tsv


def test_plain_rows_are_written_as_their_columns_with_null_as_backslash_n() -> None:
    rows: list[tuple[int, int, date | None, str | None]] = [
        (12324000000000001, 7, date(2024, 2, 1), "202400000001"),
        (12324000000000002, 7, None, "身份码-Ä 1"),  # not ASCII, a space, a dash
        (12324000000000003, 8, date(2024, 2, 1), None),
        (12324000000000004, 8, date(2023, 12, 31), ""),  # an empty identity is none
        (100012324000000005, 9, None, None),
    ]
    assert code_rows_tsv(rows) == (
        "12324000000000001\t7\t2024-02-01\t202400000001\n"
        "12324000000000002\t7\t\\N\t身份码-Ä 1\n"
        "12324000000000003\t8\t2024-02-01\t\\N\n"
        "12324000000000004\t8\t2023-12-31\t\\N\n"
        "100012324000000005\t9\t\\N\t\\N\n"
    )


def test_an_identity_load_data_would_misread_is_escaped_and_the_others_kept() -> None:
    escaped = {
        "a\tb": "a\\\tb",
        "a\nb": "a\\\nb",
        "a\\b": "a\\\\b",
        'a"b': 'a\\"b',
        "\\N": "\\\\N",  # the text \N, not NULL
        "a\rb": "a\rb",  # read as it is: LOAD DATA's lines end at \n alone
        "a\x00b": "a\x00b",
    }
    for odd, written in escaped.items():
        rows: list[tuple[int, int, date | None, str | None]] = [
            (12324000000000001, 7, date(2024, 2, 1), "plain"),
            (12324000000000002, 7, None, odd),
            (12324000000000003, 7, None, None),
        ]
        assert code_rows_tsv(rows) == (
            f"12324000000000001\t7\t2024-02-01\tplain\n12324000000000002\t7\t\\N\t{written}\n"
            "12324000000000003\t7\t\\N\t\\N\n"
        ), odd


def test_a_chunk_of_one_group_and_day_is_written_as_any_other() -> None:
    # One label group and day: those columns formatted once. Beside a row of another group
    # (the general path), the same lines.
    day = date(2024, 2, 1)
    rows: list[tuple[int, int, date | None, str | None]] = [
        (12324000000000001, 7, day, "202400000001"),
        (12324000000000002, 7, day, None),
        (12324000000000003, 7, day, ""),
    ]
    other: tuple[int, int, date | None, str | None] = (12324000000000004, 8, None, "x")
    assert code_rows_tsv([*rows, other]) == code_rows_tsv(rows) + code_rows_tsv([other])
    assert code_rows_tsv(rows).splitlines()[1] == "12324000000000002\t7\t2024-02-01\t\\N"
