"""Scan intelligence use cases for brands and bodies: importing historical scan events
through the same rules, listing flags with their evidence, reviewing them."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from domain.bulk import BulkResult, Scope
from domain.errors import BadInput, DomainError
from services.verify import CHANNELS, VerifyRequest, VerifyService

if TYPE_CHECKING:
    from anomaly.adapter import ScanStore
    from registry.scans import SqlScanStore


class _Location(BaseModel):
    lat: Annotated[float, Field(ge=-90, le=90)]
    lng: Annotated[float, Field(ge=-180, le=180)]


class ScanEventIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    event_id: Annotated[str, StringConstraints(min_length=1, max_length=40)]
    code: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    at: datetime
    channel: str = "api"
    client: Annotated[str, StringConstraints(max_length=128)] | None = None
    location: _Location | None = None
    ip: Annotated[str, StringConstraints(max_length=45)] | None = None


class FlagReviewIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    status: Literal["confirmed", "dismissed", "open"]
    note: Annotated[str, StringConstraints(max_length=1000)] | None = None


class ScanAdminService:
    def __init__(self, verify: VerifyService, scans: ScanStore, sql: SqlScanStore) -> None:
        self.verify = verify
        self.scans = scans
        self.sql = sql

    def import_events(self, rows: Sequence[Any], scope: Scope) -> BulkResult:
        """Historical events in event-time order through the same rules as live scans;
        idempotent by event id. Returns once every event is evaluated."""
        result = BulkResult()
        events: list[tuple[int, ScanEventIn]] = []
        for i, row in enumerate(rows):
            try:
                event = ScanEventIn.model_validate(row)
            except ValidationError as exc:
                err = exc.errors(include_url=False)[0]
                where = ".".join(str(p) for p in err["loc"]) or "row"
                key = row.get("event_id", "") if isinstance(row, dict) else ""
                result.reject(i, key, "invalid_row", f"{where}: {err['msg']}")
                continue
            if event.at.tzinfo is None:
                event = event.model_copy(update={"at": event.at.replace(tzinfo=UTC)})
            events.append((i, event))
        events.sort(key=lambda pair: pair[1].at)
        for i, event in events:
            channel = event.channel if event.channel in CHANNELS else "api"
            try:
                answer = self.verify.verify(
                    VerifyRequest(
                        input=event.code,
                        channel=channel,
                        client=event.client,
                        ip=event.ip,
                        lat=event.location.lat if event.location else None,
                        lng=event.location.lng if event.location else None,
                        at=event.at,
                        event_id=event.event_id,
                    ),
                    record=True,
                )
            except DomainError as exc:
                result.reject(i, event.event_id, exc.code, exc.detail)
                continue
            if answer["verdict"] == "invalid_format":
                result.reject(i, event.event_id, "invalid_code", answer["message"])
                continue
            result.accepted += 1
        return result

    def list_flags(self, scope: Scope, args: dict[str, str]) -> dict[str, Any]:
        since = None
        if args.get("since"):
            try:
                since = datetime.fromisoformat(args["since"].replace("Z", "+00:00"))
            except ValueError as exc:
                raise BadInput("since must be an ISO-8601 date or time", code="invalid_since") from exc
        for name, allowed in (
            ("severity", {"warn", "suspicious"}),
            ("status", {"open", "confirmed", "dismissed"}),
        ):
            if args.get(name) and args[name] not in allowed:
                raise BadInput(f"{name} must be one of {sorted(allowed)}", code=f"invalid_{name}")
        try:
            limit = min(max(int(args.get("limit", "100")), 1), 500)
        except ValueError as exc:
            raise BadInput("limit must be a number", code="invalid_limit") from exc
        return self.sql.list_flags(
            scope,
            rule=args.get("rule") or None,
            severity=args.get("severity") or None,
            status=args.get("status") or None,
            certificate=args.get("certificate") or None,
            since=since,
            cursor=args.get("cursor") or None,
            limit=limit,
        )

    def review_flag(self, flag_id: int, body: Any, scope: Scope) -> dict[str, Any]:
        try:
            review = FlagReviewIn.model_validate(body)
        except ValidationError as exc:
            err = exc.errors(include_url=False)[0]
            raise BadInput(
                f"{'.'.join(str(p) for p in err['loc']) or 'body'}: {err['msg']}", code="invalid_body"
            ) from exc
        flag = self.sql.update_flag(flag_id, review.status, review.note, scope)
        # The verdict follows the review at once: a dismissed copy flag stops saying "suspicious".
        self.scans.set_flag_status(flag["code"], flag["rule"], review.status)
        return flag
