"""An evidence pack (证据包) for one flag: what a brand hands a market regulator about a
suspected copy. Pure values: registry/evidence.py reads them, services/evidence.py decides
who may have one, webapp/evidence_pdf.py draws the PDF.

Nothing personal is in it: scanners appear as short prefixes of their keyed hashes (as in
a flag's evidence), places as cities and coordinates rounded to 0.01°.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

# A pack shows at most this many report photos (the scans are the flag page's newest 500):
# a code reported again and again still makes a PDF that opens.
MAX_PHOTOS = 12


@dataclass(frozen=True, slots=True)
class EvidenceScan:
    at: datetime
    channel: str
    verdict: str
    city: str | None
    province: str | None
    lat: float | None
    lng: float | None
    scanner: str | None  # a short prefix of the keyed hash, never the id


@dataclass(frozen=True, slots=True)
class EvidenceReport:
    created_at: datetime
    text: str | None
    shop: str | None
    city: str | None
    province: str | None
    photo: bytes | None
    photo_type: str | None


@dataclass(frozen=True, slots=True)
class EvidencePack:
    """One flag with the code's record, its scans and the shoppers' reports."""

    flag: dict[str, Any]  # id, code, rule, severity, status, raised_at, updated_at, note, evidence
    record: dict[str, str | None]  # label -> value (certificate, holder, product, order, ...)
    scans: list[EvidenceScan]
    scans_total: int
    reports: list[EvidenceReport] = field(default_factory=list)
    generated_at: datetime | None = None


class EvidenceRecords(Protocol):
    def record(self, code: str) -> dict[str, str | None]:
        """The code's record as a regulator reads it, label key -> value."""
        ...


class EvidenceRenderer(Protocol):
    def render(self, pack: EvidencePack) -> bytes: ...
