"""Wuchang rice total-quantity control (issue 17, item 6; seed 002): a company's raw-grain
purchase ledger (企业原粮收购台账), its milling yield, and batches' inspection reports.

The cap itself is checked where marks are made and activated (services.admin's
`upsert_batch` and `activate_batch`, inside their transactions): marks ≤ raw grain ×
milling yield ÷ net content (domain.grain). Who may do what: a company writes its own
ledger and its batches' reports until the regulator activates the batch; the regulator
(the all scope) writes any company's ledger, sets yields and activates; a certification
body has no part in Wuchang's scheme (a BQ batch has no body) and sees nothing here.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError, field_validator

from domain import access, media
from domain.access import Owner
from domain.bulk import BulkResult, RowProblem, Scope
from domain.china_time import china_today, iso_utc
from domain.errors import BadInput, Conflict, Forbidden, NotFound, PayloadTooLarge, UnsupportedMedia
from domain.grain import DEFAULT_MILLING_YIELD, kg, parse_yield
from domain.ports import GrainRegistry

REPORT_MAX_BYTES = 10 * 1024 * 1024
MAX_PURCHASE_KG = Decimal("100000000")  # 100,000 t in one purchase: far past any real one
# An inspection report is a PDF or a photographed/scanned page (the brief: PDF, JPG, PNG).
REPORT_TYPES = frozenset({media.PDF, media.JPEG, media.PNG})

Text60 = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=60)]
Text200 = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]


class PurchaseIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reference: Text60  # the company's own number for the purchase: the idempotency key
    purchased_on: date
    supplier: Text200
    quantity_kg: Annotated[Decimal, Field(gt=0, le=MAX_PURCHASE_KG, decimal_places=3)]
    organization: Text200 | None = None  # the regulator names the company; a company is itself

    @field_validator("purchased_on", mode="before")
    @classmethod
    def _iso(cls, value: Any) -> Any:
        if not isinstance(value, str | date):
            raise ValueError("purchased_on must be a date as YYYY-MM-DD")
        return value

    @field_validator("quantity_kg", mode="before")
    @classmethod
    def _number(cls, value: Any) -> Any:
        if isinstance(value, bool) or not isinstance(value, int | float | str | Decimal):
            raise ValueError("quantity_kg must be a number of kilograms")
        return Decimal(str(value)) if isinstance(value, float) else value


class YieldIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    milling_yield: Decimal | None

    @field_validator("milling_yield", mode="before")
    @classmethod
    def _number(cls, value: Any) -> Any:
        # A JSON number (or null): "0.6" as a string is not one.
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
            raise ValueError("milling_yield must be a number")
        return None if value is None else Decimal(str(value)).quantize(Decimal("0.0001"), ROUND_HALF_UP)


class InspectionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    report_number: Text60
    laboratory: Text200
    result: Literal["pass", "fail"]
    inspected_on: date


def _problem_text(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors(include_url=False)[:3]:
        where = ".".join(str(p) for p in err["loc"]) or "body"
        parts.append(f"{where}: {err['msg']}")
    return "; ".join(parts)


class GrainService:
    def __init__(self, registry: GrainRegistry, changed: Callable[..., None]) -> None:
        self.registry = registry
        # Tell every worker (generations): a report changes the batch's traceability answer.
        self.changed = changed

    # -- the ledger ---------------------------------------------------------------------------

    def _company(self, scope: Scope, name: str | None) -> int:
        """The company a call is about: a company token's own; the regulator names one."""
        if scope.kind == "organization" and scope.id is not None:
            return int(scope.id)
        if scope.kind != "all":
            raise Forbidden("the raw-grain ledger belongs to a company and the regulator")
        if not name:
            # The regulator's ledger of no company does not exist (404, as for an unknown one).
            raise NotFound("name the company: organization", code="organization_required")
        found = self.registry.organization_ids([name]).get(name)
        if found is None:
            raise NotFound(f"no organization {name!r}", code="organization_not_found")
        return found

    def upsert_purchases(self, rows: Iterable[Any], scope: Scope) -> BulkResult:
        """Purchases in bulk: idempotent by (company, reference); bad rows are reported one by
        one and the good ones kept. A purchase dated after China's today is refused."""
        if scope.kind not in ("organization", "all"):
            raise Forbidden("the raw-grain ledger belongs to a company and the regulator")
        result = BulkResult()
        today = china_today(datetime.now(UTC))
        good: list[tuple[int, PurchaseIn]] = []
        for i, row in enumerate(rows):
            if isinstance(row, RowProblem):  # a line the file reader could not read
                result.reject(i, row.key, row.code, row.detail)
                continue
            # A sheet's empty cells are absent values, not empty strings.
            given = {k: v for k, v in row.items() if v not in ("", None)} if isinstance(row, dict) else row
            key = given.get("reference") if isinstance(given, dict) else None
            try:
                m = PurchaseIn.model_validate(given)
            except ValidationError as exc:
                result.reject(i, str(key or "")[:60], "invalid_row", _problem_text(exc))
                continue
            if m.purchased_on > today:
                result.reject(i, m.reference, "future_date", "purchased_on is after today (China time)")
                continue
            good.append((i, m))
        names = sorted({m.organization for _, m in good if m.organization})
        ids = self.registry.organization_ids(names) if scope.kind == "all" and names else {}
        out: dict[tuple[int, str], dict[str, Any]] = {}
        for i, m in good:
            if scope.kind == "organization":
                org = scope.id
            elif not m.organization:
                result.reject(i, m.reference, "organization_required", "name the company: organization")
                continue
            else:
                org = ids.get(m.organization)
                if org is None:
                    result.reject(
                        i, m.reference, "unknown_organization", f"no organization {m.organization!r}"
                    )
                    continue
            # The same reference twice in one load: the later row wins, as a second load would.
            out[(int(org or 0), m.reference)] = {
                "organization_id": org,
                "reference": m.reference,
                "purchased_on": m.purchased_on,
                "supplier": m.supplier,
                "quantity_g": int(m.quantity_kg * 1000),
            }
            result.accepted += 1
        if out:
            self.registry.upsert_purchases(list(out.values()), scope.actor)
        result.rejected.sort(key=lambda e: e.row)
        return result

    def ledger(self, scope: Scope, organization: str | None) -> dict[str, Any]:
        """The company's purchases and its balance: raw grain, yield, the milled rice it
        makes, what its marks go on, and what is left (also as bags per net content)."""
        org = self._company(scope, organization)
        balance, purchases, marks = self.registry.ledger(org)
        return {
            "organization": self.registry.organization_name(org),
            "milling_yield": str(balance.milling_yield),
            "default_milling_yield": str(DEFAULT_MILLING_YIELD),
            "raw_grain_kg": kg(balance.raw_grain_g),
            "capacity_kg": kg(balance.capacity_g),
            "marked_kg": kg(balance.marked_rice_g),
            "available_kg": kg(balance.available_g),
            "marks": [{"net_content_kg": net, "marks": n} for net, n in sorted(marks.items())],
            "purchases": [
                {
                    "reference": p["reference"],
                    "purchased_on": p["purchased_on"].isoformat(),
                    "supplier": p["supplier"],
                    "quantity_kg": kg(p["quantity_g"]),
                }
                for p in purchases
            ],
        }

    def set_yield(self, scope: Scope, organization: str | None, body: Any) -> dict[str, Any]:
        """The regulator sets a company's milling yield (null: back to the default)."""
        if scope.kind != "all":
            raise Forbidden("a company's milling yield is set by the regulator")
        try:
            m = YieldIn.model_validate(body)
            value = parse_yield(m.milling_yield) if m.milling_yield is not None else None
        except (ValidationError, ValueError) as exc:
            text = _problem_text(exc) if isinstance(exc, ValidationError) else str(exc)
            raise BadInput(text, code="invalid_body") from exc
        org = self._company(scope, organization)
        self.registry.set_yield(org, value)
        return self.ledger(scope, organization)

    # -- inspection reports ---------------------------------------------------------------------

    def _batch(self, number: str, scope: Scope) -> tuple[int, Owner, bool]:
        ref = self.registry.batch_ref(number)
        if ref is None:
            raise NotFound(f"no batch {number}", code="batch_not_found")
        batch_id, org, activated = ref
        owner = Owner(organization_id=org)
        if not access.may_read(scope, owner):
            raise NotFound(f"no batch {number}", code="batch_not_found")
        return batch_id, owner, activated

    def upload_inspection(self, number: str, fields: Any, data: bytes, scope: Scope) -> dict[str, Any]:
        """The batch's inspection report (检验报告): a PDF, JPG or PNG scan, sniffed and
        bounded, with its number, laboratory, result and date. By the batch's company (or
        the regulator); once the batch is activated, by the regulator only."""
        if len(data) > REPORT_MAX_BYTES:
            raise PayloadTooLarge(
                f"an inspection report is at most {REPORT_MAX_BYTES // 2**20} MiB", code="report_too_large"
            )
        batch_id, owner, activated = self._batch(number, scope)
        if not access.may_change_batch(scope, owner):
            raise Forbidden(f"the inspection report of batch {number} is uploaded by its company")
        if activated and not access.may_change_activated_batch(scope):
            raise Conflict(
                f"batch {number} is activated; only the regulator may change its report",
                code="batch_activated",
            )
        try:
            m = InspectionIn.model_validate(fields)
        except ValidationError as exc:
            raise BadInput(_problem_text(exc), code="invalid_body") from exc
        kind = media.sniff(data)
        if kind not in REPORT_TYPES:
            raise UnsupportedMedia("an inspection report is a PDF, JPG or PNG", code="unsupported_report")
        self.registry.save_inspection(
            batch_id,
            {
                "report_number": m.report_number,
                "laboratory": m.laboratory,
                "result": m.result,
                "inspected_on": m.inspected_on,
                "content_type": kind,
                "sha256": hashlib.sha256(data).hexdigest(),
                "data": data,
            },
            scope.actor,
        )
        self.changed("status")
        return self.inspection(number, scope)

    def inspection(self, number: str, scope: Scope) -> dict[str, Any]:
        batch_id, _owner, _activated = self._batch(number, scope)
        found = self.registry.inspection(batch_id)
        if found is None:
            raise NotFound(f"batch {number} has no inspection report", code="report_not_found")
        meta, _data = found
        return {
            "batch": number,
            "report_number": meta["report_number"],
            "laboratory": meta["laboratory"],
            "result": meta["result"],
            "inspected_on": meta["inspected_on"].isoformat(),
            "content_type": meta["content_type"],
            "sha256": meta["sha256"],
            "uploaded_at": iso_utc(meta["uploaded_at"]),
            "url": f"/api/v1/admin/batches/{number}/inspection/report",
        }

    def inspection_file(self, number: str, scope: Scope) -> tuple[str, bytes]:
        batch_id, _owner, _activated = self._batch(number, scope)
        found = self.registry.inspection(batch_id)
        if found is None:
            raise NotFound(f"batch {number} has no inspection report", code="report_not_found")
        meta, data = found
        return str(meta["content_type"]), data
