"""Label issuance (issue 17; seed 000, BCK's ordering guide; seed 003, NOA's measures): the
order life cycle, order and label numbers, identity-code segments and quantity arithmetic.

An order (订单) names one certificate; each line (标签) orders labels of one product spec
(商品规格). Submitting consumes the certificate product's certified quantity (quantity x
package weight); an order that would exceed what is available is rejected automatically.
Quantities are whole grams: exact in integers, and fine enough for any package weight
given to the gram (the spec's weight has three decimals of a kilogram).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from enum import StrEnum

from domain.errors import Conflict


class OrderStatus(StrEnum):
    NEW = "new"  # 新建
    AUTO_APPROVED = "auto_approved"  # 自动审核通过
    AUTO_REJECTED = "auto_rejected"  # 自动审核不通过 (over quantity)
    MANUALLY_APPROVED = "manually_approved"  # 人工审核通过
    MANUALLY_REJECTED = "manually_rejected"  # 人工审核不通过 (with a reason)
    ALLOCATED = "allocated"  # 已分配 (identity segments and codes)
    VOIDED = "voided"  # 已退订
    LOSSES = "losses"  # the voided pseudo-order holding an order's printing losses


# Where the organization may still change the order and (re)submit it; an auto-approved
# order can no longer be edited (seed 000, 2.8).
EDITABLE = frozenset({OrderStatus.NEW, OrderStatus.AUTO_REJECTED, OrderStatus.MANUALLY_REJECTED})
# Orders holding certified quantity: rejection and voiding give it back.
CONSUMING = frozenset({OrderStatus.AUTO_APPROVED, OrderStatus.MANUALLY_APPROVED, OrderStatus.ALLOCATED})
REVIEWABLE = frozenset({OrderStatus.AUTO_APPROVED})
ALLOCATABLE = frozenset({OrderStatus.MANUALLY_APPROVED})
VOIDABLE = frozenset(
    {OrderStatus.AUTO_APPROVED, OrderStatus.MANUALLY_APPROVED, OrderStatus.ALLOCATED, OrderStatus.VOIDED}
)


def require(status: str, allowed: frozenset[OrderStatus], action: str, number: str) -> None:
    """Refuse an action the order's status does not allow (409 order_state)."""
    if status not in allowed:
        raise Conflict(
            f"order {number} is {status}: it cannot be {action} now "
            f"(only when {', '.join(sorted(s.value for s in allowed))})",
            code="order_state",
        )


ORDER_NUMBER = re.compile(r"^(\d{8})-(\d{3})$")


def order_number(day: date, serial: int) -> str:
    """`YYYYMMDD-NNN`: the creation date (China's) and that day's serial."""
    if not 1 <= serial <= 999:
        raise Conflict(f"no order numbers left for {day:%Y-%m-%d}", code="order_numbers_exhausted")
    return f"{day:%Y%m%d}-{serial:03d}"


def label_number(order: str, n: int) -> str:
    """Each line's label number: `<order>-<n>`."""
    return f"{order}-{n}"


def loss_order_number(order: str) -> str:
    """The voided pseudo-order a printing loss's code is moved to: `<order>-L`."""
    return f"{order}-L"


# Identity codes (身份码) are 9-digit print serials, numbered per certification body. They
# start at 100000001, never with a zero: a spreadsheet would drop it.
IDENTITY_FIRST = 100_000_001
IDENTITY_LAST = 999_999_999


def identity_text(value: int) -> str:
    return f"{value:09d}"


def parse_identity(text: str) -> int | None:
    """A 9-digit identity code as its number, or None."""
    text = text.strip()
    if len(text) != 9 or not text.isascii() or not text.isdigit():
        return None
    return int(text)


def grams(kg: Decimal) -> int:
    """A weight in kilograms (three decimals) as whole grams."""
    return int((kg * 1000).to_integral_value())


def tonnes(g: int) -> Decimal:
    """Grams as tonnes, to the gram (six decimals)."""
    return (Decimal(g) / Decimal(1_000_000)).quantize(Decimal("0.000001"))


@dataclass(frozen=True, slots=True)
class Shortfall:
    """Why an order was rejected automatically: a certificate product it would overdraw."""

    product: str
    needed_g: int
    available_g: int

    def as_dict(self) -> dict[str, object]:
        return {
            "product": self.product,
            "needed_tonnes": str(tonnes(self.needed_g)),
            "available_tonnes": str(tonnes(max(self.available_g, 0))),
            "over_by_tonnes": str(tonnes(self.needed_g - max(self.available_g, 0))),
        }

    def text(self) -> str:
        return (
            f"{self.product}: needs {tonnes(self.needed_g)} t, {tonnes(max(self.available_g, 0))} t "
            f"available, over by {tonnes(self.needed_g - max(self.available_g, 0))} t"
        )


def organic_code(body_code: str, year: int, random12: int) -> str:
    """An 18-digit organic code: the body's 4-digit code, the issue year's last two digits,
    12 random digits (DOMAIN.md)."""
    return f"{body_code}{year % 100:02d}{random12:012d}"
