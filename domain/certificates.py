"""Certificates (认证证书), certification bodies (认证机构) and their numbering rules.

Certificate number (CNCA-N-009:2014 appendix 4, and the 2022 revision): body code +
"OP" + two-digit year + five-digit serial, e.g. ``0123OP2400017``. The legacy body part
is the 3-digit approval serial for domestic bodies and ``F`` + 2 digits for foreign
ones; a sub-certificate appends ``-N``. Re-certification keeps the number.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

from domain.errors import BadInput, Conflict


class CertificateStatus(enum.StrEnum):
    VALID = "valid"
    SUSPENDED = "suspended"  # 暂停: stop using marks; can be restored
    CANCELLED = "cancelled"  # 注销: final
    REVOKED = "revoked"  # 撤销: final
    EXPIRED = "expired"


class CertificateKind(enum.StrEnum):
    ORGANIC = "organic"
    CONVERSION = "conversion"  # 有机转换: the organic mark may not be used at all


FINAL_STATUSES = frozenset({CertificateStatus.CANCELLED, CertificateStatus.REVOKED})

CERTIFICATE_PATTERN = r"^(?:\d{4}|\d{3}|F\d{2})OP\d{7}(?:-[1-9]\d{0,3})?$"
_CERT_NUMBER = re.compile(
    r"^(?P<body>\d{4}|\d{3}|F\d{2})OP(?P<year>\d{2})(?P<serial>\d{5})(?:-(?P<sub>[1-9]\d{0,3}))?$"
)


@dataclass(frozen=True, slots=True)
class CertificateNumber:
    text: str
    body_part: str
    year: int
    serial: int
    sub: int | None

    @property
    def legacy(self) -> bool:
        return len(self.body_part) == 3


def parse_certificate_number(text: str) -> CertificateNumber:
    cleaned = text.strip().upper()
    match = _CERT_NUMBER.match(cleaned)
    if match is None:
        raise BadInput(
            f"not a certificate number (e.g. 0123OP2400017, 123OP1100017, F12OP1100017-1): {text[:40]!r}",
            code="invalid_certificate_number",
        )
    sub = match.group("sub")
    return CertificateNumber(
        text=cleaned,
        body_part=match.group("body"),
        year=2000 + int(match.group("year")),
        serial=int(match.group("serial")),
        sub=int(sub) if sub else None,
    )


def check_status_change(current: CertificateStatus, new: CertificateStatus) -> None:
    """A cancelled or revoked certificate is never restored (DOMAIN.md)."""
    if current in FINAL_STATUSES and new is not current:
        raise Conflict(f"a {current.value} certificate cannot become {new.value}", code="status_final")


_APPROVAL = re.compile(r"^CNCA-(?P<kind>R|RF)-(?P<year>\d{4})-(?P<serial>\d{1,3})$", re.IGNORECASE)
_BODY_CODE = re.compile(r"^\d{4}$")
_LEGACY_BODY_CODE = re.compile(r"^\d{3}$")


def body_codes_from_approval(approval_number: str) -> tuple[str, str | None]:
    """(current 4-digit code, legacy 3-digit code) from an approval number like CNCA-R-2002-123.

    Domestic (R): serial zero-padded to 4 / the 3-digit serial. Foreign (RF): "9" + the
    serial to 3 / "9" + the serial to 2 (CNCA-N-009:2014 appendix 5, 2022 revision); a
    foreign serial past 99 has no legacy code (None).
    """
    match = _APPROVAL.match(approval_number.strip())
    if match is None:
        raise BadInput(
            f"not an approval number like CNCA-R-2002-123 or CNCA-RF-2005-12: {approval_number[:40]!r}",
            code="invalid_approval_number",
        )
    serial = int(match.group("serial"))
    if match.group("kind").upper() == "RF":
        # A foreign body approved with a 3-digit serial (CNCA-RF-2018-716 -> 9716) came
        # after the 17-digit era, whose "9" + 2 digits cannot hold it: no legacy code.
        return f"9{serial:03d}", (f"9{serial:02d}" if serial <= 99 else None)
    return f"{serial:04d}", f"{serial:03d}"


def check_body_codes(code: str, legacy_code: str | None) -> None:
    if not _BODY_CODE.match(code):
        raise BadInput(f"body code must be 4 digits: {code[:10]!r}", code="invalid_body_code")
    if legacy_code is not None and not _LEGACY_BODY_CODE.match(legacy_code):
        raise BadInput(f"legacy body code must be 3 digits: {legacy_code[:10]!r}", code="invalid_body_code")
