"""The scan-intelligence use case against fakes (tests/fakes): historical events go
through the same verify as live scans, only for issued codes in the token's scope; flags
are listed and reviewed within the scope, and a review changes the verdict at once."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from domain.access import Owner
from domain.bulk import Scope
from domain.codes import organic_key
from domain.errors import BadInput, NotFound
from domain.verdicts import Verdict
from tests.fakes.house import ALL, House, cert_number, code_row, organic_code, stocked_house

A = organic_code("0123", 1)  # body 0123's certificate
B = organic_code("0456", 1)  # body 0456's


@pytest.fixture
def house() -> House:
    house = stocked_house()
    house.admin.import_codes(
        [code_row(A, cert_number("0123", 17)), code_row(B, cert_number("0456", 18))], ALL
    )
    return house


def body_scope(house: House, code: str) -> Scope:
    return Scope("body", house.registry.bodies[code]["id"], None, code)


def event(house: House, event_id: str, code: str, minutes: int = 0) -> dict[str, Any]:
    at = house.now - timedelta(hours=1) + timedelta(minutes=minutes)
    return {"event_id": event_id, "code": code, "at": at.isoformat(), "client": "shopper-1"}


def owner_of(house: House, code: str) -> Owner:
    return house.registry.code_owners([organic_key(code)])[organic_key(code)]


def test_a_bodys_events_are_imported_in_event_time_order_through_the_verify(house: House) -> None:
    rows = [event(house, "late", A, minutes=30), event(house, "early", A)]
    result = house.scan_admin.import_events(rows, body_scope(house, "0123"))
    assert result.accepted == 2 and not result.rejected
    assert [s.event_id for s in house.ledger.scans[A]] == ["early", "late"]


def test_events_outside_the_scope_never_issued_or_malformed_are_rejected_each(house: House) -> None:
    rows = [
        event(house, "theirs", B),
        event(house, "unissued", organic_code("0123", 999)),
        event(house, "not-a-code", "12"),
        {"event_id": "no-time", "code": A},
    ]
    result = house.scan_admin.import_events(rows, body_scope(house, "0123"))
    assert {e.key: e.code for e in result.rejected} == {
        "theirs": "forbidden",
        "unissued": "code_not_found",
        "not-a-code": "invalid_code",
        "no-time": "invalid_row",
    }
    assert result.accepted == 0 and house.ledger.scans == {}


def test_a_review_within_scope_changes_the_verdict_at_once(house: House) -> None:
    flag_id = house.archive.add_flag(A, "impossible_travel", "suspicious", owner_of(house, A))
    house.ledger.raise_flag(A, "impossible_travel", "suspicious", house.now)
    assert house.answer(A).verdict is Verdict.SUSPICIOUS
    with pytest.raises(NotFound):  # another body's token learns nothing of the flag
        house.scan_admin.review_flag(flag_id, {"status": "dismissed"}, body_scope(house, "0456"))
    assert house.answer(A).verdict is Verdict.SUSPICIOUS
    house.scan_admin.review_flag(
        flag_id, {"status": "dismissed", "note": "one family"}, body_scope(house, "0123")
    )
    assert house.archive.flags[flag_id]["status"] == "dismissed"
    assert house.answer(A).verdict is Verdict.GENUINE


def test_a_scope_lists_only_its_own_flags(house: House) -> None:
    house.archive.add_flag(A, "velocity", "warn", owner_of(house, A))
    house.archive.add_flag(B, "velocity", "warn", owner_of(house, B))
    listed = house.scan_admin.list_flags(body_scope(house, "0123"), {})
    assert [i["code"] for i in listed["items"]] == [A]
    assert len(house.scan_admin.list_flags(ALL, {})["items"]) == 2


@pytest.mark.parametrize(
    ("args", "code"),
    [
        ({"limit": "0"}, "invalid_limit"),
        ({"limit": "٣"}, "invalid_limit"),  # a digit, but not an ASCII one
        ({"since": ""}, "invalid_since"),
        ({"rule": "gut_feeling"}, "invalid_rule"),
        ({"status": "closed"}, "invalid_status"),
    ],
)
def test_a_filter_given_is_a_filter_checked(house: House, args: dict[str, str], code: str) -> None:
    with pytest.raises(BadInput) as refused:
        house.scan_admin.list_flags(ALL, args)
    assert refused.value.code == code
