"""Value types of the registry as the verify path sees them.

A code's record is immutable once issued (code → label group → certificate/product);
what changes is status: a certificate's status, an order's void (退订), a batch's
activation. The two are kept apart so caches can hold records for long and status for
a second (DESIGN.md: one admin change reaches every answer in O(1)).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from domain.certificates import CertificateKind, CertificateStatus
from domain.codes import CodeKind


@dataclass(frozen=True, slots=True)
class CodeRecord:
    """An issued code. `group_id` names its label group (organic) or batch (BQ)."""

    code: str
    kind: CodeKind
    group_id: int
    issued_on: date | None
    identity_code: str | None = None
    bq_role: str | None = None  # "a" (public traceability) or "b" (hidden anti-counterfeit)


@dataclass(frozen=True, slots=True)
class LabelGroup:
    """What every code of one order line shares: certificate, product, package, label, order."""

    id: int
    certificate_number: str
    product_name: str
    product_description: str | None
    package: str | None
    label_spec: str | None
    order_number: str | None
    # For the over-quantity and off-market rules: the certificate product, its certified
    # quantity and its declared sales region (comma-separated names; None: not declared).
    product_id: int = 0
    certified_tonnes: float | None = None
    sales_regions: str | None = None

    def regions(self) -> frozenset[str]:
        return frozenset(r for r in (self.sales_regions or "").split(",") if r)


@dataclass(frozen=True, slots=True)
class BatchGroup:
    """A Wuchang rice BQ batch: what its A and B codes share."""

    id: int
    number: str
    producer: str
    product: str
    net_content_kg: float | None
    trace: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class CertificateState:
    number: str
    holder: str
    producer: str | None
    kind: CertificateKind
    category: str | None
    valid_from: date
    valid_until: date
    status: CertificateStatus
    status_since: date | None
    body_code: str
    body_name: str

    def effective_status(self, today: date) -> CertificateStatus:
        """A valid certificate past its 1-year term is expired even if nobody said so."""
        if self.status is CertificateStatus.VALID and today > self.valid_until:
            return CertificateStatus.EXPIRED
        return self.status

    def effective_status_since(self, today: date) -> date | None:
        if self.status is CertificateStatus.VALID and today > self.valid_until:
            return self.valid_until + timedelta(days=1)
        return self.status_since


@dataclass(frozen=True, slots=True)
class OrderState:
    number: str
    voided_at: datetime | None


@dataclass(frozen=True, slots=True)
class BatchState:
    number: str
    activated_at: datetime | None


@dataclass(frozen=True, slots=True)
class ScanSummary:
    """How often a code was queried, as the shopper sees it ("queried 3 times, first on … in …")."""

    count: int
    first_at: datetime | None
    first_city: str | None
    distinct_scanners: int
    you_count: int | None = None
    you_first_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class OpenFlag:
    rule: str
    severity: str  # "warn" | "suspicious"
    raised_at: datetime


# A scan from a WeChat-verified session (a costly identity) reaches the scan store with
# its channel prefixed by this mark; the scan event strips it and keeps `verified`.
VERIFIED_CHANNEL_PREFIX = "wx:"
# A read-only lookup (GET of a code, the result page) of a never-issued code: counted
# toward the asker's enumeration budget, never recorded as a scan.
LOOKUP_CHANNEL = "peek"


@dataclass(frozen=True, slots=True)
class ScanInput:
    """One verify, as the scan store needs it. `client` and `ip` are raw here and are
    hashed with the server's key by the scan store before anything is kept."""

    code: str
    kind: str | None
    at: datetime
    channel: str
    verdict: str
    client: str | None = None
    ip: str | None = None
    lat: float | None = None
    lng: float | None = None
    event_id: str | None = None
    group: LabelGroup | None = None  # the code's label group, for the product rules


@dataclass(frozen=True, slots=True)
class ScanResult:
    summary: ScanSummary
    flags: tuple[OpenFlag, ...] = ()
    throttled: bool = False
