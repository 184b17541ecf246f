"""The one presenter (verify_api/presenter.py): a use case's Answer as the contract's JSON,
with the sentence in the shopper's language, whichever entrypoint asked."""

from __future__ import annotations

from datetime import UTC, date, datetime

from domain.certificates import CertificateKind, CertificateStatus
from domain.codes import CodeKind, InvalidReason
from domain.scans import OpenFlag, ScanSummary
from domain.verdicts import Verdict
from services.answers import Answer, CertificateFacts, FoundSymbol, PhotoAnswer, ProductFacts
from verify_api.presenter import answer_json, page_view, photo_json
from verify_api.web import TEXTS

CONTRACT_KEYS = [
    "code",
    "kind",
    "verdict",
    "reason",
    "message",
    "product",
    "certificate",
    "certification_body",
    "issued_on",
    "issued_while_valid",
    "scans",
    "flags",
    "trace",
]
AT = datetime(2026, 3, 1, 16, 30, tzinfo=UTC)  # 00:30 on 2 March in China
CERT = CertificateFacts(
    "0123OP2600017",
    "甲农场",
    CertificateKind.ORGANIC,
    CertificateStatus.SUSPENDED,
    date(2026, 1, 1),
    date(2026, 12, 31),
    date(2026, 2, 1),
    "0123",
    "甲认证中心",
)
SUSPENDED = Answer(
    "012326000000000001",
    CodeKind.ORGANIC,
    Verdict.CERTIFICATE_SUSPENDED,
    product=ProductFacts("有机大米", None, "5千克", None),
    certificate=CERT,
    issued_on=date(2026, 1, 5),
    issued_while_valid=True,
    scans=ScanSummary(3, AT, "杭州市", 2, 1, AT),
    flags=(OpenFlag("velocity", "warn", AT),),
)


def test_an_answer_is_the_contracts_json_in_its_order() -> None:
    body = answer_json(SUSPENDED, "zh")
    assert list(body) == CONTRACT_KEYS
    assert (
        body["certificate"]["status"] == "suspended" and body["certificate"]["status_since"] == "2026-02-01"
    )
    assert body["certification_body"] == {"code": "0123", "name": "甲认证中心"}
    assert body["scans"]["first_at"] == "2026-03-01T16:30:00Z"
    assert body["scans"]["you"] == {"count": 1, "first_at": "2026-03-01T16:30:00Z"}
    assert body["flags"] == [{"rule": "velocity", "severity": "warn", "raised_at": "2026-03-01T16:30:00Z"}]
    assert body["message"].endswith("该标志发放时证书仍有效。")


def test_the_message_is_in_the_shoppers_language() -> None:
    english = answer_json(SUSPENDED, "en")["message"]
    assert english.startswith("The certificate behind this code is suspended")
    assert english.endswith("issued while the certificate was still valid.")


def test_an_invalid_input_has_its_reason_and_nulls_for_every_fact() -> None:
    body = answer_json(Answer("", None, Verdict.INVALID_FORMAT, reason=InvalidReason.EMPTY), "en")
    assert body["code"] is None and body["reason"] == "empty"
    assert body["message"] == "Enter the code printed on the label."
    assert [body[k] for k in CONTRACT_KEYS[5:]] == [None, None, None, None, None, None, [], None]


def test_a_photo_answer_lists_every_symbol_and_the_best_codes_answer() -> None:
    ean = FoundSymbol("ean13", "6901234567892", None, 0.9)
    assert photo_json(PhotoAnswer((ean,), None), "zh") == {
        "found": [{"symbology": "ean13", "payload": "6901234567892", "code": None, "confidence": 0.9}],
        "verification": None,
    }
    assert list(photo_json(PhotoAnswer((), SUSPENDED), "zh")["verification"]) == CONTRACT_KEYS


def test_the_result_page_says_the_history_in_china_time() -> None:
    view = page_view(SUSPENDED, "en", TEXTS["en"])
    assert view["style"] == "warn" and view["status"] == "suspended"
    assert view["scans"] == (
        "This code was checked 3 times, first on 2026-03-02 00:30 in 杭州市. "
        "1 of them were you, first on 2026-03-02 00:30."
    )
