"""The verify use case: shopper input in, one verdict with the facts behind it out (an
Answer, services/answers.py)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime

from domain import metrics
from domain.china_time import china_today
from domain.codes import (
    CodeKind,
    InvalidReason,
    ParsedCode,
    check_without_lookup,
    normalize,
    normalize_identity,
)
from domain.errors import BadInput, TooManyRequests, Unavailable
from domain.ports import RateWindows, RecordReader, Resolution, ScanLedger
from domain.records import LabelGroup
from domain.scans import (
    LOOKUP_CHANNEL,
    SCAN_STORE_UNAVAILABLE,
    VERIFIED_CHANNEL_PREFIX,
    LabelFacts,
    OpenFlag,
    ScanInput,
    ScanResult,
    StorePlace,
)
from domain.verdicts import Verdict, issued_while_valid, registry_verdict, with_flags
from services.answers import Answer, CertificateFacts, ProductFacts, TraceFacts

log = logging.getLogger(__name__)

CHANNELS = frozenset({"manual", "qr", "photo", "web", "wechat", "api"})
# Wuchang rice traceability labels are one printed size (the provider's 50 mm square).
BQ_LABEL_SPEC = "50×50毫米方形溯源防伪标签"
# The enumeration window of the scan store: a refused guesser may come back after it.
ENUMERATION_WINDOW_S = 3600
_UNSCANNED = object()  # the scan is still to be made


@dataclass(frozen=True, slots=True)
class VerifyRequest:
    input: str
    channel: str = "manual"
    lat: float | None = None
    lng: float | None = None
    client: str | None = None
    ip: str | None = None
    at: datetime | None = None
    event_id: str | None = None  # imported historical scans keep their own ids (idempotency)
    # The client is a WeChat-verified session (the mini-program's login), not a claimed id:
    # it may take a rule to `suspicious`, and its coordinates count as a place.
    verified: bool = False
    # The label's identity code (身份码) sent with the code (issue 17): another label's
    # makes the answer `suspicious` (a label made of two) and raises identity_mismatch.
    identity_code: str | None = None
    # The request's rate-limit windows, when its entrypoint left them to the scan store's
    # round trip (None: counted already, or not limited).
    windows: RateWindows | None = None


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

    def verify(self, req: VerifyRequest, *, record: bool = True) -> Answer:
        if req.channel not in CHANNELS:
            raise BadInput(f"channel must be one of {sorted(CHANNELS)}", code="invalid_channel")
        now = req.at or self.clock()
        # China's calendar day decides expiry and the year check: at 00:30 Beijing time
        # UTC still says yesterday, and a certificate's last day ends at midnight in China.
        today = china_today(now)
        given = req.identity_code.strip() if req.identity_code else ""
        identity_given = normalize_identity(given) if given else None
        parsed = normalize(req.input)
        if parsed.invalid is None and parsed.kind is not CodeKind.BQ:
            parsed = check_without_lookup(parsed, today=today, known_bodies=self.resolver.known_bodies())
        if parsed.invalid is not None:
            _count_windows(req)  # no scan store call to count them in
            return Answer(parsed.code, parsed.kind, Verdict.INVALID_FORMAT, reason=parsed.invalid)
        kind = parsed.kind.value if parsed.kind else None
        resolution, scan = self._in_store(parsed, kind, req, now, today, identity_given, record)
        if resolution is None:
            resolution = self.resolver.resolve(parsed)
        # The registry's verdict, once: the scan store records it, and the scan's flags
        # are applied to it, once, for the answer.
        base = _registry_verdict(resolution, today)
        label = _label_facts(resolution, today, identity_given)
        if scan is _UNSCANNED:  # (a scan made in the store's call was refused there)
            scan = self._scan(parsed.code, kind, base, req, now, record, resolution.group, label)
            self._refuse(scan)
        assert scan is None or isinstance(scan, ScanResult)
        flags = scan.flags if scan else ()
        verdict, reason = with_flags(base, flags), None
        if label is not None and label.mismatch and verdict in (Verdict.GENUINE, Verdict.SUSPICIOUS):
            # The asker holds a label made of two: told so whatever the stored flag's weight.
            verdict, reason = Verdict.SUSPICIOUS, InvalidReason.IDENTITY_MISMATCH
        return _answer(parsed.code, parsed.kind, verdict, flags, resolution, scan, today, reason)

    # -- pieces -----------------------------------------------------------------------------

    def _in_store(
        self,
        parsed: ParsedCode,
        kind: str | None,
        req: VerifyRequest,
        now: datetime,
        today: date,
        identity_given: str | None,
        record: bool,
    ) -> tuple[Resolution | None, ScanResult | object | None]:
        """A code this worker does not hold, resolved by the scan store in the scan's own
        round trip where it can (one round trip for a first scan instead of two): its
        resolution and the scan made. (None, _UNSCANNED): resolve and scan as usual; (None,
        None): the scan store failed (the windows were counted), resolve here.

        A live scan, or a read (GET of a code; the script then reads the code's record
        and its scan state, and needs no verdict); not an imported event (its verdict is
        its own day's)."""
        if self.scans is None or req.event_id is not None or req.at is not None:
            return None, _UNSCANNED
        place = self.resolver.place_of(parsed, today)
        if place is None:
            return None, _UNSCANNED
        seen: list[Resolution] = []

        def resolve_with(value: str) -> tuple[str, LabelGroup | None, LabelFacts | None]:
            res = self.resolver.resolution_of(parsed, value)
            seen.append(res)
            label = _label_facts(res, today, identity_given)
            return _registry_verdict(res, today).value, res.group, label

        scan = self._scan(
            parsed.code,
            kind,
            None,
            req,
            now,
            record,
            place=place,
            resolve_with=resolve_with if record else None,
        )
        if scan is None:
            return None, None
        if scan.resolved == "":
            # Not resolved there: nothing was counted or recorded. The windows go with the
            # scan made next, or are counted by the entrypoint if the answer fails first.
            if req.windows is not None:
                req.windows.release()
            return None, _UNSCANNED
        self._refuse(scan)
        assert scan.resolved is not None
        return (seen[-1] if seen else self.resolver.resolution_of(parsed, scan.resolved)), scan

    def _refuse(self, scan: ScanResult | None) -> None:
        if scan is not None and scan.limited_s:
            raise TooManyRequests(
                "too many requests from this client or network; try again later",
                code="rate_limited",
                retry_after_s=scan.limited_s,
            )
        if self.throttle and scan is not None and scan.throttled:
            # Many never-issued codes from one client in an hour: a guesser, not a shopper.
            raise TooManyRequests(
                "too many unknown codes from this client; try again later",
                code="enumeration_throttled",
                retry_after_s=ENUMERATION_WINDOW_S,
            )

    def _scan(
        self,
        code: str,
        kind: str | None,
        verdict: Verdict | None,
        req: VerifyRequest,
        now: datetime,
        record: bool,
        group: LabelGroup | None = None,
        label: LabelFacts | None = None,
        *,
        place: StorePlace | None = None,
        resolve_with: Callable[[str], tuple[str, LabelGroup | None, LabelFacts | None]] | None = None,
    ) -> ScanResult | None:
        """The scan recorded (or read), or None when the scan store failed (its windows
        then counted here). `verdict` None: the store resolves the code at `place`."""
        if self.scans is None:
            _count_windows(req)
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
            verdict=verdict.value if verdict is not None else "",
            client=req.client,
            ip=req.ip,
            lat=req.lat,
            lng=req.lng,
            event_id=req.event_id,
            group=group,
            label=label,
            windows=req.windows.payload if req.windows is not None and req.event_id is None else "",
            place=place,
            resolve_with=resolve_with,
        )
        if req.event_id is not None:
            # An imported event must land or be reported: no silent degradation.
            _count_windows(req)
            return self.scans.record(scan)
        try:
            if not record and channel != LOOKUP_CHANNEL:
                return self.scans.peek(code, req.client, scan.windows, place)
            return self.scans.record(scan)
        except Unavailable as exc:
            if exc.code != SCAN_STORE_UNAVAILABLE:
                # The database's, while the code was resolved in the scan's call after the
                # script had counted the windows: the answer fails, nothing counted twice.
                raise
            # The scan store is an addition to the answer, never a reason to refuse one;
            # the windows it did not count are counted on their own.
            metrics.incr("scan_store_errors")
            _count_windows(req)
            return None


def _label_facts(res: Resolution, today: date, identity_given: str | None) -> LabelFacts | None:
    """The scanned label as the label rules see it: organic codes only (a BQ token has no
    identity code and no order stock)."""
    rec = res.record
    if rec is None or rec.kind is CodeKind.BQ:
        return None
    group = res.group
    return LabelFacts(
        identity_code=rec.identity_code,
        order_number=group.order_number if group else None,
        in_stock=group is not None and group.in_stock(rec.identity_code, today),
        identity_given=identity_given,
    )


def _count_windows(req: VerifyRequest) -> None:
    """The request's windows when no scan store call counts them (raises TooManyRequests)."""
    if req.windows is not None:
        req.windows.count_now()


def _registry_verdict(res: Resolution, today: date) -> Verdict:
    if res.record is None:
        return registry_verdict(found=False, today=today)
    activated = None
    if res.record.kind is CodeKind.BQ:
        activated = res.batch_state is not None and res.batch_state.activated_at is not None
    return registry_verdict(
        found=True,
        voided=res.order is not None and res.order.voided_at is not None,
        bq_activated=activated,
        certificate=res.certificate,
        today=today,
    )


def _answer(
    code: str,
    kind: CodeKind | None,
    verdict: Verdict,
    flags: tuple[OpenFlag, ...],
    res: Resolution,
    scan: ScanResult | None,
    today: date,
    reason: InvalidReason | None = None,
) -> Answer:
    rec, cert = res.record, res.certificate
    product = certificate = trace = None
    if res.group is not None:
        product = ProductFacts(
            res.group.product_name, res.group.product_description, res.group.package, res.group.label_spec
        )
    if res.batch is not None:
        package = f"{res.batch.net_content_kg:g}千克" if res.batch.net_content_kg else None
        product = ProductFacts(res.batch.product, None, package, BQ_LABEL_SPEC)
        tr = res.batch.trace
        trace = TraceFacts(
            batch=res.batch.number,
            producer=res.batch.producer,
            activated_at=res.batch_state.activated_at if res.batch_state else None,
            role=rec.bq_role if rec else None,
            plot=tr.get("plot"),
            seed=tr.get("seed"),
            inputs=tr.get("inputs"),
            inspection=tr.get("inspection"),
            purchases=tr.get("purchases"),
        )
    if cert is not None:
        certificate = CertificateFacts(
            number=cert.number,
            holder=cert.holder,
            kind=cert.kind,
            status=cert.effective_status(today),
            valid_from=cert.valid_from,
            valid_until=cert.valid_until,
            status_since=cert.effective_status_since(today),
            body_code=cert.body_code,
            body_name=cert.body_name,
        )
    summary = scan.summary if scan else None
    return Answer(
        code,
        kind,
        verdict,
        reason=reason,
        product=product,
        certificate=certificate,
        issued_on=rec.issued_on if rec else None,
        issued_while_valid=issued_while_valid(rec.issued_on if rec else None, cert, today),
        already_verified=bool(rec is not None and rec.bq_role == "b" and summary and summary.count > 1),
        # A never-issued code has no history a shopper could read (the scan is still
        # recorded, for the enumeration budget and the brand's view).
        scans=summary if verdict is not Verdict.NOT_FOUND else None,
        flags=flags,
        trace=trace,
    )
