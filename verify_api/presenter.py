"""The one presenter of the shopper's answers (services/answers.py): the JSON of the public
API and the mini-program (../shared/CONTRACT.md, verify_api/openapi.yaml), and what the web
result page shows beyond it. The use cases answer facts; the sentences, in the shopper's
language, and the answer's JSON shape are made here, once.

The mini-program's blueprint imports this module (as it does verify_api.request_input; see
the import contracts in pyproject.toml): one answer shape on every channel.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date
from typing import Any

from domain.china_time import china_minute, iso_utc
from domain.codes import CodeKind, InvalidReason
from domain.scans import PastCheck, ScanSummary
from domain.verdicts import Verdict, message
from services.answers import Answer, PhotoAnswer, ReportReceipt


def _day(value: date | None) -> str | None:
    return value.isoformat() if value else None


def answer_json(a: Answer, lang: str) -> dict[str, Any]:
    """A verify answer as the API and the mini-program send it (the keys in the contract's
    order; times UTC with `Z`, days as YYYY-MM-DD)."""
    product = certificate = body = trace = None
    if a.product is not None:
        p = a.product
        product = {
            "name": p.name,
            "description": p.description,
            "package": p.package,
            "label_spec": p.label_spec,
        }
    if a.certificate is not None:
        c = a.certificate
        certificate = {
            "number": c.number,
            "holder": c.holder,
            "kind": c.kind.value,
            "status": c.status.value,
            "valid_from": _day(c.valid_from),
            "valid_until": _day(c.valid_until),
            "status_since": _day(c.status_since),
        }
        body = {"code": c.body_code, "name": c.body_name}
    if a.trace is not None:
        t = a.trace
        trace = {
            "batch": t.batch,
            "producer": t.producer,
            "activated_at": iso_utc(t.activated_at),
            "role": t.role,
            "plot": t.plot,
            "seed": t.seed,
            "inputs": t.inputs,
            "inspection": t.inspection,
            "purchases": t.purchases,
        }
    return {
        "code": a.code or None,
        "kind": a.kind.value if a.kind else None,
        "verdict": a.verdict.value,
        "reason": a.reason.value if a.reason else None,
        "message": message(
            a.verdict,
            lang,
            invalid=a.reason,
            issued_while_valid=a.issued_while_valid,
            already_verified=a.already_verified,
            bq=a.kind is CodeKind.BQ,
        ),
        "product": product,
        "certificate": certificate,
        "certification_body": body,
        "issued_on": _day(a.issued_on),
        "issued_while_valid": a.issued_while_valid,
        "scans": _scans(a.scans),
        "flags": [
            {"rule": f.rule, "severity": f.severity, "raised_at": iso_utc(f.raised_at)} for f in a.flags
        ],
        "trace": trace,
    }


def _scans(summary: ScanSummary | None) -> dict[str, Any] | None:
    if summary is None:
        return None
    you = None
    if summary.you_count is not None:
        you = {"count": summary.you_count, "first_at": iso_utc(summary.you_first_at)}
    return {
        "count": summary.count,
        "first_at": iso_utc(summary.first_at),
        "first_city": summary.first_city,
        "distinct_scanners": summary.distinct_scanners,
        "you": you,
    }


def photo_json(p: PhotoAnswer, lang: str) -> dict[str, Any]:
    """A photo scan: every symbol read, and the best code's verify answer (null: none)."""
    return {
        "found": [
            {"symbology": s.symbology, "payload": s.payload, "code": s.code, "confidence": s.confidence}
            for s in p.found
        ],
        "verification": answer_json(p.verification, lang) if p.verification is not None else None,
    }


def receipt_json(r: ReportReceipt) -> dict[str, int]:
    return {"report_id": r.report_id, "flag_id": r.flag_id}


def history_json(items: Sequence[PastCheck]) -> dict[str, Any]:
    return {
        "items": [
            {"code": i.code, "at": iso_utc(i.at), "channel": i.channel, "verdict": i.verdict, "city": i.city}
            for i in items
        ]
    }


# -- the web result page --------------------------------------------------------------------

VERDICT_STYLE = {
    "genuine": ("ok", "✓ 真品", "✓ Genuine"),
    "suspicious": ("warn", "⚠ 疑似复制", "⚠ Probably copied"),
    "not_found": ("bad", "✗ 查无此码", "✗ No such code"),
    "invalid_format": ("bad", "✗ 编码无效", "✗ Not a valid code"),
    "voided": ("bad", "✗ 已作废", "✗ Voided"),
    "not_activated": ("bad", "✗ 未激活", "✗ Not activated"),
    "certificate_suspended": ("warn", "⚠ 证书暂停", "⚠ Certificate suspended"),
    "certificate_revoked": ("bad", "✗ 证书撤销", "✗ Certificate revoked"),
    "certificate_cancelled": ("bad", "✗ 证书注销", "✗ Certificate cancelled"),
    "certificate_expired": ("warn", "⚠ 证书过期", "⚠ Certificate expired"),
    "conversion_certificate": ("bad", "✗ 转换期产品", "✗ Conversion product"),
}
# A suspicious answer for the shopper's own two codes (issue 17): not "copied" but a label
# made of two.
MISMATCH_STYLE = ("warn", "⚠ 两码不符", "⚠ Codes do not match")

STATUS = {
    "zh": {"valid": "有效", "suspended": "暂停", "revoked": "撤销", "cancelled": "注销", "expired": "过期"},
    "en": {
        "valid": "valid",
        "suspended": "suspended",
        "revoked": "revoked",
        "cancelled": "cancelled",
        "expired": "expired",
    },
}


def page_view(a: Answer, lang: str, t: Mapping[str, str]) -> dict[str, Any]:
    """What the result page shows beyond the answer's JSON: badge, the history line in the
    page's texts `t` (verify_api.web.TEXTS), China times."""
    style, zh_badge, en_badge = VERDICT_STYLE.get(a.verdict.value, ("bad", a.verdict.value, a.verdict.value))
    if a.reason is InvalidReason.IDENTITY_MISMATCH:
        style, zh_badge, en_badge = MISMATCH_STYLE
    status = a.certificate.status.value if a.certificate else None
    return {
        "style": style,
        "badge": en_badge if lang == "en" else zh_badge,
        "scans": _scans_line(a.scans, t),
        "case_hint": a.kind is CodeKind.BQ and a.verdict is Verdict.NOT_FOUND,
        "status": STATUS[lang].get(status, status) if status else None,
        "activated": china_minute(a.trace.activated_at) if a.trace else None,
        # A report names a code that could be on a label: any well-formed one.
        "reportable": a.verdict is not Verdict.INVALID_FORMAT and bool(a.code),
    }


def _scans_line(s: ScanSummary | None, t: Mapping[str, str]) -> str | None:
    """ "Checked 3 times, first on … in …; 2 of them were you", in China time."""
    if not s:
        return None
    first = china_minute(s.first_at)
    place = t["first_city"].format(city=s.first_city) if s.first_city else ""
    you_count = s.you_count or 0
    if s.count == 1 and you_count == 1:
        return t["only_you"].format(first=first or "", city=place)
    line = t["scans"].format(count=s.count)
    if first:
        line += t["first"].format(first=first) + place
    if you_count and you_count >= s.count:
        return line + t["you_all"]
    if you_count:
        return line + t["you_some"].format(you=you_count, you_first=china_minute(s.you_first_at) or "—")
    return line + t["end"]
