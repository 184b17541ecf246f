"""Value types of the registry as the verify path sees them.

A code's record is immutable once issued (code → label group → certificate/product);
what changes is status: a certificate's status, an order's void (退订), a batch's
activation. The two are kept apart so caches can hold records for long and status for
a second (DESIGN.md: one admin change reaches every answer in O(1)).
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from domain.certificates import CertificateKind, CertificateStatus
from domain.codes import CodeKind

_MAX = 2**63


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

    # Issue 17: the identity segments of the order lines whose codes are in this group
    # (empty: codes not issued through an order line, e.g. an imported list: nothing to
    # take into use), and the use records (领用) over them as (first, last, day taken as a
    # date ordinal), sorted. Cached with the group under the status generation, so a take
    # or a roll-back reaches every verify within a second without a database read.
    segments: tuple[tuple[int, int], ...] = ()
    in_use: tuple[tuple[int, int, int], ...] = ()

    def regions(self) -> frozenset[str]:
        return frozenset(r for r in (self.sales_regions or "").split(",") if r)

    def in_stock(self, identity: str | None, day: date) -> bool:
        """The label with this identity code was issued through one of the group's order
        lines and no use record covered it on `day`: still in stock."""
        if not self.segments or identity is None or not identity.isdigit():
            return False
        n = int(identity)
        if not any(lo <= n <= hi for lo, hi in self.segments):
            return False
        # Records of one line never overlap: the last one starting at or before n decides.
        i = bisect.bisect_right(self.in_use, (n, _MAX, _MAX)) - 1
        if i < 0:
            return True
        first, last, taken = self.in_use[i]
        return not (first <= n <= last and taken <= day.toordinal())


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


def parse_package_kg(package: str | None) -> float | None:
    """The net weight in a package text like "5kg 真空袋", "500g", "2.5 公斤"; None if absent."""
    if not package:
        return None
    match = re.search(r"(\d+(?:\.\d+)?)\s*(kg|千克|公斤|g|克|斤)", package, re.IGNORECASE)
    if match is None:
        return None
    value, unit = float(match.group(1)), match.group(2).lower()
    return {
        "kg": value,
        "千克": value,
        "公斤": value,
        "g": value / 1000,
        "克": value / 1000,
        "斤": value / 2,
    }[unit]
