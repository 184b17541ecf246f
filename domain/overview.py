"""The brand-protection overview's values: the period a user chooses and what the overview
shows for their scope (scans per day by verdict, flags opened per day by rule, scans by
place, what flags are about, the over-quantity gauge). Built by services.overview from the
aggregate tables (domain.ports.OverviewReader); days are China's calendar days."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta

from domain.bulk import Scope
from domain.errors import BadInput

PERIOD_DAYS = (7, 30, 90, 365)
DEFAULT_PERIOD_DAYS = 30


@dataclass(frozen=True, slots=True)
class Period:
    """The last `days` China days up to and including `last`."""

    last: date
    days: int

    @property
    def first(self) -> date:
        return self.last - timedelta(days=self.days - 1)

    def dates(self) -> list[date]:
        return [self.first + timedelta(days=i) for i in range(self.days)]

    @classmethod
    def choose(cls, days: str | int | None, today: date) -> Period:
        """The period a user asked for (one of PERIOD_DAYS; none: the default) ending today."""
        if days is None or days == "":
            return cls(today, DEFAULT_PERIOD_DAYS)
        try:
            n = int(days)
        except (TypeError, ValueError):
            n = 0
        if n not in PERIOD_DAYS:
            raise BadInput(
                f"period must be one of {', '.join(map(str, PERIOD_DAYS))} days", code="invalid_period"
            )
        return cls(today, n)


def scope_key(scope: Scope) -> tuple[str, int]:
    """The aggregate rows a scope reads: ("a", 0) everything, ("b", id) a body, ("o", id) an
    organization (registry.aggregates writes them)."""
    if scope.kind == "all":
        return "a", 0
    if scope.id is None:
        raise BadInput("a body or organization scope needs its id", code="invalid_scope")
    return ("b" if scope.kind == "body" else "o"), scope.id


@dataclass(frozen=True, slots=True)
class DayCount:
    day: date
    key: str  # a verdict or a flag rule
    count: int


@dataclass(frozen=True, slots=True)
class PlaceCount:
    province: str
    city: str  # "" when only the province is known
    scans: int
    suspicious: int


@dataclass(frozen=True, slots=True)
class Ranked:
    """A certificate, certificate product or batch with the flags opened on its codes."""

    kind: str  # "certificate" | "product" | "batch"
    id: int
    name: str  # certificate number; product name; batch's product
    detail: str  # holder; certificate number; batch number
    flags: int


@dataclass(frozen=True, slots=True)
class GaugeRow:
    """One certificate product: codes seen on shelves × package weight against its
    certified quantity (the over-quantity rule's claim, anomaly.rules.over_quantity)."""

    product_id: int
    product: str
    certificate: str
    holder: str
    codes: int
    seen_tonnes: float | None  # None: no package weight known for any of its codes
    certified_tonnes: float | None

    @property
    def ratio(self) -> float | None:
        if self.seen_tonnes is None or not self.certified_tonnes:
            return None
        return self.seen_tonnes / self.certified_tonnes

    @property
    def over(self) -> bool:
        return self.ratio is not None and self.ratio > 1


@dataclass(frozen=True, slots=True)
class Overview:
    scope: Scope
    period: Period
    days: list[date]
    scans_by_verdict: dict[str, list[int]]  # verdict -> a count per day of `days`
    flags_by_rule: dict[str, list[int]]  # rule -> flags opened per day of `days`
    provinces: list[PlaceCount]  # city "", most scans first
    cities: list[PlaceCount]  # most scans first
    top_certificates: list[Ranked]
    top_products: list[Ranked]
    gauge: list[GaugeRow]  # highest share of the certified quantity first
    totals: dict[str, int] = field(default_factory=dict)  # scans, suspicious, flags
    # Where to draw each city of `cities` on the map: (lng, lat) by (province, city).
    points: dict[tuple[str, str], tuple[float, float]] = field(default_factory=dict)
