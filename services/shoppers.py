"""A mini-program shopper's own data: history of their checks, erasure, and reports of
suspected counterfeits (which reach the brand as evidence on the code's flags)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from domain.codes import normalize
from domain.errors import BadInput

if TYPE_CHECKING:
    from registry.scans import SqlScanStore


class ShopperService:
    def __init__(
        self,
        sql: SqlScanStore,
        hash_client: Callable[[str], str | None],
        locate: Callable[[float | None, float | None], tuple[str | None, str | None]],
    ) -> None:
        self.sql = sql
        self.hash_client = hash_client
        self.locate = locate

    def history(self, openid: str) -> list[dict[str, Any]]:
        client = self.hash_client(openid)
        return self.sql.history(client) if client else []

    def erase(self, openid: str) -> int:
        client = self.hash_client(openid)
        return self.sql.erase(client) if client else 0

    def report(
        self,
        openid: str,
        code: str,
        text: str | None,
        shop: str | None,
        lat: float | None,
        lng: float | None,
        photo: bytes | None,
        photo_type: str | None,
    ) -> dict[str, int]:
        parsed = normalize(code)
        if parsed.invalid is not None:
            raise BadInput("the report must name a code from the label", code="invalid_code")
        city, province = self.locate(
            round(lat, 2) if lat is not None else None, round(lng, 2) if lng is not None else None
        )
        client = self.hash_client(openid)
        report_id = self.sql.add_report(parsed.code, client, text, shop, photo, photo_type, city, province)
        flag_id = self.sql.add_evidence(
            parsed.code,
            {
                "report_id": report_id,
                "at": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
                "text": text,
                "shop": shop,
                "city": city,
                "province": province,
                "photo": photo is not None,
                "reporter": client[:8] if client else None,
            },
        )
        return {"report_id": report_id, "flag_id": flag_id}
