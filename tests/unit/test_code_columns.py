"""The import's column-wise fast path (`_valid_in_place`) against the row-by-row validation
it stands in for (`_validated` with CodeIn): on generated chunks, when the fast path says a
chunk is valid, the row-by-row path rejects nothing and yields the same values; when it is
not sure, it changes nothing (the chunk then goes row by row, as before)."""

from __future__ import annotations

import copy
import csv
import io
import pickle
from types import MappingProxyType
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from domain.bulk import BulkResult
from services.admin import _PER_ROW, CodeIn, Lines, _checked_columns, _code_field, _validated
from services.sheets import CsvTable, rows_from_csv
from tests.fakes.house import ALL, cert_number, code_row, organic_code, stocked_house

_SPACE = st.sampled_from(["", " ", "\t", "\u3000", "\x1c"])


def _around(core: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    # Mostly the clean value, sometimes wrapped in whitespace of several kinds.
    return st.one_of(core, st.tuples(_SPACE, core, _SPACE).map("".join))


_codes = _around(
    st.one_of(
        st.from_regex(r"\A[0-9]{17,18}\Z"),
        st.from_regex(r"\A[0-9]{15,19}\Z"),
        st.text("0123456789０１٣a", min_size=16, max_size=19),
    )
)
_certificates = _around(st.sampled_from(["0123OP2600017", "0123op2600017", "F12OP2600001-2", "0123OP26", ""]))
_text = _around(st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=40))
_days = _around(st.sampled_from(["2026-02-01", "2026-2-1", "2026-02-30", "20260201", "1 Feb", ""]))
_identity = _around(st.text("0123456789AB-", max_size=26))

_FIELDS: dict[str, st.SearchStrategy[Any]] = {
    "identity_code": _identity,
    "issued_on": _days,
    "order": _around(st.text("0123456789-", max_size=34)),
    "package": _text,
    "label_spec": _text,
    "extra": _text,
}


_CLEAN = {
    "identity_code": "2026000001",
    "issued_on": "2026-02-01",
    "order": "20260201-000",
    "package": "5kg",
    "label_spec": "25*16mm oval",
}
_MESSY: dict[str, st.SearchStrategy[Any]] = {
    "code": _codes,
    "certificate": _certificates,
    "product": _text,
    **_FIELDS,
}


@st.composite
def _chunks(draw: st.DrawFn) -> list[dict[str, Any]]:
    """Mostly clean chunks with now and then one odd cell (the cases that could part the
    two paths), or a row of another shape."""
    optional = draw(st.lists(st.sampled_from(sorted(_CLEAN)), unique=True))
    rows = [
        {
            "code": f"0123{26:02d}{draw(st.integers(0, 10**12 - 1)):012d}",
            "certificate": "0123OP2600017",
            "product": "有机大米",
            **{name: _CLEAN[name] for name in optional},
        }
        for _ in range(draw(st.integers(1, 6)))
    ]
    for _ in range(draw(st.integers(0, 2))):
        row = draw(st.sampled_from(rows))
        name = draw(st.sampled_from(sorted(_MESSY)))
        row[name] = draw(_MESSY[name])
    if draw(st.integers(0, 9)) == 0:
        row = draw(st.sampled_from(rows))
        row.pop(draw(st.sampled_from(sorted(row))))
    return rows


@settings(max_examples=400, deadline=None)
@given(_chunks())
def test_the_fast_path_agrees_with_row_by_row_validation(chunk: list[dict[str, Any]]) -> None:
    before = copy.deepcopy(chunk)
    result = BulkResult()
    slow = _validated(copy.deepcopy(chunk), CodeIn, "code", result)
    columns = _checked_columns(chunk)
    if columns is not None:
        assert not result.rejected
        assert [m for _, m in slow] == columns.apply(chunk)
        assert [i for i, _ in slow] == list(range(len(chunk)))
    else:
        assert chunk == before


def test_a_csv_chunk_of_good_rows_takes_the_fast_path() -> None:
    # Fails if the fast path stops applying to the common CSV shape (the import's rate).
    rows: list[dict[str, Any]] = [
        {
            "code": f"01232600000000000{i}",
            "identity_code": f"2026000000{i}",
            "certificate": "0123OP2600017",
            "product": "有机大米",
            "issued_on": "2026-02-01",
            "order": "20260201-000",
            "package": "5kg",
            "label_spec": "25*16mm oval",
        }
        for i in range(10)
    ]
    columns = _checked_columns(rows)
    assert columns is not None
    assert columns.apply(rows)[0]["issued_on"].isoformat() == "2026-02-01"


def test_a_row_with_spaces_or_an_unknown_column_goes_row_by_row() -> None:
    good = {"code": "012326000000000001", "certificate": "0123OP2600017", "product": "p"}
    assert _checked_columns([good, {**good, "code": " 012326000000000002"}]) is None
    assert _checked_columns([{**good, "colour": "red"}]) is None
    assert _checked_columns([good, {"code": "012326000000000002", "certificate": "0123OP2600017"}]) is None


def test_whole_chunks_land_as_the_per_row_loop_lands_them() -> None:
    # The same rows as dicts (the column paths) and as read-only mappings (which the column
    # paths leave to the per-row loop): the same codes saved, the same rows refused.
    cert = cert_number("0123", 17)
    day = {"issued_on": "2026-02-01", "order": "O-1", "package": "5kg"}
    rows = [code_row(organic_code("0123", i), cert, **day) for i in range(4)]  # makes the group
    rows += [code_row(organic_code("0123", i), cert, **day) for i in range(4, 7)]
    rows += [code_row(organic_code("0456", 7), cert, **day)]  # another body's prefix
    rows += [code_row(organic_code("0123", i), cert, identity_code=f"id{i}", **day) for i in range(8, 12)]
    rows += [code_row(organic_code("0123", 12), cert, **day), code_row("12326000000000013", cert, **day)]
    rows += [code_row("45626000000000014", cert, **day), code_row(organic_code("0123", 15), cert, **day)]
    rows += [code_row(organic_code("0123", i), cert, **{**day, "order": f"O-{i}"}) for i in range(16, 20)]
    rows += [code_row(organic_code("0123", i), cert, **{**day, "package": " 5kg "}) for i in range(20, 24)]
    # Whole chunks of one group not made yet: refused (an unknown certificate; an order of
    # another certificate), and made (a new package), as the per-row loop refuses and makes.
    rows += [code_row(organic_code("0123", i), cert_number("0123", 99), **day) for i in range(24, 28)]
    rows += [code_row(organic_code("0456", i), cert_number("0456", 18), **day) for i in range(28, 32)]
    rows += [code_row(organic_code("0123", i), cert, **{**day, "package": "10kg"}) for i in range(32, 36)]
    outcomes = []
    for as_given in (dict, MappingProxyType):
        house = stocked_house()
        result = house.admin.import_codes([as_given(copy.deepcopy(r)) for r in rows], ALL, chunk=4)
        refused = sorted((e.row, e.key, e.code, e.detail) for e in result.rejected)
        outcomes.append((result.accepted, refused, dict(house.registry.codes)))
    assert outcomes[0] == outcomes[1]
    assert [r[:3] for r in outcomes[0][1]] == [
        (7, organic_code("0456", 7), "code_body_mismatch"),
        (14, "45626000000000014", "code_body_mismatch"),
        *((i, organic_code("0123", i), "unknown_certificate") for i in range(24, 28)),
        *((i, organic_code("0456", i), "order_certificate_mismatch") for i in range(28, 32)),
    ]
    assert outcomes[0][0] == 36 - 2 - 8


@st.composite
def _csv_texts(draw: st.DrawFn) -> str:
    """A CSV of code rows as a file would hold it: a header of known (sometimes blank,
    repeated or unknown) names, rows of any width with now and then a blank or odd cell,
    and now and then a line the csv module cannot read."""
    names = ["code", "certificate", "product", *draw(st.lists(st.sampled_from(sorted(_FIELDS)), unique=True))]
    if draw(st.integers(0, 9)) == 0:
        names.insert(draw(st.integers(0, len(names))), draw(st.sampled_from(["", "code", "product"])))
    lines = []
    for chunk in draw(st.lists(_chunks(), min_size=1, max_size=3)):
        for row in chunk:
            cells = [str(row.get(name, "")) for name in names]
            if draw(st.integers(0, 9)) == 0:
                cells = cells[: draw(st.integers(0, len(cells)))] + draw(st.lists(_text, max_size=2))
            lines.append(cells)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(names)
    writer.writerows(lines)
    text = out.getvalue()
    if draw(st.integers(0, 9)) == 0:
        # A field past the csv module's limit: that line is a RowProblem.
        text += '012326000000000001,"' + "x" * (csv.field_size_limit() + 1) + '"\n'
    return text


@settings(max_examples=300, deadline=None)
@given(_csv_texts(), st.integers(1, 7))
def test_csv_blocks_give_the_rows_and_the_columns_of_their_rows(text: str, size: int) -> None:
    # The CLI's blocks: the same rows as rows_from_csv, and the columns the dict path finds
    # (or None where it finds none).
    rows = list(rows_from_csv(io.StringIO(text)))
    blocks = list(CsvTable(io.StringIO(text)).blocks(size))
    assert [row for block in blocks for row in block.rows()] == rows
    for block in blocks:
        fresh = CsvTable(io.StringIO(text))  # rows not yet made: the columns come from the lines
        same = next(b for i, b in enumerate(fresh.blocks(size)) if i == blocks.index(block))
        got = _checked_columns(same)
        # Never other columns than the rows give; None where the dict path may find some is
        # safe (a header naming a column twice: the block goes row by row).
        if got is not None:
            assert got == _checked_columns(copy.deepcopy(block.rows()))


def test_a_csv_imports_through_its_columns_as_through_its_rows() -> None:
    # The CLI's path (CsvTable: columns, no dict per row) and rows_from_csv's dicts land the
    # same codes and refuse the same rows with the same messages.
    cert = cert_number("0123", 17)
    head = "code,identity_code,certificate,product,issued_on,order,package,label_spec\n"
    line = "{code},{ident},{cert},有机大米,2026-02-01,{order},5kg,oval\n"
    text = head + "".join(
        line.format(code=organic_code("0123", i), ident=f"id{i}", cert=cert, order=f"O-{i // 4}")
        for i in range(12)
    )
    text += line.format(code=organic_code("0456", 12), ident="x", cert=cert, order="O-3")  # wrong body
    text += line.format(code=organic_code("0123", 13), ident="", cert=cert, order="O-3")  # blank cell
    text += line.format(code=organic_code("0123", 14), ident="y", cert=cert, order="O-3")
    text += line.format(code="0123", ident="z", cert=cert, order="O-3")  # too short
    text += "".join(
        line.format(code=organic_code("0123", i), ident="", cert=cert_number("0123", 99), order="O-4")
        for i in range(16, 20)
    )
    first = next(CsvTable(io.StringIO(text)).blocks(4))
    assert _checked_columns(first) is not None and first._rows is None  # no dict was made
    outcomes = []
    for rows in (CsvTable(io.StringIO(text)), rows_from_csv(io.StringIO(text))):
        house = stocked_house()
        result = house.admin.import_codes(rows, ALL, chunk=4)
        refused = sorted((e.row, e.key, e.code, e.detail) for e in result.rejected)
        outcomes.append((result.accepted, refused, dict(house.registry.codes)))
    assert outcomes[0] == outcomes[1]
    assert outcomes[0][0] == 14
    assert [r[:3] for r in outcomes[0][1]] == [
        (12, organic_code("0456", 12), "code_body_mismatch"),
        (15, "0123", "invalid_code"),
        *((i, organic_code("0123", i), "unknown_certificate") for i in range(16, 20)),
    ]


@settings(max_examples=400, deadline=None)
@given(
    st.lists(_codes, min_size=1, max_size=6),
    st.lists(
        st.one_of(_identity, _text, st.text(" \u00a0\u2028\x85ab", max_size=26)), min_size=1, max_size=6
    ),
)
def test_a_columns_quick_check_never_passes_what_the_model_would_change_or_refuse(
    codes: list[str], identities: list[str]
) -> None:
    # The per-row columns' quick checks (C passes) may refuse what the model accepts, never
    # accept what it refuses or would change (then the chunk would land unchecked values).
    for name, column in (("code", codes), ("identity_code", identities)):
        if _PER_ROW[name](column):
            assert _code_field(name).validate_python(column) == column


@settings(max_examples=300, deadline=None)
@given(st.lists(st.text(st.characters(codec="utf-8"), max_size=8), max_size=6))
def test_strings_cross_to_a_writer_process_as_they_were(strings: list[str]) -> None:
    # Lines crosses pickled as one joined string where it can: the writer gets the same list.
    got = pickle.loads(pickle.dumps(Lines(strings)))
    assert got == strings and type(got) is list
