"""Change generations kept in the database, for the embedded default where no Redis is
shared between processes (gunicorn workers each poll the tiny `generations` table)."""

from __future__ import annotations

from domain.errors import Unavailable
from registry.store import SqlRegistry


class SqlGenerations:
    def __init__(self, registry: SqlRegistry) -> None:
        self.registry = registry

    def current(self) -> dict[str, int] | None:
        try:
            gens = self.registry.generations()
        except Unavailable:
            return None
        return {"status": gens.get("status", 0), "codes": gens.get("codes", 0)}

    def bump(self, *names: str) -> None:
        for name in names:
            self.registry.bump_generation(name)
