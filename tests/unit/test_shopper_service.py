"""The shopper's own data against fakes (tests/fakes): a report reaches the code's brand
as evidence under the reporter's hash, never their id; a shopper reads and erases their
own history and no one else's."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from domain.errors import BadInput
from domain.scans import PastCheck
from tests.fakes.house import House, client_hash, organic_code

CODE = organic_code("0123", 1)


def test_a_report_is_evidence_on_the_codes_flag_under_the_reporters_hash() -> None:
    house = House()
    receipt = house.shoppers.report("openid-1", CODE, "印刷模糊", "某超市", 30.27491, 120.15515, None, None)
    flag = house.archive.flags[receipt.flag_id]
    assert flag["code"] == CODE and flag["rule"] == "shopper_report"
    evidence = flag["evidence"]["reports"][0]
    assert evidence["report_id"] == receipt.report_id and evidence["channel"] == "wechat"
    assert (evidence["city"], evidence["province"]) == ("杭州市", "浙江省")
    assert house.located == [(30.27, 120.16)]  # placed from a rounded point
    hashed = client_hash("openid-1")
    assert hashed is not None and evidence["reporter"] == hashed[:8]
    assert house.archive.reports[receipt.report_id]["client_hash"] == hashed
    assert "openid-1" not in repr(house.archive.reports) + repr(house.archive.flags)


def test_a_second_report_joins_the_same_flag() -> None:
    house = House()
    first = house.shoppers.report("openid-1", CODE, "x", None, None, None, None, None)
    second = house.shoppers.report("web:visitor", CODE, None, "店", None, None, None, None, channel="web")
    assert first.flag_id == second.flag_id and first.report_id != second.report_id
    reports = house.archive.flags[first.flag_id]["evidence"]["reports"]
    assert [r["channel"] for r in reports] == ["wechat", "web"]


def test_a_report_must_name_a_code_from_the_label() -> None:
    with pytest.raises(BadInput) as refused:
        House().shoppers.report("openid-1", "12345", "x", None, None, None, None, None)
    assert refused.value.code == "invalid_code"


def test_a_shopper_reads_and_erases_only_their_own_history() -> None:
    house = House()
    mine = PastCheck(CODE, datetime(2026, 3, 1, tzinfo=UTC), "wechat", "genuine", "杭州市")
    house.archive.checks[client_hash("openid-1") or ""] = [mine]
    assert house.shoppers.history("openid-1") == [mine]
    assert house.shoppers.history("openid-2") == []
    assert house.shoppers.erase("openid-2") == 0
    assert house.shoppers.erase("openid-1") == 1
    assert house.shoppers.history("openid-1") == []
