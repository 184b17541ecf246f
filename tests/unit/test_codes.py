"""Normalization, classification and the checks that need no lookup."""

from __future__ import annotations

from datetime import date

import pytest

from domain.codes import (
    CodeKind,
    InvalidReason,
    check_without_lookup,
    normalize,
    organic_code_from_key,
    organic_key,
    parse_stored_code,
)
from domain.errors import BadInput, InputTooLong

CODE = "012324000123456789"
LEGACY = "12311000123456789"


@pytest.mark.parametrize(
    "raw",
    [
        CODE,
        " 0123 2400 0123 4567 89 ",
        "0123-2400-0123-4567-89",
        "０１２３２４０００１２３４５６７８９",
        "有机码：012324000123456789",
        "有机码:012324000123456789",
        "有机码 0123 2400 0123 4567 89",
        "有机码012324000123456789",
        "https://label.example.cn/c/012324000123456789",
        "https://label.example.cn/verify?code=012324000123456789",
        "http://label.example.cn/v?c=012324000123456789&from=qr",
        "label.example.cn/c/012324000123456789",
        "https://mp.example/page?q=https%3A%2F%2Flabel.example.cn%2Fc%2F012324000123456789&scancode_time=1700000000",
        "https://mp.example/page?q=https%253A%252F%252Flabel.example.cn%252Fv%253Fcode%253D012324000123456789",
        "\u200b012324000123456789\ufeff",
    ],
)
def test_every_input_shape_normalizes_to_the_same_18_digit_code(raw: str) -> None:
    parsed = normalize(raw)
    assert parsed.code == CODE
    assert parsed.kind is CodeKind.ORGANIC
    assert parsed.invalid is None


def test_a_17_digit_code_is_the_legacy_kind_with_a_3_digit_body() -> None:
    parsed = normalize("123-1100-0123-4567-89")
    assert (parsed.code, parsed.kind, parsed.body_code, parsed.year) == (
        LEGACY,
        CodeKind.ORGANIC_LEGACY,
        "123",
        2011,
    )


@pytest.mark.parametrize(
    "raw", ["WCB3Zt8Rv1Nq", "https://wc.example.cn/t/WCB3Zt8Rv1Nq", "https://x.cn/q?c=WCB3Zt8Rv1Nq"]
)
def test_bq_tokens_keep_their_case(raw: str) -> None:
    parsed = normalize(raw)
    assert parsed.code == "WCB3Zt8Rv1Nq"
    assert parsed.kind is CodeKind.BQ


def test_a_numeric_token_in_a_qr_url_that_is_not_17_or_18_digits_is_a_bq_code() -> None:
    assert normalize("https://wc.example.cn/t/1234567890").kind is CodeKind.BQ


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("", InvalidReason.EMPTY),
        ("   ", InvalidReason.EMPTY),
        ("有机码：", InvalidReason.EMPTY),
        ("012324000123456", InvalidReason.LENGTH),
        ("0123240001234567890", InvalidReason.LENGTH),
        ("12345", InvalidReason.LENGTH),
        ("0123*2400", InvalidReason.CHARACTERS),
        ("假的码", InvalidReason.CHARACTERS),
    ],
)
def test_inputs_that_cannot_be_a_code_say_why(raw: str, reason: InvalidReason) -> None:
    parsed = normalize(raw)
    assert parsed.invalid is reason
    assert parsed.kind is None or reason is InvalidReason.LENGTH


def test_typed_digits_of_a_wrong_length_are_not_mistaken_for_a_bq_code() -> None:
    assert normalize("0123240001234567").invalid is InvalidReason.LENGTH


def test_an_input_longer_than_2048_characters_is_a_client_error() -> None:
    with pytest.raises(InputTooLong):
        normalize("1" * 2049)


def test_a_year_part_later_than_this_year_is_invalid_without_lookup() -> None:
    parsed = check_without_lookup(
        normalize("012399000123456789"), today=date(2026, 11, 23), known_bodies=None
    )
    assert parsed.invalid is InvalidReason.FUTURE_YEAR


def test_an_unknown_body_code_is_invalid_but_legacy_bodies_are_known() -> None:
    bodies = frozenset({"0123", "123"})
    today = date(2026, 11, 23)
    assert (
        check_without_lookup(normalize("777724000123456789"), today=today, known_bodies=bodies).invalid
        is InvalidReason.UNKNOWN_BODY
    )
    assert check_without_lookup(normalize(LEGACY), today=today, known_bodies=bodies).invalid is None
    assert check_without_lookup(normalize(CODE), today=today, known_bodies=None).invalid is None


def test_17_and_18_digit_codes_that_read_as_the_same_integer_get_different_keys() -> None:
    eighteen, seventeen = "012311000123456789", "12311000123456789"
    assert int(eighteen) == int(seventeen)
    assert organic_key(eighteen) != organic_key(seventeen)
    assert organic_code_from_key(organic_key(eighteen)) == eighteen
    assert organic_code_from_key(organic_key(seventeen)) == seventeen


def test_stored_codes_are_parsed_strictly() -> None:
    assert parse_stored_code(CODE).kind is CodeKind.ORGANIC
    with pytest.raises(BadInput):
        parse_stored_code("0123 2400 0123 4567 89")


def test_an_identity_on_file_is_folded_as_a_typed_one_before_it_is_compared() -> None:
    from domain.scans import LabelFacts

    def mismatch(stored: str | None) -> bool:
        return LabelFacts(identity_code=stored, identity_given="100000002").mismatch

    assert not mismatch("100000002") and not mismatch("100-000-002") and not mismatch("１０００００００２")
    assert mismatch("100000003") and mismatch(" 100 000 003")
    # Another numbering (not nine digits) cannot be compared; nothing on file, nothing to compare.
    assert not mismatch("2026100000000002") and not mismatch(None)
