"""A flag's case and a code's lookup for the dashboard: the evidence about one code in the
signed-in scope, without personal data beyond a scanner's shortened keyed hash.

A flag's case: the flag and the scans that raised it, every retained scan of its code
(time, city, channel, a short scanner hash), the scans since the flag, the shoppers'
reports with their photos, the code's record (product, certificate, order) as the verify
reads it, and a timeline (first scan, flag raised, reports, reviews, latest scan).
A code's lookup: the record and its scan history aggregated (per place, per day, per
channel; no scanner at all), and its flags. A code or a flag outside the scope is not
found, exactly as one that does not exist.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from domain import access
from domain.access import Owner
from domain.bulk import Scope
from domain.codes import CodeKind, normalize, organic_key
from domain.errors import BadInput, NotFound
from domain.ports import CaseReader, CodeOwners, FlagArchive, RecordReader
from services.answers import Answer
from services.audit import AuditService
from services.verify import VerifyRequest, VerifyService

MAX_SCANS = 500  # a flag's page lists at most this many scans (newest first); counts are whole


@dataclass(frozen=True, slots=True)
class CodeRecord:
    """The code as the verify reads it (its answer without recording a scan) and its order."""

    answer: Answer
    order: str | None
    order_voided_at: datetime | None
    identity_code: str | None


class CaseService:
    def __init__(
        self,
        flags: FlagArchive,
        cases: CaseReader,
        owners: CodeOwners,
        records: RecordReader,
        verify: VerifyService,
        audit: AuditService,
        city_point: Callable[[str, str], tuple[float, float] | None] = lambda _p, _c: None,
    ) -> None:
        self.flags = flags
        self.cases = cases
        self.owners = owners
        self.records = records
        self.verify = verify
        self.audit = audit
        self.city_point = city_point  # (lng, lat) to draw a city at (anomaly.geo)

    # -- scope ------------------------------------------------------------------------------

    def _owner(self, code: str) -> Owner | None:
        parsed = normalize(code)
        if parsed.invalid is not None or parsed.kind is None:
            return None
        if parsed.kind is CodeKind.BQ:
            return self.owners.bq_owners([parsed.code]).get(parsed.code)
        key = organic_key(parsed.code)
        return self.owners.code_owners([key]).get(key)

    def _check(self, code: str, scope: Scope) -> None:
        owner = self._owner(code)
        if owner is None or not access.may_read(scope, owner):
            raise NotFound(f"no code {code} in your scope", code="code_not_found")

    # -- reading ----------------------------------------------------------------------------

    def record(self, code: str) -> CodeRecord:
        parsed = normalize(code)
        answer = self.verify.verify(VerifyRequest(input=parsed.code or code, channel="web"), record=False)
        resolution = self.records.resolve(parsed)
        order = resolution.order
        return CodeRecord(
            answer=answer,
            order=order.number if order is not None else None,
            order_voided_at=order.voided_at if order is not None else None,
            identity_code=resolution.record.identity_code if resolution.record is not None else None,
        )

    def flag_case(self, flag_id: int, scope: Scope) -> dict[str, Any]:
        found = self.flags.get_flag(flag_id)
        if found is None or not access.may_read(scope, found[1]):
            raise NotFound(f"no flag {flag_id}", code="flag_not_found")
        flag = found[0]
        code = flag["code"]
        raised = datetime.fromisoformat(flag["raised_at"].replace("Z", "+00:00"))
        scans = self.cases.scans(code, limit=MAX_SCANS)
        for scan in scans:
            scan["since_flag"] = scan["at"] >= raised
        raised_by = {s.get("event_id") for s in flag["evidence"].get("scans", []) if isinstance(s, dict)}
        for scan in scans:
            scan["raised_flag"] = scan["event_id"] in raised_by
        totals = self.cases.scan_totals(code)
        since = self.cases.scan_totals(code, since=raised)
        reports = self.cases.reports(code)
        reviews = [e for e in self.audit.entries(Scope("all"), target=f"flag:{flag_id}", limit=50)]
        others = [f for f in self.cases.flags_of(code) if f["id"] != flag_id]
        return {
            "flag": flag,
            "record": self.record(code),
            "scans": scans,
            "totals": totals,
            "since": since,
            "reports": reports,
            "reviews": reviews,
            "other_flags": others,
            "timeline": _timeline(flag, raised, totals, since, reports, reviews),
            "route": self._route(scans),
        }

    def _route(self, scans: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Where the code travelled, oldest first: each scan's place as (lng, lat), its
        coordinates (rounded when stored) or else its city's; scans with no place left out."""
        route = []
        for scan in reversed(scans):
            point: tuple[float, float] | None = None
            if scan["lat"] is not None and scan["lng"] is not None:
                point = (scan["lng"], scan["lat"])
            elif scan["province"] and scan["city"]:
                point = self.city_point(scan["province"], scan["city"])
            if point is not None:
                route.append(
                    {
                        "lng": round(point[0], 2),
                        "lat": round(point[1], 2),
                        "city": scan["city"] or "",
                        "at": scan["at"].isoformat(),
                        "since_flag": scan["since_flag"],
                    }
                )
        return route

    def lookup(self, raw: str, scope: Scope) -> dict[str, Any]:
        """Any code of the scope: its record and its scan history, aggregated."""
        parsed = normalize(raw or "")
        if parsed.invalid is not None or parsed.kind is None:
            raise BadInput("this is not a code we can read", code="invalid_code")
        self._check(parsed.code, scope)
        code = parsed.code
        return {
            "code": code,
            "record": self.record(code),
            "totals": self.cases.scan_totals(code),
            "places": self.cases.scans_by_place(code),
            "days": self.cases.scans_by_day(code),
            "channels": self.cases.scans_by_channel(code),
            "flags": self.cases.flags_of(code),
        }

    def report_photo(self, report_id: int, scope: Scope) -> tuple[bytes, str]:
        found = self.cases.report_photo(report_id)
        if found is None:
            raise NotFound(f"no photo for report {report_id}", code="photo_not_found")
        code, photo, media_type = found
        try:
            self._check(code, scope)
        except NotFound:
            raise NotFound(f"no photo for report {report_id}", code="photo_not_found") from None
        return photo, media_type


def _timeline(
    flag: dict[str, Any],
    raised: datetime,
    totals: dict[str, Any],
    since: dict[str, Any],
    reports: list[dict[str, Any]],
    reviews: list[Any],
) -> list[dict[str, Any]]:
    """The case's events, oldest first: the first scan, the flag, reports, reviews, and
    the latest scan when scans came after the flag."""
    events: list[dict[str, Any]] = []
    if totals["first_at"] is not None:
        events.append({"at": totals["first_at"], "kind": "first_scan"})
    events.append({"at": raised, "kind": "raised", "rule": flag["rule"], "severity": flag["severity"]})
    for report in reports:
        events.append({"at": report["at"], "kind": "report", "city": report["city"], "shop": report["shop"]})
    for review in reviews:
        events.append(
            {
                "at": review["at"],
                "kind": "review",
                "who": review["actor_name"],
                "status": (review["after"] or {}).get("status"),
                "note": (review["after"] or {}).get("note"),
            }
        )
    if since["scans"]:
        events.append({"at": since["last_at"], "kind": "latest_scan", "count": since["scans"]})
    return sorted(events, key=lambda e: e["at"])
