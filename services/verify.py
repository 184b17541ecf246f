"""The verify use case: shopper input in, one verdict with the facts behind it out."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from domain import metrics
from domain.china_time import china_today, iso_utc
from domain.codes import CodeKind, InvalidReason, check_without_lookup, normalize
from domain.errors import BadInput, TooManyRequests, Unavailable
from domain.ports import RecordReader, Resolution, ScanLedger
from domain.records import (
    LOOKUP_CHANNEL,
    VERIFIED_CHANNEL_PREFIX,
    LabelGroup,
    OpenFlag,
    ScanInput,
    ScanResult,
    ScanSummary,
)
from domain.verdicts import Verdict, decide, issued_while_valid, message

log = logging.getLogger(__name__)

CHANNELS = frozenset({"manual", "qr", "photo", "web", "wechat", "api"})
# Wuchang rice traceability labels are one printed size (the provider's 50 mm square).
BQ_LABEL_SPEC = "50×50毫米方形溯源防伪标签"
# The enumeration window of the scan store: a refused guesser may come back after it.
ENUMERATION_WINDOW_S = 3600


@dataclass(frozen=True, slots=True)
class VerifyRequest:
    input: str
    channel: str = "manual"
    lat: float | None = None
    lng: float | None = None
    client: str | None = None
    ip: str | None = None
    lang: str = "zh"
    at: datetime | None = None
    event_id: str | None = None  # imported historical scans keep their own ids (idempotency)
    # The client is a WeChat-verified session (the mini-program's login), not a claimed id:
    # it may take a rule to `suspicious`, and its coordinates count as a place.
    verified: bool = False


def _iso(value: datetime | None) -> str | None:
    # API timestamps: UTC with its offset (`Z`); people read them in China time (the
    # result page, through domain.china_time).
    return iso_utc(value)


def _day(value: date | None) -> str | None:
    return value.isoformat() if value else None


class VerifyService:
    def __init__(
        self,
        resolver: RecordReader,
        scans: ScanLedger | None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        *,
        throttle: bool = True,
    ) -> None:
        self.resolver = resolver
        self.scans = scans
        self.clock = clock
        # RATE_LIMITS=off turns the enumeration throttle off with the other public limits;
        # the lookups are still counted and recorded.
        self.throttle = throttle

    def verify(self, req: VerifyRequest, *, record: bool = True) -> dict[str, Any]:
        if req.channel not in CHANNELS:
            raise BadInput(f"channel must be one of {sorted(CHANNELS)}", code="invalid_channel")
        now = req.at or self.clock()
        # China's calendar day decides expiry and the year check: at 00:30 Beijing time
        # UTC still says yesterday, and a certificate's last day ends at midnight in China.
        today = china_today(now)
        parsed = normalize(req.input)
        if parsed.invalid is None and parsed.kind is not CodeKind.BQ:
            parsed = check_without_lookup(parsed, today=today, known_bodies=self.resolver.known_bodies())
        if parsed.invalid is not None:
            return self._answer_invalid(parsed.code, parsed.kind, parsed.invalid, req.lang)
        resolution = self.resolver.resolve(parsed)
        base = self._verdict(resolution, (), today)
        scan = self._scan(
            parsed.code, parsed.kind.value if parsed.kind else None, base, req, now, record, resolution.group
        )
        if self.throttle and scan is not None and scan.throttled:
            # Many never-issued codes from one client in an hour: a guesser, not a shopper.
            raise TooManyRequests(
                "too many unknown codes from this client; try again later",
                code="enumeration_throttled",
                retry_after_s=ENUMERATION_WINDOW_S,
            )
        verdict = self._verdict(resolution, scan.flags if scan else (), today)
        return self._answer(parsed.code, parsed.kind, verdict, resolution, scan, req.lang, today)

    # -- pieces -----------------------------------------------------------------------------

    def _verdict(self, res: Resolution, flags: tuple[OpenFlag, ...] | tuple[()], today: date) -> Verdict:
        if res.record is None:
            return decide(found=False, today=today)
        voided = res.order is not None and res.order.voided_at is not None
        activated = None
        if res.record.kind is CodeKind.BQ:
            activated = res.batch_state is not None and res.batch_state.activated_at is not None
        return decide(
            found=True,
            voided=voided,
            bq_activated=activated,
            certificate=res.certificate,
            flags=flags,
            today=today,
        )

    def _scan(
        self,
        code: str,
        kind: str | None,
        verdict: Verdict,
        req: VerifyRequest,
        now: datetime,
        record: bool,
        group: LabelGroup | None = None,
    ) -> ScanResult | None:
        if self.scans is None:
            return None
        channel = req.channel
        if not record and verdict is Verdict.NOT_FOUND and (req.client or req.ip):
            # A read-only lookup of a never-issued code (the result page, GET of a code)
            # spends the asker's enumeration budget like a verify; nothing is recorded.
            channel = LOOKUP_CHANNEL
        elif req.verified:
            channel = VERIFIED_CHANNEL_PREFIX + req.channel
        scan = ScanInput(
            code=code,
            kind=kind,
            at=now,
            channel=channel,
            verdict=verdict.value,
            client=req.client,
            ip=req.ip,
            lat=req.lat,
            lng=req.lng,
            event_id=req.event_id,
            group=group,
        )
        if req.event_id is not None:
            # An imported event must land or be reported: no silent degradation.
            return self.scans.record(scan)
        try:
            if not record and channel != LOOKUP_CHANNEL:
                return self.scans.peek(code, req.client)
            return self.scans.record(scan)
        except Unavailable:
            # The scan store is an addition to the answer, never a reason to refuse one.
            metrics.incr("scan_store_errors")
            return None

    def _answer_invalid(
        self, code: str, kind: CodeKind | None, reason: InvalidReason, lang: str
    ) -> dict[str, Any]:
        return {
            "code": code or None,
            "kind": kind.value if kind else None,
            "verdict": Verdict.INVALID_FORMAT.value,
            "reason": reason.value,
            "message": message(Verdict.INVALID_FORMAT, lang, invalid=reason),
            "product": None,
            "certificate": None,
            "certification_body": None,
            "issued_on": None,
            "issued_while_valid": None,
            "scans": None,
            "flags": [],
            "trace": None,
        }

    def _answer(
        self,
        code: str,
        kind: CodeKind | None,
        verdict: Verdict,
        res: Resolution,
        scan: ScanResult | None,
        lang: str,
        today: date,
    ) -> dict[str, Any]:
        rec, cert = res.record, res.certificate
        product = certificate = body = trace = None
        if res.group is not None:
            product = {
                "name": res.group.product_name,
                "description": res.group.product_description,
                "package": res.group.package,
                "label_spec": res.group.label_spec,
            }
        if res.batch is not None:
            product = {
                "name": res.batch.product,
                "description": None,
                "package": f"{res.batch.net_content_kg:g}千克" if res.batch.net_content_kg else None,
                "label_spec": BQ_LABEL_SPEC,
            }
            activated = res.batch_state.activated_at if res.batch_state else None
            tr = res.batch.trace
            trace = {
                "batch": res.batch.number,
                "producer": res.batch.producer,
                "activated_at": _iso(activated),
                "role": rec.bq_role if rec else None,
                **{k: tr.get(k) for k in ("plot", "seed", "inputs", "inspection")},
            }
        if cert is not None:
            certificate = {
                "number": cert.number,
                "holder": cert.holder,
                "kind": cert.kind.value,
                "status": cert.effective_status(today).value,
                "valid_from": _day(cert.valid_from),
                "valid_until": _day(cert.valid_until),
                "status_since": _day(cert.effective_status_since(today)),
            }
            body = {"code": cert.body_code, "name": cert.body_name}
        while_valid = issued_while_valid(rec.issued_on if rec else None, cert, today)
        summary = scan.summary if scan else None
        already = bool(rec is not None and rec.bq_role == "b" and summary and summary.count > 1)
        return {
            "code": code,
            "kind": kind.value if kind else None,
            "verdict": verdict.value,
            "reason": None,
            "message": message(
                verdict,
                lang,
                issued_while_valid=while_valid,
                already_verified=already,
                bq=kind is CodeKind.BQ,
            ),
            "product": product,
            "certificate": certificate,
            "certification_body": body,
            "issued_on": _day(rec.issued_on) if rec else None,
            "issued_while_valid": while_valid,
            # A never-issued code has no history a shopper could read (the scan is still
            # recorded, for the enumeration budget and the brand's view): null, as the
            # contract says for fields that do not apply.
            "scans": _scans(summary) if verdict is not Verdict.NOT_FOUND else None,
            "flags": [
                {"rule": f.rule, "severity": f.severity, "raised_at": _iso(f.raised_at)}
                for f in (scan.flags if scan else ())
            ],
            "trace": trace,
        }


def _scans(summary: ScanSummary | None) -> dict[str, Any] | None:
    if summary is None:
        return None
    you = None
    if summary.you_count is not None:
        you = {"count": summary.you_count, "first_at": _iso(summary.you_first_at)}
    return {
        "count": summary.count,
        "first_at": _iso(summary.first_at),
        "first_city": summary.first_city,
        "distinct_scanners": summary.distinct_scanners,
        "you": you,
    }
