"""The dashboard's navigation: one entry per page, in order, each with the least role that
sees it. A page module adds its entry with `add` when it is imported (dashboard.blueprint
imports every page module)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from domain.accounts import Account, Role


@dataclass(frozen=True, slots=True)
class Entry:
    endpoint: str
    label: Any  # a lazy gettext string: translated when the page is drawn
    role: Role
    order: int
    also: tuple[str, ...] = ()  # endpoints of pages under this entry (marked current too)

    def current(self, endpoint: str | None) -> bool:
        return endpoint == self.endpoint or endpoint in self.also


ENTRIES: list[Entry] = []


def add(
    endpoint: str, label: Any, role: Role = Role.VIEWER, order: int = 50, also: tuple[str, ...] = ()
) -> None:
    if all(e.endpoint != endpoint for e in ENTRIES):
        ENTRIES.append(Entry(endpoint, label, role, order, also))
        ENTRIES.sort(key=lambda e: e.order)


def visible(account: Account) -> list[Entry]:
    return [e for e in ENTRIES if account.may(e.role)]
