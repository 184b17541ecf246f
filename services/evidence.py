"""The evidence pack of one flag (domain/evidence.py) for whoever may read the flag: the
same policy as the flag list (domain.access.may_read over the code's current owner); a
flag outside the scope is not found."""

from __future__ import annotations

from domain import access
from domain.bulk import Scope
from domain.errors import NotFound
from domain.evidence import EvidencePack, EvidenceReader, EvidenceRenderer


class EvidenceService:
    def __init__(self, reader: EvidenceReader, renderer: EvidenceRenderer) -> None:
        self.reader = reader
        self.renderer = renderer

    def pack(self, flag_id: int, scope: Scope) -> EvidencePack:
        found = self.reader.flag_owner(flag_id)
        if found is None or not access.may_read(scope, found[1]):
            raise NotFound(f"no flag {flag_id}", code="flag_not_found")
        return self.reader.pack(found[0])

    def pdf(self, flag_id: int, scope: Scope) -> tuple[str, bytes]:
        """(file name, PDF bytes)."""
        pack = self.pack(flag_id, scope)
        return f"evidence-flag-{flag_id}-{pack.flag['code']}.pdf", self.renderer.render(pack)
