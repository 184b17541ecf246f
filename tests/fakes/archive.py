"""An in-memory scan archive: domain.ports.FlagArchive and ShopperArchive over dicts.

Flags carry the owner a test gives them (the SQL archive reads it from current
ownership); a shopper's checks and reports are kept under the client hash they are handed,
as the SQL archive keeps them. Tests read its tables directly.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

from domain.access import Owner
from domain.errors import NotFound
from domain.scans import FLAG_FILE_COLUMNS, FlagFilters, PastCheck


class FakeScanArchive:
    def __init__(self) -> None:
        self._ids = itertools.count(1)
        self.flags: dict[int, dict[str, Any]] = {}
        self.owners: dict[int, Owner] = {}
        self.checks: dict[str, list[PastCheck]] = {}  # client hash -> newest first
        self.reports: dict[int, dict[str, Any]] = {}

    def add_flag(self, code: str, rule: str, severity: str, owner: Owner) -> int:
        flag_id = next(self._ids)
        self.flags[flag_id] = {
            "id": flag_id,
            "code": code,
            "rule": rule,
            "severity": severity,
            "status": "open",
            "note": None,
            "evidence": {},
        }
        self.owners[flag_id] = owner
        return flag_id

    # -- domain.ports.FlagArchive ------------------------------------------------------------

    def list_flags(
        self,
        owned_by: Owner | None,
        *,
        rule: str | None = None,
        severity: str | None = None,
        status: str | None = None,
        certificate: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        product: str | None = None,
        province: str | None = None,
        cursor: str | None = None,
        limit: int = 100,
    ) -> dict[str, Any]:
        def owned(flag_id: int) -> bool:
            if owned_by is None:
                return True
            owner = self.owners[flag_id]
            if owned_by.body_id is not None:
                return owner.body_id == owned_by.body_id
            return owner.organization_id == owned_by.organization_id

        wanted = {"rule": rule, "severity": severity, "status": status}
        items = [
            dict(f)
            for i, f in sorted(self.flags.items(), reverse=True)
            if owned(i) and all(v is None or f[k] == v for k, v in wanted.items())
        ]
        return {"items": items[:limit], "next": None}

    def export_flags(
        self, owned_by: Owner | None, filters: FlagFilters, limit: int
    ) -> Iterator[tuple[Any, ...]]:
        listed = self.list_flags(
            owned_by, rule=filters.rule, severity=filters.severity, status=filters.status, limit=limit
        )["items"]
        return iter(
            [
                tuple(json.dumps(f[c]) if c == "evidence" else f.get(c) for c in FLAG_FILE_COLUMNS)
                for f in listed
            ]
        )

    def get_flag(self, flag_id: int) -> tuple[dict[str, Any], Owner] | None:
        flag = self.flags.get(flag_id)
        return (dict(flag), self.owners[flag_id]) if flag is not None else None

    def update_flag(
        self, flag_id: int, status: str, note: str | None, allowed: Callable[[Owner], bool]
    ) -> tuple[dict[str, Any], dict[str, Any], Owner]:
        flag = self.flags.get(flag_id)
        if flag is None or not allowed(self.owners[flag_id]):
            raise NotFound(f"no flag {flag_id}", code="flag_not_found")
        before = {"status": flag["status"], "note": flag["note"]}
        flag.update(status=status, note=note)
        after = {k: flag[k] for k in ("id", "code", "rule", "severity", "status", "note")}
        return after, before, self.owners[flag_id]

    # -- domain.ports.ShopperArchive ---------------------------------------------------------

    def history(self, client_hash: str, limit: int = 100) -> list[PastCheck]:
        return self.checks.get(client_hash, [])[:limit]

    def erase(self, client_hash: str) -> int:
        for report in self.reports.values():
            if report["client_hash"] == client_hash:
                report["client_hash"] = None
        return len(self.checks.pop(client_hash, []))

    def add_report(
        self,
        code: str,
        client_hash: str | None,
        text: str | None,
        shop: str | None,
        photo: bytes | None,
        photo_type: str | None,
        city: str | None,
        province: str | None,
    ) -> int:
        report_id = next(self._ids)
        self.reports[report_id] = {
            "code": code,
            "client_hash": client_hash,
            "text": text,
            "shop": shop,
            "photo": photo,
            "photo_type": photo_type,
            "city": city,
            "province": province,
        }
        return report_id

    def add_evidence(self, code: str, report: dict[str, Any]) -> int:
        found = next(
            (i for i, f in self.flags.items() if f["code"] == code and f["rule"] == "shopper_report"), None
        )
        if found is None:
            found = self.add_flag(code, "shopper_report", "warn", Owner())
        flag = self.flags[found]
        flag["evidence"].setdefault("reports", []).append(report)
        flag["status"] = "open"  # a new report reopens a reviewed flag, as in SQL
        flag["updated_at"] = datetime.now(UTC)
        return found
