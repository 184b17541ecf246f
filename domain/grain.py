"""Wuchang rice total-quantity control (总量控制, seed 002): a company's BQ marks are capped
by the raw grain (原粮) it bought.

The regulator issues marks "according to the company's raw-grain total and the bag's net
content" (seed 002, 9.4): marks ≤ raw grain × milling yield ÷ net content per bag. With
bags of several sizes the cap is on milled rice: Σ marks × net content ≤ raw grain × yield.
One mark is one bag (its A and B codes together). Quantities are whole grams, so the
check is exact.

The seed names no milling yield (出米率: milled rice per kg of paddy); 0.60 is the
commonly cited figure for Wuchang's 稻花香 paddy, and the regulator sets each company's
own (`milling_yield` in the ledger API).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_FLOOR, Decimal

DEFAULT_MILLING_YIELD = Decimal("0.60")
MIN_YIELD = Decimal("0.30")
MAX_YIELD = Decimal("0.85")


@dataclass(frozen=True, slots=True)
class GrainBalance:
    """A company's ledger against its marks: raw grain bought, the yield, and the milled
    rice its marks already go on (Σ marks × net content), all in grams."""

    raw_grain_g: int
    milling_yield: Decimal
    marked_rice_g: int

    @property
    def capacity_g(self) -> int:
        """The milled rice the raw grain makes: what marks may go on in total."""
        return int((Decimal(self.raw_grain_g) * self.milling_yield).to_integral_value(ROUND_FLOOR))

    @property
    def available_g(self) -> int:
        return self.capacity_g - self.marked_rice_g

    @property
    def over_g(self) -> int:
        """Milled rice marked beyond the capacity (0: the balance holds)."""
        return max(0, -self.available_g)

    def marks_left(self, net_g: int) -> int:
        """How many more bags of `net_g` grams the ledger allows."""
        return max(0, self.available_g) // net_g if net_g > 0 else 0


def kg(grams: int) -> str:
    """Grams as kilograms for people: "1250.5" (no trailing zeros)."""
    text = f"{Decimal(grams) / 1000:.3f}".rstrip("0").rstrip(".")
    return text or "0"


def over_cap_detail(balance: GrainBalance, batch: str, net_g: int, batch_marks: int) -> str:
    """Why a batch is over the cap, in numbers: what the ledger allows and by how much the
    batch exceeds it (`balance` includes the batch)."""
    over_marks = -(-balance.over_g // net_g) if net_g > 0 else 0
    return (
        f"batch {batch}: {batch_marks} marks of {kg(net_g)} kg; the raw-grain ledger allows "
        f"{kg(balance.raw_grain_g)} kg raw grain × {balance.milling_yield} = {kg(balance.capacity_g)} kg "
        f"of milled rice, and marks now go on {kg(balance.marked_rice_g)} kg: over by "
        f"{kg(balance.over_g)} kg ({over_marks} marks of {kg(net_g)} kg)"
    )


def parse_yield(value: Decimal) -> Decimal:
    """A milling yield the regulator may set: a fraction between MIN_YIELD and MAX_YIELD."""
    if not MIN_YIELD <= value <= MAX_YIELD:
        raise ValueError(f"milling_yield must be between {MIN_YIELD} and {MAX_YIELD}")
    return value
