"""Scan intelligence use cases for brands and bodies: importing historical scan events
through the same rules, listing flags with their evidence, reviewing them."""

from __future__ import annotations

import functools
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from domain import access
from domain.accounts import Actor
from domain.bulk import BulkResult, Scope
from domain.codes import CodeKind, normalize, organic_key
from domain.errors import BadInput, DomainError
from domain.ports import CodeOwners, FlagArchive, FlagStatuses
from domain.scans import FlagFilters, FlagRule
from domain.verdicts import Verdict, message
from services.audit import AuditService, token_actor
from services.verify import CHANNELS, VerifyRequest, VerifyService


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


# The rules a flag can name (the `rule` filter of GET /api/v1/admin/flags).
FLAG_RULES = tuple(FlagRule)


class FlagReviewIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    status: Literal["confirmed", "dismissed", "open"]
    note: Annotated[str, StringConstraints(max_length=1000)] | None = None


class ScanAdminService:
    def __init__(
        self,
        verify: VerifyService,
        scans: FlagStatuses,
        sql: FlagArchive,
        registry: CodeOwners,
        audit: AuditService | None = None,
    ) -> None:
        self.verify = verify
        self.scans = scans
        self.sql = sql
        self.registry = registry
        self.audit = audit

    def import_events(self, rows: Sequence[Any], scope: Scope) -> BulkResult:
        """Historical events in event-time order through the same rules as live scans;
        idempotent by event id. Returns once every event is evaluated.

        Events move a code's verdict and its public first scan, so each token imports
        events only for issued codes in its scope: a body's codes, an organization's
        certificates and batches, any issued code for the all scope. Others are `forbidden`,
        never-issued codes `code_not_found` (no history planted ahead of a code).
        """
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
        events = self._in_scope(events, scope, result)
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
            if answer.verdict is Verdict.INVALID_FORMAT:
                # The row's detail is what a shopper typing it would read (in Chinese).
                result.reject(
                    i, event.event_id, "invalid_code", message(answer.verdict, "zh", invalid=answer.reason)
                )
                continue
            result.accepted += 1
        return result

    def _in_scope(
        self, events: list[tuple[int, ScanEventIn]], scope: Scope, result: BulkResult
    ) -> list[tuple[int, ScanEventIn]]:
        """The events whose code is issued and in the token's scope; the rest are rejected.
        Codes that cannot be codes at all are left to the verify call (`invalid_code`)."""
        parsed = {i: normalize(event.code) for i, event in events}
        organic = [organic_key(p.code) for p in parsed.values() if p.invalid is None and _is_organic(p.kind)]
        bq = [p.code for p in parsed.values() if p.invalid is None and p.kind is CodeKind.BQ]
        code_owners = self.registry.code_owners(sorted(set(organic))) if organic else {}
        bq_owners = self.registry.bq_owners(sorted(set(bq))) if bq else {}
        kept = []
        for i, event in events:
            p = parsed[i]
            if p.invalid is not None or p.kind is None:
                kept.append((i, event))
                continue
            owner = bq_owners.get(p.code) if p.kind is CodeKind.BQ else code_owners.get(organic_key(p.code))
            if owner is None:
                result.reject(i, event.event_id, "code_not_found", f"no issued code {p.code}")
            elif not access.may_read(scope, owner):
                result.reject(
                    i, event.event_id, "forbidden", "the code belongs to another body or organization"
                )
            else:
                kept.append((i, event))
        return kept

    def list_flags(self, scope: Scope, args: dict[str, str]) -> dict[str, Any]:
        filters = flag_filters(args)
        # `limit=0` is a 400 as the OpenAPI document says, never clamped.
        raw_limit = args.get("limit", "100")
        if not raw_limit.isascii() or not raw_limit.isdigit() or not 1 <= int(raw_limit) <= 500:
            raise BadInput("limit must be a whole number from 1 to 500", code="invalid_limit")
        limit = int(raw_limit)
        return self.sql.list_flags(
            access.visible_to(scope),
            rule=filters.rule,
            severity=filters.severity,
            status=filters.status,
            certificate=filters.certificate,
            since=filters.since,
            until=filters.until,
            product=filters.product,
            province=filters.province,
            cursor=args.get("cursor") or None,
            limit=limit,
        )

    def export_flags(self, scope: Scope, args: dict[str, str], limit: int) -> Iterator[tuple[Any, ...]]:
        """The list's flags for a file, with the list's filters (checked the same way), at
        most `limit`: tuples of domain.scans.FLAG_FILE_COLUMNS. The first rows are read
        before it returns."""
        return self.sql.export_flags(access.visible_to(scope), flag_filters(args), limit)

    def review_flag(
        self, flag_id: int, body: Any, scope: Scope, actor: Actor | None = None
    ) -> dict[str, Any]:
        """Confirm, dismiss or reopen a flag of the scope, with a note; recorded in the audit
        log as the actor's (an admin token's when no actor is given)."""
        try:
            review = FlagReviewIn.model_validate(body)
        except ValidationError as exc:
            err = exc.errors(include_url=False)[0]
            raise BadInput(
                f"{'.'.join(str(p) for p in err['loc']) or 'body'}: {err['msg']}", code="invalid_body"
            ) from exc
        allowed = functools.partial(access.may_read, scope)
        flag, before, owner = self.sql.update_flag(flag_id, review.status, review.note, allowed)
        # The verdict follows the review at once: a dismissed copy flag stops saying "suspicious".
        self.scans.set_flag_status(flag["code"], flag["rule"], review.status)
        if self.audit is not None:
            self.audit.record(
                actor or token_actor(scope),
                "flag.review",
                f"flag:{flag_id}",
                before,
                {"status": review.status, "note": review.note},
                owner=(owner.body_id, owner.organization_id),
            )
        return flag

    def review_flags(
        self, flag_ids: Sequence[int], status: str, note: str | None, scope: Scope, actor: Actor
    ) -> BulkResult:
        """One review for many flags: each flag not in the scope (or not there) is reported,
        the others are reviewed."""
        result = BulkResult()
        for i, flag_id in enumerate(flag_ids):
            try:
                self.review_flag(flag_id, {"status": status, "note": note}, scope, actor)
            except DomainError as exc:
                result.reject(i, flag_id, exc.code, exc.detail)
                continue
            result.accepted += 1
        return result


def flag_filters(args: dict[str, str]) -> FlagFilters:
    """The flag list's filters from a query string; a filter given is a filter checked:
    `since=` (empty) is a 400, as the OpenAPI document says, never silently read as "no
    filter"."""
    since, until = (_instant(args, name) for name in ("since", "until"))
    for name, allowed in (
        ("rule", set(FLAG_RULES)),
        ("severity", {"warn", "suspicious"}),
        ("status", {"open", "confirmed", "dismissed"}),
    ):
        if name in args and args[name] not in allowed:
            raise BadInput(f"{name} must be one of {sorted(allowed)}", code=f"invalid_{name}")
    return FlagFilters(
        rule=args.get("rule") or None,
        severity=args.get("severity") or None,
        status=args.get("status") or None,
        certificate=args.get("certificate") or None,
        since=since,
        until=until,
        product=args.get("product") or None,
        province=args.get("province") or None,
    )


def _instant(args: dict[str, str], name: str) -> datetime | None:
    """An ISO-8601 date or time filter; a date alone is midnight UTC."""
    if name not in args:
        return None
    try:
        return datetime.fromisoformat(args[name].replace("Z", "+00:00"))
    except ValueError as exc:
        raise BadInput(f"{name} must be an ISO-8601 date or time", code=f"invalid_{name}") from exc


def _is_organic(kind: CodeKind | None) -> bool:
    return kind in (CodeKind.ORGANIC, CodeKind.ORGANIC_LEGACY)
