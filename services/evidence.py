"""The evidence pack of one flag (domain/evidence.py) for whoever may read the flag: what
the flag's dashboard page shows (services.cases.CaseService.flag_case: the flag, its scans
newest first, their totals, the shoppers' reports, with the same policy: a flag outside
the scope is not found), plus the code's record as a regulator reads it (certificate,
holder, body, product, package, order) and the reports' photos, drawn by the renderer."""

from __future__ import annotations

from datetime import UTC, datetime

from domain.bulk import Scope
from domain.errors import NotFound
from domain.evidence import (
    MAX_PHOTOS,
    EvidencePack,
    EvidenceRecords,
    EvidenceRenderer,
    EvidenceReport,
    EvidenceScan,
)
from services.alerts import MAX_ID
from services.cases import CaseService


class EvidenceService:
    def __init__(self, cases: CaseService, records: EvidenceRecords, renderer: EvidenceRenderer) -> None:
        self.cases = cases
        self.records = records
        self.renderer = renderer

    def pack(self, flag_id: int, scope: Scope) -> EvidencePack:
        if not 1 <= flag_id <= MAX_ID:  # past any row id (and past what the database takes)
            raise NotFound(f"no flag {flag_id}", code="flag_not_found")
        case = self.cases.flag_case(flag_id, scope)
        flag = case["flag"]
        scans = [
            EvidenceScan(
                s["at"],
                s["channel"],
                s["verdict"],
                s["city"],
                s["province"],
                s["lat"],
                s["lng"],
                s["scanner"],
            )
            for s in reversed(case["scans"])  # oldest first: the table and the path read in time order
        ]
        reports = []
        photos = 0
        for r in case["reports"]:
            photo, kind = None, None
            if r["has_photo"] and photos < MAX_PHOTOS:
                try:
                    photo, kind = self.cases.report_photo(r["id"], scope)
                    photos += 1
                except NotFound:  # gone since the list was read
                    pass
            reports.append(
                EvidenceReport(r["at"], r["text"], r["shop"], r["city"], r["province"], photo, kind)
            )
        return EvidencePack(
            flag,
            self.records.record(flag["code"]),
            scans,
            case["totals"]["scans"],
            reports,
            datetime.now(UTC),
        )

    def pdf(self, flag_id: int, scope: Scope) -> tuple[str, bytes]:
        """(file name, PDF bytes)."""
        pack = self.pack(flag_id, scope)
        return f"evidence-flag-{flag_id}-{pack.flag['code']}.pdf", self.renderer.render(pack)
