"""The import's column-wise fast path (`_valid_in_place`) against the row-by-row validation
it stands in for (`_validated` with CodeIn): on generated chunks, when the fast path says a
chunk is valid, the row-by-row path rejects nothing and yields the same values; when it is
not sure, it changes nothing (the chunk then goes row by row, as before)."""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from domain.bulk import BulkResult
from services.admin import CodeIn, _valid_in_place, _validated

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


@st.composite
def _chunks(draw: st.DrawFn) -> list[dict[str, Any]]:
    optional = draw(st.lists(st.sampled_from(sorted(_FIELDS)), unique=True, max_size=4))
    shared = {name: draw(_FIELDS[name]) for name in optional}
    product = draw(st.one_of(st.just("有机大米"), _text))
    certificate = draw(_certificates)
    rows = []
    for _ in range(draw(st.integers(1, 6))):
        row = {"code": draw(_codes), "certificate": certificate, "product": product, **shared}
        if "identity_code" in row:
            row["identity_code"] = draw(_identity)
        if draw(st.integers(0, 9)) == 0:  # now and then a row of another shape
            row.pop(draw(st.sampled_from(sorted(row))))
        rows.append(row)
    return rows


@settings(max_examples=400, deadline=None)
@given(_chunks())
def test_the_fast_path_agrees_with_row_by_row_validation(chunk: list[dict[str, Any]]) -> None:
    before = copy.deepcopy(chunk)
    result = BulkResult()
    slow = _validated(copy.deepcopy(chunk), CodeIn, "code", result)
    if _valid_in_place(chunk):
        assert not result.rejected
        assert [m for _, m in slow] == chunk
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
    assert _valid_in_place(rows)
    assert rows[0]["issued_on"].isoformat() == "2026-02-01"


def test_a_row_with_spaces_or_an_unknown_column_goes_row_by_row() -> None:
    good = {"code": "012326000000000001", "certificate": "0123OP2600017", "product": "p"}
    assert not _valid_in_place([good, {**good, "code": " 012326000000000002"}])
    assert not _valid_in_place([{**good, "colour": "red"}])
    assert not _valid_in_place([good, {"code": "012326000000000002", "certificate": "0123OP2600017"}])
