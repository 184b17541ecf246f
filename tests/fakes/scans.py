"""An in-memory scan ledger (domain.ports.ScanLedger): what a verify records and reads back.

Per code: every recorded scan in order; the summary counts them, names the first one's
time and the distinct clients, and the asker's own count. Flags are raised by a test
(`raise_flag`) as the rules would; a review's status (domain.ports.FlagStatuses) takes a
dismissed flag out of the answers at once. A client that asks about more than
`enumeration_per_hour` never-issued codes is refused (`throttled`), lookups of such codes
(`domain.scans.LOOKUP_CHANNEL`) count toward it and are not recorded, as in the real
scan store.
"""

from __future__ import annotations

from datetime import datetime

from domain.errors import Unavailable
from domain.scans import (
    ACTIVE_STATUSES,
    LOOKUP_CHANNEL,
    OpenFlag,
    ScanInput,
    ScanResult,
    ScanSummary,
    StorePlace,
)


class FakeScanLedger:
    def __init__(self, enumeration_per_hour: int = 20) -> None:
        self.scans: dict[str, list[ScanInput]] = {}
        self.flags: dict[str, list[OpenFlag]] = {}
        self.flag_status: dict[tuple[str, str], str] = {}  # (code, rule) -> review status
        self.guesses: dict[str, set[str]] = {}  # client -> never-issued codes it asked about
        self.enumeration_per_hour = enumeration_per_hour
        self.down = False  # the store is away: every call raises Unavailable

    def raise_flag(self, code: str, rule: str, severity: str, at: datetime) -> None:
        self.flags.setdefault(code, []).append(OpenFlag(rule, severity, at))

    def set_flag_status(self, code: str, rule: str, status: str) -> None:
        self.flag_status[(code, rule)] = status

    def _flags(self, code: str) -> tuple[OpenFlag, ...]:
        statuses = self.flag_status
        return tuple(
            f for f in self.flags.get(code, ()) if statuses.get((code, f.rule), "open") in ACTIVE_STATUSES
        )

    def _summary(self, code: str, client: str | None) -> ScanSummary:
        seen = self.scans.get(code, [])
        mine = [s for s in seen if client is not None and s.client == client]
        return ScanSummary(
            count=len(seen),
            first_at=seen[0].at if seen else None,
            first_city=None,
            distinct_scanners=len({s.client or s.ip for s in seen}),
            you_count=len(mine) if client is not None else None,
            you_first_at=mine[0].at if mine else None,
        )

    def _check(self) -> None:
        if self.down:
            raise Unavailable("the scan store is away", code="scan_store_unavailable")

    def record(self, scan: ScanInput) -> ScanResult:
        self._check()
        throttled = False
        if scan.verdict == "not_found" and scan.client is not None:
            asked = self.guesses.setdefault(scan.client, set())
            asked.add(scan.code)
            throttled = len(asked) > self.enumeration_per_hour
        if scan.channel != LOOKUP_CHANNEL and not throttled:
            self.scans.setdefault(scan.code, []).append(scan)
        return ScanResult(self._summary(scan.code, scan.client), self._flags(scan.code), throttled)

    def peek(
        self, code: str, client: str | None, windows: str = "", place: StorePlace | None = None
    ) -> ScanResult:
        # No projection here (no `place` is ever given): the verify resolves every code.
        self._check()
        return ScanResult(self._summary(code, client), self._flags(code))
