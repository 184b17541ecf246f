"""The ports the services are handed: what they need from the registry, caches and scan store.

Adapters implement these (registry/, cache/, anomaly/); services depend only on the
Protocols, so unit tests hand them in-memory fakes.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Protocol

from domain.codes import CodeKind
from domain.records import (
    BatchGroup,
    BatchState,
    CertificateState,
    CodeRecord,
    LabelGroup,
    OrderState,
)
from domain.scans import ScanInput, ScanResult


class RegistryReader(Protocol):
    def find_code(self, code: str, kind: CodeKind) -> CodeRecord | None: ...
    def label_group(self, group_id: int) -> LabelGroup | None: ...
    def batch_group(self, batch_id: int) -> BatchGroup | None: ...
    def certificate(self, number: str) -> CertificateState | None: ...
    def order(self, number: str) -> OrderState | None: ...
    def batch_state(self, number: str) -> BatchState | None: ...
    def body_codes(self) -> frozenset[str]: ...
    def iter_codes(self, batch: int = ...) -> Iterator[str]: ...


class SharedCache(Protocol):
    """The cache every worker shares (Redis), or a null one in the embedded default.

    Every method fails open: on an outage it answers "miss"/does nothing and counts it.
    """

    @property
    def healthy(self) -> bool: ...
    def get(self, key: str) -> bytes | None: ...
    def get_or_lock(self, key: str, lock_ms: int) -> tuple[bytes | None, bool]: ...
    def set(self, key: str, value: bytes, ttl_s: int, *, unlock: bool = False) -> None: ...
    def delete(self, keys: list[str]) -> None: ...


class Generations(Protocol):
    """Change counters: "status" (certificate/order/batch/group changes) and "codes" (imports)."""

    def current(self) -> dict[str, int] | None: ...
    def bump(self, *names: str) -> None: ...


class MembershipFilter(Protocol):
    def might_contain(self, code: str) -> bool: ...


class FilterStore(Protocol):
    """Where the shared filter of issued codes lives; None from `load` means "not available"."""

    def load(self) -> MembershipFilter | None: ...
    def add(self, codes: Sequence[str | int]) -> None: ...
    # The shared bits asked now (None: cannot tell), and the imports in flight, which make
    # workers ask them (see cache.redis_cache.RedisFilterStore).
    def might_contain(self, code: str) -> bool | None: ...
    def importing(self, token: str, ttl_s: float) -> None: ...
    def imported(self, token: str) -> None: ...


class ScanLedger(Protocol):
    """Where a verify's scan goes: records it and answers the code's history and open flags
    in the same call (`peek`: the answer without recording). Implemented by
    anomaly.adapter.ScanLedgerAdapter over a Redis or in-process scan store; the names of
    every role around scans are in domain.scans."""

    def record(self, scan: ScanInput) -> ScanResult: ...
    def peek(self, code: str, client: str | None) -> ScanResult: ...


# The port's name before issue 15 (item 4); services/verify.py and fakes move to ScanLedger.
ScanRecorder = ScanLedger


class DecodedSymbol(Protocol):
    """One thing read from a photo: a barcode's payload, or printed digits."""

    @property
    def symbology(self) -> str: ...  # "qr", "datamatrix", "ean13", …, "digits"
    @property
    def payload(self) -> str: ...
    @property
    def confidence(self) -> float: ...


class PhotoReading(Protocol):
    @property
    def found(self) -> Sequence[DecodedSymbol]: ...
    @property
    def unreadable(self) -> bool: ...  # code-like print seen but not read reliably
    @property
    def elapsed_ms(self) -> float: ...
    @property
    def digits_unavailable(self) -> bool: ...  # printed digits cannot be read on this server


class PhotoScanner(Protocol):
    """Reads a label photo. Raises PayloadTooLarge, UnsupportedMedia or Unprocessable
    (domain errors) for uploads that are not a usable image."""

    def read(self, image: bytes, *, known_body_codes: frozenset[str] | None) -> PhotoReading: ...
