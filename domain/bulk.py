"""Results of bulk writes: the good rows land, each bad row is reported (CONTRACT.md)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple


@dataclass(frozen=True, slots=True)
class RowError:
    row: int
    key: str
    code: str
    detail: str

    def as_dict(self) -> dict[str, object]:
        return {"row": self.row, "key": self.key, "code": self.code, "detail": self.detail}


class RowProblem(NamedTuple):
    """A row the file reader could not read: rejected like a bad row, and the good rows
    before and after it land (a generator cannot raise mid-stream without losing the
    chunk being gathered)."""

    key: str
    code: str
    detail: str


@dataclass(slots=True)
class BulkResult:
    accepted: int = 0
    rejected: list[RowError] = field(default_factory=list)

    def reject(self, row: int, key: object, code: str, detail: str) -> None:
        self.rejected.append(RowError(row, str(key)[:80], code, detail[:300]))

    def merge(self, other: BulkResult) -> None:
        self.accepted += other.accepted
        self.rejected.extend(other.rejected)

    def as_dict(self) -> dict[str, object]:
        return {"accepted": self.accepted, "rejected": [e.as_dict() for e in self.rejected]}


@dataclass(frozen=True, slots=True)
class Scope:
    """Who an admin token (or a dashboard account) speaks for: everything, one certification
    body, or one organization. What each may read and write is domain.access's policy."""

    kind: str  # "all" | "body" | "organization"
    id: int | None = None
    token_id: int | None = None
    name: str = ""

    @property
    def is_all(self) -> bool:
        return self.kind == "all"

    @property
    def actor(self) -> str:
        """Who a change is recorded as (a certificate's status history)."""
        return self.name or self.kind
