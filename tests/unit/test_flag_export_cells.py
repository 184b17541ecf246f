"""A flag file's cells (services/exports.py): the stored evidence written as compact JSON,
the same text the standard library writes for what our rules store, and numbers kept as
written."""

from __future__ import annotations

import json

from services.exports import _evidence, _row

SCAN = {
    "event_id": "e0123456789abcdef0123",
    "at": "2026-12-01T02:30:00.123Z",
    "city": "杭州市",
    "province": "浙江省",
    "place_from": "gps",
    "scanner": "ab12cd34",
    "verified": False,
}
VELOCITY = {"window": "10m", "scanners": 3, "networks": 2, "limit": 10, "km": 1.25, "scans": [SCAN] * 3}


def test_the_evidence_cell_is_the_stored_evidence_as_compact_json() -> None:
    stored = json.dumps(VELOCITY, ensure_ascii=False)  # as registry.scans writes it
    assert _evidence(stored) == json.dumps(VELOCITY, ensure_ascii=False, separators=(",", ":"))
    assert _evidence(None) == _evidence("") == _evidence("null") == "{}"
    assert _evidence('{"n": 123456789012345678901234567890}') == '{"n":123456789012345678901234567890}'
    long = json.dumps({"scans": [SCAN] * 40}, ensure_ascii=False)
    assert len(_evidence(long)) == 2000


def test_a_row_is_the_flag_in_the_files_columns_and_safe() -> None:
    raised = "2026-12-01T02:30:00Z"
    row = _row((7, "100126000010000001", "velocity", "warn", "open", raised, raised, "=1+1", "{}"))
    assert row == [
        7,
        "100126000010000001",
        "velocity",
        "warn",
        "open",
        "2026-12-01T02:30:00Z",
        "2026-12-01T02:30:00Z",
        "'=1+1",
        "{}",
    ]
