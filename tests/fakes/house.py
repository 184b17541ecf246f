"""The use cases wired on the fakes of their ports, as the composition root wires them on
MariaDB and Redis: the real record reader (cache.records) over a fake registry, shared
cache, generations and filter; the verify, photo, admin, scan-admin and shopper services
over those, with an in-memory scan ledger and archive.

`house.admin` writes, `house.verify` answers: a change reaches the answers through the
generations, as it does across workers.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from cache.records import RecordResolver
from domain.bulk import Scope
from services.admin import AdminService
from services.answers import Answer
from services.photos import PhotoService
from services.scans import ScanAdminService
from services.shoppers import ShopperService
from services.verify import VerifyRequest, VerifyService
from tests.fakes.archive import FakeScanArchive
from tests.fakes.caches import FakeClock, FakeFilterStore, FakeGenerations, FakeSharedCache
from tests.fakes.registry import FakeRegistry
from tests.fakes.scanner import FakePhotoScanner
from tests.fakes.scans import FakeScanLedger

ALL = Scope("all", None, None, "regulator")


def client_hash(raw: str) -> str | None:
    """A stand-in for the keyed hash of a shopper's id (anomaly.events.hash_client)."""
    return "c" + hashlib.sha256(raw.encode()).hexdigest()[:23] if raw else None


BOOTSTRAP = "bootstrap-secret"


@dataclass
class House:
    registry: FakeRegistry = field(default_factory=FakeRegistry)
    clock: FakeClock = field(default_factory=FakeClock)
    ledger: FakeScanLedger = field(default_factory=FakeScanLedger)
    scanner: FakePhotoScanner = field(default_factory=FakePhotoScanner)
    archive: FakeScanArchive = field(default_factory=FakeScanArchive)
    now: datetime = field(default_factory=lambda: datetime.now(UTC).replace(microsecond=0))

    def __post_init__(self) -> None:
        self.shared = FakeSharedCache(self.clock)
        self.filters = FakeFilterStore()
        self.generations = FakeGenerations(self.filters)
        # refresh_s=0: every answer reads the generations, so a test needs no waiting.
        self.resolver = RecordResolver(
            self.registry, self.shared, self.generations, self.filters, refresh_s=0, wait_for_refill_s=0
        )
        self.verify = VerifyService(self.resolver, self.ledger, clock=lambda: self.now)
        self.admin = AdminService(self.registry, self.resolver, self.generations, self.filters, BOOTSTRAP)
        self.photos = PhotoService(self.scanner, self.verify)
        self.scan_admin = ScanAdminService(self.verify, self.ledger, self.archive, self.registry)
        # Who a shopper is, as a keyed hash would say it; where a point is, as geo would.
        self.located: list[tuple[float | None, float | None]] = []
        self.shoppers = ShopperService(self.archive, client_hash, self._locate)

    def _locate(self, lat: float | None, lng: float | None) -> tuple[str | None, str | None]:
        self.located.append((lat, lng))
        return ("杭州市", "浙江省") if lat is not None else (None, None)

    def answer(self, code: str, **request: Any) -> Answer:
        return self.verify.verify(VerifyRequest(code, **request))

    @property
    def today(self) -> date:
        return self.now.date()


def body(code: str = "0123", legacy: str | None = "123", name: str = "示范认证中心") -> dict[str, Any]:
    return {"code": code, "legacy_code": legacy, "name": name}


def certificate(
    number: str, body_code: str = "0123", today: date | None = None, **extra: Any
) -> dict[str, Any]:
    today = today or date.today()
    return {
        "number": number,
        "body_code": body_code,
        "holder": extra.pop("holder", f"holder of {number}"),
        "valid_from": (today - timedelta(days=100)).isoformat(),
        "valid_until": (today + timedelta(days=265)).isoformat(),
        "products": [{"name": "有机大米"}],
        **extra,
    }


def code_row(code: str, cert: str, **extra: Any) -> dict[str, Any]:
    return {"code": code, "certificate": cert, "product": "有机大米", **extra}


def organic_code(body_code: str, serial: int, year: int | None = None) -> str:
    """An 18-digit organic code of a body: its 4 digits, the year's 2, a 12-digit serial."""
    yy = (year or date.today().year) % 100
    return f"{body_code}{yy:02d}{serial:012d}"


def cert_number(body_code: str, serial: int, year: int | None = None) -> str:
    yy = (year or date.today().year) % 100
    return f"{body_code}OP{yy:02d}{serial:05d}"


def stocked_house(**kw: Any) -> House:
    """Two bodies (0123, 0456), a certificate each, no codes yet."""
    house = House(**kw)
    house.admin.upsert_bodies([body(), body("0456", "456", "另一认证中心")], ALL)
    house.admin.upsert_certificates(
        [certificate(cert_number("0123", 17)), certificate(cert_number("0456", 18), "0456")], ALL
    )
    return house
