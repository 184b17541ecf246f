"""The photo use case against fakes: a scanner that reads plain-text "photos"
(tests/fakes/scanner.py) and the verify service on the fake registry."""

from __future__ import annotations

import pytest

from domain.errors import NotImplementedOnServer, Unprocessable, UnsupportedMedia
from domain.verdicts import Verdict
from services.verify import VerifyRequest
from tests.fakes.house import ALL, House, cert_number, code_row, organic_code, stocked_house
from tests.fakes.scanner import FakePhotoScanner, photo


@pytest.fixture
def house() -> House:
    house = stocked_house()
    house.admin.import_codes([code_row(organic_code("0123", 1), cert_number("0123", 17))], ALL)
    return house


def test_a_photo_of_a_qr_code_verifies_its_code(house: House) -> None:
    answer = house.photos.scan(photo(f"qr:{organic_code('0123', 1)}"), VerifyRequest(""))
    assert answer.verification is not None and answer.verification.verdict is Verdict.GENUINE
    assert answer.found[0].code == organic_code("0123", 1)
    assert house.ledger.scans[organic_code("0123", 1)][0].channel == "photo"


def test_a_photo_with_no_code_is_unprocessable(house: House) -> None:
    with pytest.raises(Unprocessable) as refused:
        house.photos.scan(photo(), VerifyRequest(""))
    assert refused.value.code == "no_code_found"


def test_a_code_printed_but_not_readable_asks_for_a_better_photo(house: House) -> None:
    with pytest.raises(Unprocessable) as refused:
        house.photos.scan(photo("unreadable"), VerifyRequest(""))
    assert refused.value.code == "code_unreadable"


def test_printed_digits_on_a_server_without_ocr_say_so_rather_than_no_code() -> None:
    house = House(scanner=FakePhotoScanner(digits=False))
    with pytest.raises(NotImplementedOnServer) as refused:
        house.photos.scan(photo(f"digits:{organic_code('0123', 1)}"), VerifyRequest(""))
    assert refused.value.code == "digits_unavailable"


def test_a_products_barcode_never_outranks_the_label_code(house: House) -> None:
    code = organic_code("0123", 1)
    answer = house.photos.scan(photo("ean13:690123456789012345"[:19], f"digits:{code}"), VerifyRequest(""))
    assert answer.found[0].code is None  # an EAN is read and shown, never verified
    assert answer.verification is not None and answer.verification.code == code


def test_a_photo_of_only_a_products_barcode_is_answered_without_a_verdict(house: House) -> None:
    answer = house.photos.scan(photo("ean13:6901234567892"), VerifyRequest(""))
    assert answer.verification is None and answer.found[0].payload == "6901234567892"


def test_the_scanner_is_told_the_known_body_codes(house: House) -> None:
    house.photos.scan(photo(f"qr:{organic_code('0123', 1)}"), VerifyRequest(""))
    assert house.scanner.asked_bodies[-1] == frozenset({"0123", "123", "0456", "456"})


def test_an_upload_that_is_not_an_image_is_refused(house: House) -> None:
    with pytest.raises(UnsupportedMedia):
        house.photos.scan(b"%PDF-1.7", VerifyRequest(""))
