"""The admin use cases against fakes of the registry and the caches: who may write what,
what each bad row says, and that every change reaches the caches."""

from __future__ import annotations

import pytest

from domain.bulk import RowProblem, Scope
from domain.codes import organic_key
from domain.errors import Forbidden, NotFound, Unavailable
from tests.fakes.house import ALL, House, cert_number, code_row, organic_code, stocked_house


@pytest.fixture
def house() -> House:
    return stocked_house()


def _body_scope(house: House, code: str) -> Scope:
    return Scope("body", house.registry.bodies[code]["id"], None, code)


def test_an_import_saves_good_rows_and_names_each_bad_one(house: House) -> None:
    cert = cert_number("0123", 17)
    result = house.admin.import_codes(
        [
            code_row(organic_code("0123", 1), cert),
            code_row("12345", cert),
            code_row(organic_code("0123", 2), cert_number("0123", 99)),
            RowProblem("", "invalid_row", "line 5 cannot be read as CSV"),
        ],
        ALL,
    )
    assert result.accepted == 1
    assert sorted((e.row, e.code) for e in result.rejected) == [
        (1, "invalid_code"),
        (2, "unknown_certificate"),
        (3, "invalid_row"),
    ]
    assert organic_key(organic_code("0123", 1)) in house.registry.codes


def test_an_import_rejects_a_code_of_another_body_per_row(house: House) -> None:
    house.admin.import_codes([code_row(organic_code("0456", 7), cert_number("0456", 18))], ALL)
    result = house.admin.import_codes(
        [
            code_row(organic_code("0123", 1), cert_number("0123", 17)),
            code_row(organic_code("0123", 2), cert_number("0456", 18)),  # another body's certificate
            code_row(organic_code("0456", 8), cert_number("0123", 17)),  # another body's prefix
        ],
        _body_scope(house, "0123"),
    )
    assert result.accepted == 1
    assert [(e.row, e.code) for e in result.rejected] == [(1, "forbidden"), (2, "code_body_mismatch")]


def test_a_body_never_takes_over_a_code_another_body_owns(house: House) -> None:
    taken = organic_code("0456", 7)
    house.admin.import_codes([code_row(taken, cert_number("0456", 18))], ALL)
    group_before = house.registry.codes[organic_key(taken)][0]
    # The code is 0456's; body 0123 cannot move it, even naming a certificate of its own.
    result = house.admin.import_codes([code_row(taken, cert_number("0456", 18))], _body_scope(house, "0123"))
    assert result.accepted == 0 and result.rejected[0].code == "forbidden"
    assert house.registry.codes[organic_key(taken)][0] == group_before


def test_an_orders_number_belongs_to_its_first_certificate(house: House) -> None:
    house.admin.import_codes([code_row(organic_code("0123", 1), cert_number("0123", 17), order="O-1")], ALL)
    result = house.admin.import_codes(
        [code_row(organic_code("0456", 1), cert_number("0456", 18), order="O-1")], ALL
    )
    assert result.accepted == 0 and result.rejected[0].code == "order_certificate_mismatch"


def test_an_imports_codes_enter_the_filter_before_they_are_saved(house: House) -> None:
    code = organic_code("0123", 1)
    house.filters.fail = True
    with pytest.raises(Unavailable):
        house.admin.import_codes([code_row(code, cert_number("0123", 17))], ALL)
    assert organic_key(code) not in house.registry.codes  # the filter could not hear of it: not saved


def test_an_import_moves_the_generations_and_ends_its_in_flight_mark(house: House) -> None:
    before = dict(house.generations.counts)
    house.admin.import_codes([code_row(organic_code("0123", 1), cert_number("0123", 17))], ALL)
    # At its start (cached records and absences from before retired) and at its end.
    assert house.generations.counts["codes"] == before["codes"] + 2
    assert house.filters.in_flight == {}


def test_a_bulk_file_import_goes_through_the_registrys_file_load(house: House) -> None:
    house.registry.bulk_file_supported = True
    house.admin.import_codes(
        [code_row(organic_code("0123", 1), cert_number("0123", 17))], ALL, bulk_file=True
    )
    assert house.registry.bulk_file_loads == 1


def test_a_body_token_never_loads_a_file(house: House) -> None:
    house.registry.bulk_file_supported = True
    house.admin.import_codes(
        [code_row(organic_code("0123", 1), cert_number("0123", 17))],
        _body_scope(house, "0123"),
        bulk_file=True,
    )
    assert (
        house.registry.bulk_file_loads == 0 and organic_key(organic_code("0123", 1)) in house.registry.codes
    )


def test_only_the_regulator_registers_certification_bodies(house: House) -> None:
    with pytest.raises(Forbidden):
        house.admin.upsert_bodies([{"code": "0789", "name": "x"}], _body_scope(house, "0123"))


def test_a_body_cannot_void_another_bodys_order(house: House) -> None:
    house.admin.import_codes([code_row(organic_code("0456", 1), cert_number("0456", 18), order="O-9")], ALL)
    with pytest.raises(NotFound):
        house.admin.void_order("O-9", None, _body_scope(house, "0123"))


def test_a_change_saved_while_the_generations_are_away_says_it_was_not_propagated(house: House) -> None:
    house.admin.import_codes([code_row(organic_code("0123", 1), cert_number("0123", 17), order="O-1")], ALL)
    house.generations.fail = True
    with pytest.raises(Unavailable) as failed:
        house.admin.void_order("O-1", None, ALL)
    assert failed.value.code == "cache_unavailable"
    assert house.registry.orders["O-1"].voided_at is not None  # saved all the same


def test_a_token_authenticates_with_its_scope_until_revoked(house: House) -> None:
    raw = house.admin.create_token("CQC", "body", "0123")
    scope = house.admin.authenticate(raw)
    assert scope is not None and scope.kind == "body" and scope.id == house.registry.bodies["0123"]["id"]
    assert scope.token_id is not None
    house.admin.revoke_token(scope.token_id, ALL)
    assert house.admin.authenticate(raw) is None
