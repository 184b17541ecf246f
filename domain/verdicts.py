"""Verdict rules (pure) and what the shopper is told, in Chinese and English."""

from __future__ import annotations

import enum
from collections.abc import Sequence
from datetime import date

from domain.certificates import CertificateKind, CertificateStatus
from domain.codes import InvalidReason
from domain.records import CertificateState
from domain.scans import OpenFlag


class Verdict(enum.StrEnum):
    GENUINE = "genuine"
    NOT_FOUND = "not_found"
    INVALID_FORMAT = "invalid_format"
    VOIDED = "voided"
    NOT_ACTIVATED = "not_activated"
    CERTIFICATE_SUSPENDED = "certificate_suspended"
    CERTIFICATE_REVOKED = "certificate_revoked"
    CERTIFICATE_CANCELLED = "certificate_cancelled"
    CERTIFICATE_EXPIRED = "certificate_expired"
    CONVERSION_CERTIFICATE = "conversion_certificate"
    SUSPICIOUS = "suspicious"


_STATUS_VERDICT = {
    CertificateStatus.SUSPENDED: Verdict.CERTIFICATE_SUSPENDED,
    CertificateStatus.REVOKED: Verdict.CERTIFICATE_REVOKED,
    CertificateStatus.CANCELLED: Verdict.CERTIFICATE_CANCELLED,
    CertificateStatus.EXPIRED: Verdict.CERTIFICATE_EXPIRED,
}


def issued_while_valid(
    issued_on: date | None, certificate: CertificateState | None, today: date
) -> bool | None:
    """Was the label issued inside the certificate's term and before any suspension/withdrawal?

    None when it cannot be known (no certificate, or no issue date recorded).
    """
    if issued_on is None or certificate is None:
        return None
    if not certificate.valid_from <= issued_on <= certificate.valid_until:
        return False
    status = certificate.effective_status(today)
    since = certificate.effective_status_since(today)
    if status is not CertificateStatus.VALID and since is not None:
        return issued_on < since
    return True


def registry_verdict(
    *,
    found: bool,
    voided: bool = False,
    bq_activated: bool | None = None,
    certificate: CertificateState | None = None,
    today: date,
) -> Verdict:
    """The verdict the registry's facts give a looked-up code, before its scan history.

    Precedence runs from the strongest fact: never issued, voided, a batch not activated,
    a conversion or withdrawn certificate. `bq_activated` is None for organic codes.
    """
    if not found:
        return Verdict.NOT_FOUND
    if voided:
        return Verdict.VOIDED
    if bq_activated is False:
        return Verdict.NOT_ACTIVATED
    if certificate is not None:
        if certificate.kind is CertificateKind.CONVERSION:
            return Verdict.CONVERSION_CERTIFICATE
        status = certificate.effective_status(today)
        if status in _STATUS_VERDICT:
            return _STATUS_VERDICT[status]
    return Verdict.GENUINE


def with_flags(verdict: Verdict, flags: Sequence[OpenFlag]) -> Verdict:
    """The scan history's part: it can only turn an otherwise genuine answer `suspicious`
    (a withdrawn certificate is the stronger message)."""
    if verdict is Verdict.GENUINE and any(f.severity == "suspicious" for f in flags):
        return Verdict.SUSPICIOUS
    return verdict


_MESSAGES: dict[Verdict, tuple[str, str]] = {
    Verdict.GENUINE: (
        "该码为认证机构发放的真实有效标志码，对应证书有效。",
        "This code was issued by the certification body and its certificate is valid.",
    ),
    Verdict.NOT_FOUND: (
        "查无此码：该码从未发放，可能是假冒标志，也可能输入有误，请核对后重试。",
        "No such code was ever issued: the label may be counterfeit, or the code was mistyped. "
        "Check and try again.",
    ),
    Verdict.VOIDED: (
        "该码所属标志订单已退订作废，标志不应再使用，请谨慎购买。",
        "This code's label order was voided; the label should no longer be in use. Be careful.",
    ),
    Verdict.NOT_ACTIVATED: (
        "该溯源码所属批次尚未激活（未通过检验），按规定视为假冒。",
        "This BQ code's batch was never activated (not inspected); it must be treated as counterfeit.",
    ),
    Verdict.CERTIFICATE_SUSPENDED: (
        "该码对应的认证证书已被暂停，暂停期间不得使用有机标志。",
        "The certificate behind this code is suspended; organic marks may not be used while it is.",
    ),
    Verdict.CERTIFICATE_REVOKED: (
        "该码对应的认证证书已被撤销。",
        "The certificate behind this code was revoked.",
    ),
    Verdict.CERTIFICATE_CANCELLED: (
        "该码对应的认证证书已注销。",
        "The certificate behind this code was cancelled.",
    ),
    Verdict.CERTIFICATE_EXPIRED: (
        "该码对应的认证证书已过期。",
        "The certificate behind this code has expired.",
    ),
    Verdict.CONVERSION_CERTIFICATE: (
        "该码对应的是有机转换认证证书，转换期产品不得使用有机标志或标注“有机”，属违规使用。",
        "This code belongs to a conversion certificate: such products may not carry the organic mark. "
        "This is a violation.",
    ),
    Verdict.SUSPICIOUS: (
        "该码真实存在，但已被多人在多地查询，疑似被复制盗用，请谨慎购买。",
        "The code exists, but it was checked by many people in many places: it is probably copied. "
        "Be careful.",
    ),
}

_BQ_GENUINE = (
    "该溯源码真实有效：所属批次已通过检验并激活，可查看下方溯源信息。",
    "This traceability code is genuine: its batch passed inspection and was activated; see the trace below.",
)

_BQ_NOT_FOUND = (
    "查无此溯源码。溯源码区分大小写，请逐个核对字母的大小写（如 K 与 k）后重试；仍查不到，可能是假冒标志。",
    "No such traceability code. These codes are case-sensitive: check each letter's upper and "
    "lower case (K or k) and try again; if it is still not found, the label may be counterfeit.",
)

_INVALID_MESSAGES: dict[InvalidReason, tuple[str, str]] = {
    InvalidReason.EMPTY: ("请输入标志上的有机码或溯源码。", "Enter the code printed on the label."),
    InvalidReason.LENGTH: (
        "有机码应为18位数字（旧版为17位），请核对位数。",
        "An organic code has 18 digits (17 on older labels); check the number of digits.",
    ),
    InvalidReason.CHARACTERS: (
        "无法识别的编码：有机码只含数字，溯源码为8–32位字母或数字。",
        "Not a code: organic codes are digits only, BQ codes 8-32 letters or digits.",
    ),
    InvalidReason.FUTURE_YEAR: (
        "该码的年份代码晚于今年，不可能是真实发放的有机码。",
        "The year part of this code is later than this year: it cannot be a real organic code.",
    ),
    InvalidReason.UNKNOWN_BODY: (
        "该码的认证机构代码不属于任何已知认证机构，不可能是真实有机码。",
        "No certification body has this code's body part: it cannot be a real organic code.",
    ),
    InvalidReason.IDENTITY_CODE: (
        "您输入的是9位身份码（标志上公开印刷的流水号），不是有机码。有机码印在标志上“有机码”字样之后，"
        "常被刮开式涂层覆盖，为18位数字（旧版17位）：请刮开涂层后输入这串数字。",
        "You entered the 9-digit identity code (the label's visible print serial), not the organic code. "
        "The organic code follows the words 有机码 on the label, often under a scratch-off layer: "
        "18 digits (17 on older labels). Scratch it open and enter those digits.",
    ),
}

_MISMATCH = (
    "您同时输入的身份码与该有机码不属于同一枚标志：标志可能由两枚标志拼成，疑似伪造，请谨慎购买。",
    "The identity code you entered does not belong to the same label as this organic code: the label "
    "may be made of two labels and is probably forged.",
)


def message(
    verdict: Verdict,
    lang: str,
    *,
    invalid: InvalidReason | None = None,
    issued_while_valid: bool | None = None,
    already_verified: bool = False,
    bq: bool = False,
) -> str:
    """One sentence for the shopper; `lang` is "zh" (default) or "en"."""
    idx = 1 if lang == "en" else 0
    if verdict is Verdict.INVALID_FORMAT:
        return _INVALID_MESSAGES[invalid or InvalidReason.CHARACTERS][idx]
    if verdict is Verdict.SUSPICIOUS and invalid is InvalidReason.IDENTITY_MISMATCH:
        return _MISMATCH[idx]
    text = _MESSAGES[verdict][idx]
    withdrawn = {
        Verdict.CERTIFICATE_SUSPENDED,
        Verdict.CERTIFICATE_REVOKED,
        Verdict.CERTIFICATE_CANCELLED,
        Verdict.CERTIFICATE_EXPIRED,
    }
    if verdict in withdrawn and issued_while_valid is not None:
        if issued_while_valid:
            text += (
                " The label was issued while the certificate was still valid."
                if idx
                else "该标志发放时证书仍有效。"
            )
        else:
            text += (
                " The label was issued when the certificate was no longer valid."
                if idx
                else "该标志发放时证书已不在有效状态。"
            )
    if bq and verdict is Verdict.GENUINE:
        text = _BQ_GENUINE[idx]
    if bq and verdict is Verdict.NOT_FOUND:
        # BQ tokens are case-sensitive (WCA7Kp2Qx9Lm is not wca7kp2qx9lm): a wrong case is
        # the likeliest typing slip, so it is said before "may be counterfeit".
        text = _BQ_NOT_FOUND[idx]
    if already_verified and verdict is Verdict.GENUINE:
        text += (
            " This anti-counterfeit code was already verified before: see when and where below."
            if idx
            else "注意：该防伪码此前已被查询过，请查看首次查询时间和地点。"
        )
    return text


def pick_language(accept_language: str | None) -> str:
    """zh unless the client prefers English over Chinese."""
    if not accept_language:
        return "zh"
    best_lang, best_q = "zh", -1.0
    for part in accept_language.split(","):
        pieces = part.strip().split(";")
        tag = pieces[0].strip().lower()
        q = 1.0
        for param in pieces[1:]:
            name, _, value = param.strip().partition("=")
            if name == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        primary = tag.split("-")[0]
        if primary in ("zh", "en") and q > best_q:
            best_lang, best_q = primary, q
    return best_lang
