"""What the entrypoints may reach: the use cases, typed.

The composition root (webapp) builds an object of this shape once per app and keeps it in
`app.extensions[EXTENSION]`; the blueprints read it through their accessor
(`verify_api.context.services()`), never by importing the root. Each member is built on
first use, so a CLI command or a worker process builds only what it touches.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from services.accounts import AccountService
    from services.admin import AdminService
    from services.alerts import AlertService
    from services.audit import AuditService
    from services.cases import CaseService
    from services.evidence import EvidenceService
    from services.exports import FlagExport
    from services.grain import GrainService
    from services.issuing import IssuingService
    from services.overview import OverviewService
    from services.photos import PhotoService
    from services.scans import ScanAdminService
    from services.shoppers import ShopperService
    from services.verify import VerifyService

EXTENSION = "services"


class RecordView(Protocol):
    """The record reader as the read-only lookups see it: refresh the generations, and the
    key under which an answer may be memoized (None: generations unreadable)."""

    def refresh(self, *, force: bool = False) -> None: ...
    def generation_key(self) -> Any: ...


class Services(Protocol):
    @property
    def verify(self) -> VerifyService: ...
    @property
    def photos(self) -> PhotoService: ...
    @property
    def admin(self) -> AdminService: ...
    @property
    def issuing(self) -> IssuingService: ...
    @property
    def grain(self) -> GrainService: ...
    @property
    def scan_admin(self) -> ScanAdminService: ...
    @property
    def shoppers(self) -> ShopperService: ...
    @property
    def accounts(self) -> AccountService: ...
    @property
    def audit(self) -> AuditService: ...
    @property
    def cases(self) -> CaseService: ...
    @property
    def overview(self) -> OverviewService: ...
    @property
    def alerts(self) -> AlertService: ...
    @property
    def evidence(self) -> EvidenceService: ...
    @property
    def exports(self) -> FlagExport: ...
    @property
    def resolver(self) -> RecordView: ...
    @property
    def max_upload_bytes(self) -> int: ...

    def readiness(self) -> dict[str, str]:
        """Each store's state: `database`, `cache`, `scan_store` as ok, down or embedded."""
        ...

    def engines(self) -> dict[str, bool]:
        """Which photo readers this server has (QR codes, printed digits)."""
        ...

    def check_image(self, photo: bytes, kind: str) -> bool | None:
        """A content check of a photo others will see: False refused, None no checker here;
        raises domain.errors.Unavailable when the checker fails."""
        ...
