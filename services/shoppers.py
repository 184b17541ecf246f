"""A shopper's own data: history of their checks, erasure, and reports of suspected
counterfeits (which reach the brand as evidence on the code's `shopper_report` flag).

Reports come from the mini-program (the reporter is the WeChat user) and from the web
result page (the reporter is the page's first-party visitor id): one path, one evidence
shape, the entrypoint named in `channel`."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from domain.china_time import iso_utc
from domain.codes import normalize
from domain.errors import BadInput
from domain.ports import ShopperArchive
from domain.scans import PastCheck
from services.answers import ReportReceipt


class ShopperService:
    def __init__(
        self,
        sql: ShopperArchive,
        hash_client: Callable[[str], str | None],
        locate: Callable[[float | None, float | None], tuple[str | None, str | None]],
    ) -> None:
        self.sql = sql
        self.hash_client = hash_client
        self.locate = locate

    def history(self, openid: str) -> list[PastCheck]:
        client = self.hash_client(openid)
        return self.sql.history(client) if client else []

    def erase(self, openid: str) -> int:
        client = self.hash_client(openid)
        return self.sql.erase(client) if client else 0

    def report(
        self,
        reporter: str,
        code: str,
        text: str | None,
        shop: str | None,
        lat: float | None,
        lng: float | None,
        photo: bytes | None,
        photo_type: str | None,
        *,
        place: str | None = None,
        channel: str = "wechat",
    ) -> ReportReceipt:
        """`reporter`: the WeChat openid, or `web:<visitor id>` from the result page (kept
        only as a keyed hash). `place`: where it was bought, as the shopper wrote it."""
        parsed = normalize(code)
        if parsed.invalid is not None:
            raise BadInput("the report must name a code from the label", code="invalid_code")
        city, province = self.locate(
            round(lat, 2) if lat is not None else None, round(lng, 2) if lng is not None else None
        )
        client = self.hash_client(reporter)
        report_id = self.sql.add_report(parsed.code, client, text, shop, photo, photo_type, city, province)
        flag_id = self.sql.add_evidence(
            parsed.code,
            {
                "report_id": report_id,
                "at": iso_utc(datetime.now(UTC)),
                "channel": channel,
                "text": text,
                "shop": shop,
                # The reports table has no column for it (yet): the brand reads it here.
                "place": place,
                "city": city,
                "province": province,
                "photo": photo is not None,
                "reporter": client[:8] if client else None,
            },
        )
        return ReportReceipt(report_id, flag_id)
