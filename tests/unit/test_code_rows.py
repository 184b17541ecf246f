"""Code rows read from a CSV: blank cells are absent fields, on the quick path too."""

from __future__ import annotations

import io

from domain.bulk import BulkResult
from services.admin import CodeIn, _validated
from services.sheets import rows_from_csv


def test_csv_rows_with_and_without_blank_cells() -> None:
    text = (
        "code,identity_code,certificate,product,issued_on,order,package,label_spec\n"
        "012324000000000001,,0123OP2400017,有机大米,2024-02-01,,5kg,\n"
        "012324000000000002,7,0123OP2400017,有机大米,2024-02-01,o-1,5kg,oval\n"
        "012324000000000003,7,0123OP2400017\n"
        "012324000000000004,7,0123OP2400017,有机大米,2024-02-01,o-1,5kg,oval,surplus\n"
    )
    got = list(rows_from_csv(io.StringIO(text)))
    assert got[0] == {
        "code": "012324000000000001",
        "certificate": "0123OP2400017",
        "product": "有机大米",
        "issued_on": "2024-02-01",
        "package": "5kg",
    }
    assert got[1]["label_spec"] == "oval" and len(got[1]) == 8
    assert got[2] == {"code": "012324000000000003", "identity_code": "7", "certificate": "0123OP2400017"}
    assert got[3] == got[1] | {"code": "012324000000000004"}  # a cell past the header is dropped
    result = BulkResult()
    good = _validated(got, CodeIn, "code", result)
    assert [i for i, _ in good] == [0, 1, 3]
    assert [e.row for e in result.rejected] == [2]


def test_a_blank_header_drops_its_column() -> None:
    got = list(rows_from_csv(io.StringIO("code,,product\n012324000000000001,x,有机大米\n")))
    assert got == [{"code": "012324000000000001", "product": "有机大米"}]
