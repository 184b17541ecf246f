"""Certificate numbers, body codes, verdict precedence and shopper messages."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime
from typing import Any

import pytest

from domain.certificates import (
    CertificateKind,
    CertificateStatus,
    body_codes_from_approval,
    check_status_change,
    parse_certificate_number,
)
from domain.errors import BadInput, Conflict
from domain.records import CertificateState
from domain.scans import OpenFlag
from domain.verdicts import Verdict, issued_while_valid, message, pick_language, registry_verdict, with_flags

TODAY = date(2026, 11, 23)


def cert(
    status: str = "valid",
    kind: str = "organic",
    *,
    since: date | None = None,
    valid_from: date = date(2026, 3, 1),
    valid_until: date = date(2027, 2, 28),
) -> CertificateState:
    return CertificateState(
        "0123OP2600017",
        "Holder",
        None,
        CertificateKind(kind),
        None,
        valid_from,
        valid_until,
        CertificateStatus(status),
        since,
        "0123",
        "Body",
    )


@pytest.mark.parametrize(
    ("text", "body", "year", "serial", "sub"),
    [
        ("0123OP2400017", "0123", 2024, 17, None),
        ("123OP1100017", "123", 2011, 17, None),
        ("F12OP1100017-2", "F12", 2011, 17, 2),
        ("0123op2400017-1", "0123", 2024, 17, 1),
    ],
)
def test_certificate_numbers_current_legacy_foreign_and_sub(
    text: str, body: str, year: int, serial: int, sub: int | None
) -> None:
    number = parse_certificate_number(text)
    assert (number.body_part, number.year, number.serial, number.sub) == (body, year, serial, sub)


@pytest.mark.parametrize("text", ["0123XX2400017", "0123OP240017", "12OP2400017", "0123OP2400017-", ""])
def test_malformed_certificate_numbers_are_bad_input(text: str) -> None:
    with pytest.raises(BadInput):
        parse_certificate_number(text)


def test_body_codes_derive_from_approval_numbers() -> None:
    assert body_codes_from_approval("CNCA-R-2002-123") == ("0123", "123")
    assert body_codes_from_approval("CNCA-RF-2005-12") == ("9012", "912")


def test_revoked_and_cancelled_certificates_are_never_restored() -> None:
    check_status_change(CertificateStatus.SUSPENDED, CertificateStatus.VALID)
    for final in (CertificateStatus.REVOKED, CertificateStatus.CANCELLED):
        with pytest.raises(Conflict):
            check_status_change(final, CertificateStatus.VALID)


def decide(*, flags: Sequence[OpenFlag] = (), **facts: Any) -> Verdict:
    """The verify's order: the registry's verdict, then the scan history's flags."""
    return with_flags(registry_verdict(**facts), flags)


def test_verdict_precedence() -> None:
    flag = OpenFlag("distinct_scanners", "suspicious", datetime(2026, 11, 1, tzinfo=UTC))
    assert decide(found=False, today=TODAY) is Verdict.NOT_FOUND
    assert decide(found=True, voided=True, certificate=cert("revoked"), today=TODAY) is Verdict.VOIDED
    assert decide(found=True, bq_activated=False, today=TODAY) is Verdict.NOT_ACTIVATED
    assert decide(found=True, bq_activated=True, today=TODAY) is Verdict.GENUINE
    assert (
        decide(found=True, certificate=cert(kind="conversion"), today=TODAY) is Verdict.CONVERSION_CERTIFICATE
    )
    assert (
        decide(found=True, certificate=cert("suspended"), flags=[flag], today=TODAY)
        is Verdict.CERTIFICATE_SUSPENDED
    )
    assert decide(found=True, certificate=cert("revoked"), today=TODAY) is Verdict.CERTIFICATE_REVOKED
    assert decide(found=True, certificate=cert("cancelled"), today=TODAY) is Verdict.CERTIFICATE_CANCELLED
    assert (
        decide(
            found=True,
            certificate=cert(valid_until=date(2026, 1, 1), valid_from=date(2025, 1, 2)),
            today=TODAY,
        )
        is Verdict.CERTIFICATE_EXPIRED
    )
    assert decide(found=True, certificate=cert(), flags=[flag], today=TODAY) is Verdict.SUSPICIOUS
    warn = OpenFlag("distinct_scanners", "warn", datetime(2026, 11, 1, tzinfo=UTC))
    assert decide(found=True, certificate=cert(), flags=[warn], today=TODAY) is Verdict.GENUINE


def test_issued_while_valid_compares_the_issue_date_with_term_and_withdrawal() -> None:
    suspended = cert("suspended", since=date(2026, 9, 1))
    assert issued_while_valid(date(2026, 8, 1), suspended, TODAY) is True
    assert issued_while_valid(date(2026, 9, 2), suspended, TODAY) is False
    assert issued_while_valid(date(2026, 2, 1), cert(), TODAY) is False
    expired = cert(valid_from=date(2025, 1, 1), valid_until=date(2025, 12, 31))
    assert issued_while_valid(date(2025, 6, 1), expired, TODAY) is True
    assert issued_while_valid(None, cert(), TODAY) is None
    assert issued_while_valid(date(2026, 6, 1), None, TODAY) is None


def test_every_verdict_has_a_message_in_both_languages() -> None:
    for verdict in Verdict:
        zh, en = message(verdict, "zh"), message(verdict, "en")
        assert zh and en and zh != en


def test_language_follows_accept_language_and_defaults_to_chinese() -> None:
    assert pick_language(None) == "zh"
    assert pick_language("en-US,en;q=0.9") == "en"
    assert pick_language("zh-CN,zh;q=0.9,en;q=0.8") == "zh"
    assert pick_language("fr-FR") == "zh"
    assert pick_language("en;q=0.5,zh;q=0.9") == "zh"
