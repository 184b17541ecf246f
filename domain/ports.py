"""The ports the services are handed: what they need from the registry, caches and scan store.

Adapters implement these (registry/, cache/, anomaly/); services depend only on the
Protocols, so unit tests hand them in-memory fakes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Protocol

from domain.access import Owner
from domain.accounts import AuditEntry
from domain.bulk import BulkResult, Scope
from domain.certificates import CertificateStatus
from domain.codes import CodeKind, ParsedCode
from domain.grain import GrainBalance
from domain.overview import DayCount, GaugeRow, PlaceCount, Ranked
from domain.records import (
    BatchGroup,
    BatchState,
    CertificateState,
    CodeRecord,
    LabelGroup,
    OrderState,
)
from domain.scans import FlagFilters, PastCheck, ScanInput, ScanResult, StorePlace


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


ProjectedRow = tuple[str, CodeKind, int, date | None, str | None, str | None]


class CodeProjection(Protocol):
    """Every issued code → its record, resident in the key store (cache.projection):
    `state` "complete" when it holds every saved code (a miss is "never issued"),
    "writing" while writers are in flight (a miss is asked of the registry), "off" when it
    may not be used, None when the store cannot be reached; `get`
    answers a record, None (absent) or cache.projection.MISSING (the store failed).
    Writers mark themselves in flight (`begin`) before their first save and clear the mark
    (`end`) once every record they saved is written."""

    def state(self) -> str | None: ...
    def get(self, code: str, kind: CodeKind) -> Any: ...
    def write(self, rows: Iterable[ProjectedRow]) -> int: ...
    def write_keys(self, rows: Sequence[tuple[int, int, date | None, str | None]]) -> int: ...
    def remove(self, codes: Iterable[tuple[str, CodeKind]]) -> None: ...
    def begin(self, ttl_s: float = ...) -> str: ...
    def renew(self, ttl_s: float = ...) -> None: ...
    def end(self, token: str) -> None: ...
    def abandon(self, token: str) -> None: ...  # its mark is left to lapse (records not written)


class RateWindows(Protocol):
    """A request's rate-limit windows, handed to the verify by its entrypoint so the scan
    store counts them in the verify's own round trip (`payload`, see anomaly/scan.lua).
    A verify that does not reach the scan store calls `count_now` instead, which counts
    them on their own and raises domain.errors.TooManyRequests when one is exceeded."""

    payload: str

    def count_now(self) -> None: ...
    def release(self) -> None:
        """The payload went to a scan store call that counted nothing after all: the
        windows are again the verify's to hand on, or the entrypoint's to count."""
        ...


class ScanLedger(Protocol):
    """Where a verify's scan goes: records it and answers the code's history and open flags
    in the same call (`peek`: the answer without recording). Implemented by
    anomaly.adapter.ScanLedgerAdapter over a Redis or in-process scan store; the names of
    every role around scans are in domain.scans."""

    def record(self, scan: ScanInput) -> ScanResult: ...
    def peek(
        self, code: str, client: str | None, windows: str = ..., place: StorePlace | None = ...
    ) -> ScanResult: ...


class FlagStatuses(Protocol):
    """The scan store's copy of a flag's review status: a verify reads it at once (a
    dismissed copy flag stops saying "suspicious")."""

    def set_flag_status(self, code: str, rule: str, status: str) -> None: ...


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


# -- the record reader and the registry's admin side (issue 15, item 2) -------------------------
# The verify path reads codes through a RecordReader (cache.records.RecordResolver: worker
# memory, then the shared cache, then the registry); the admin service writes through an
# AdminRegistry (registry.store.SqlRegistry), which owns its transactions.


@dataclass(frozen=True, slots=True)
class Resolution:
    """Everything the verdict needs about one code; `record` None means "never issued"."""

    record: CodeRecord | None
    group: LabelGroup | None = None
    batch: BatchGroup | None = None
    certificate: CertificateState | None = None
    order: OrderState | None = None
    batch_state: BatchState | None = None


class RecordReader(Protocol):
    """A code to its record and current status, as of at most a second ago."""

    def known_bodies(self) -> frozenset[str] | None: ...  # None: cannot tell now
    def resolve(self, parsed: ParsedCode) -> Resolution: ...
    # Where the scan store may resolve the code in the verify's own round trip (None:
    # `resolve` it), and the resolution of the projection value it read there.
    def place_of(self, parsed: ParsedCode, today: date) -> StorePlace | None: ...
    def resolution_of(self, parsed: ParsedCode, value: str) -> Resolution: ...


class RecordCache(RecordReader, Protocol):
    """The record reader as writers see it: after a change they drop what it holds."""

    def refresh(self, *, force: bool = False) -> None: ...


# An organic code row as the registry saves it: (organic key, label group id, issued on,
# identity code).
CodeRow = tuple[int, int, date | None, str | None]


class AdminRegistry(Protocol):
    """What the admin use cases write and read in the registry. Each method is one
    transaction of its own; rows come validated by the service.

    The registry decides no access: it reports owners (domain.access.Owner), filters lists
    by the owner the service names (`owned_by`, None: all), and where a row must be checked
    inside its own transaction (locked, so no other write moves its owner in between) it
    hands the row's owner to the service's check (`allowed`, `check`)."""

    # tokens
    def find_token(self, token_hash: str) -> tuple[Scope, datetime | None] | None: ...
    def touch_token(self, token_id: int, at: datetime, not_since: datetime) -> None: ...
    def scope_target_id(self, scope_kind: str, name: str) -> int: ...
    def create_token(
        self,
        token_hash: str,
        name: str,
        scope_kind: str,
        scope_id: int | None,
        expires_at: datetime | None = None,
    ) -> int: ...
    # Tokens of the owner's scope (a body's, an organization's), every token for None.
    def list_tokens(self, owned_by: Owner | None) -> list[dict[str, Any]]: ...
    def revoke_token(self, token_id: int, owned_by: Owner | None) -> dict[str, Any]: ...

    # bodies and certificates
    def upsert_bodies(self, rows: Sequence[tuple[int, Mapping[str, Any]]]) -> BulkResult: ...
    # `allowed` is asked of the body a row would certify under and of the certificate's
    # current owner; a refused row is rejected `forbidden`.
    def upsert_certificates(
        self,
        rows: Sequence[tuple[int, Mapping[str, Any]]],
        allowed: Callable[[Owner], bool],
        changed_by: str,
    ) -> BulkResult: ...
    # A certificate `allowed` refuses is not found.
    def change_certificate_status(
        self,
        number: str,
        status: CertificateStatus,
        reason: str | None,
        effective_on: date | None,
        allowed: Callable[[Owner], bool],
        changed_by: str,
    ) -> CertificateState: ...
    def certificate_history(self, number: str) -> list[dict[str, Any]]: ...
    def certificate(self, number: str) -> CertificateState | None: ...

    # codes and orders
    def certificate_refs(self) -> dict[str, tuple[int, int, int]]: ...
    def product_ids(self) -> dict[tuple[int, str], int]: ...
    def body_numbering(self) -> dict[int, tuple[str, str | None]]: ...
    def code_owners(self, keys: Sequence[int]) -> dict[int, Owner]: ...  # of existing codes
    # Saved codes' records as the projection holds them, and the codes the registry lacks.
    def records_of(self, codes: Sequence[str]) -> tuple[list[ProjectedRow], list[tuple[str, CodeKind]]]: ...
    @property
    def bulk_file_supported(self) -> bool: ...  # save_codes(bulk_file=True) loads a file
    def find_order(self, number: str) -> tuple[int, int] | None: ...  # (order id, certificate id)
    # The label group and its order, made on first sight in one transaction: (group id,
    # (order id, the order's certificate id)); the group None when the order is another's.
    def label_group_for(
        self,
        certificate_id: int,
        product_id: int,
        package: str,
        label_spec: str,
        order: str | None = None,
    ) -> tuple[int | None, tuple[int, int] | None]: ...
    # One chunk of codes in one transaction; the keys the owner guard (`body_id`) skipped.
    def save_codes(
        self, rows: list[CodeRow], *, body_id: int | None = None, bulk_file: bool = False
    ) -> list[int]: ...
    def order_owner(self, number: str) -> Owner | None: ...  # its certificate's
    def void_order(self, number: str, reason: str | None, changed_by: str | None = None) -> OrderState: ...

    # BQ batches
    def upsert_batch(
        self,
        batch: Mapping[str, Any],
        codes: Sequence[tuple[int, str, str]],
        organization_id: int | None,
        check: Callable[[Owner, bool], None] | None = None,
        cap: Callable[[GrainBalance, int, int], None] | None = None,
        purchases: Sequence[str] = (),
    ) -> tuple[int, BulkResult]: ...  # `check(owner, activated)` of an existing batch raises to refuse
    # `cap(balance, net_g, marks)` of a company's batch, with its codes linked, raises to refuse.
    def batch_owner(self, number: str) -> Owner | None: ...
    # `check(inspection report or None, company balance or None)` raises to refuse.
    def activate_batch(
        self,
        number: str,
        check: Callable[[dict[str, Any] | None, GrainBalance | None], None] | None = None,
    ) -> BatchState: ...


class OverviewReader(Protocol):
    """The dashboard's aggregate tables (registry.aggregates), read for one scope key
    (domain.overview.scope_key) over China days `first`..`last`, both included."""

    def scans_by_day(self, scope: tuple[str, int], first: date, last: date) -> list[DayCount]: ...
    def flags_by_day(self, scope: tuple[str, int], first: date, last: date) -> list[DayCount]: ...
    def places(self, scope: tuple[str, int], first: date, last: date) -> list[PlaceCount]: ...
    # Certificates, certificate products and batches with the most flags opened.
    def top_targets(self, scope: tuple[str, int], first: date, last: date, limit: int) -> list[Ranked]: ...
    # Certificate products of the certificates in scope, the fullest first (the gauge; all time).
    def gauge(self, scope: Scope, limit: int) -> list[GaugeRow]: ...


class CodeOwners(Protocol):
    """Who owns issued codes now (domain.access.Owner): an organic code's certificate, a BQ
    token's batch. Codes not issued are left out."""

    def code_owners(self, keys: Sequence[int]) -> dict[int, Owner]: ...
    def bq_owners(self, tokens: Sequence[str]) -> dict[str, Owner]: ...


class FlagArchive(Protocol):
    """The database's flags as brands and bodies list and review them, owners read now."""

    def list_flags(
        self,
        owned_by: Owner | None,
        *,
        rule: str | None = None,
        severity: str | None = None,
        status: str | None = None,
        certificate: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        product: str | None = None,
        province: str | None = None,
        cursor: str | None = None,
        limit: int = 100,
    ) -> dict[str, Any]: ...
    # At most `limit` flags as the list orders them, for a file of the whole list: tuples of
    # domain.scans.FLAG_FILE_COLUMNS (times as the list writes them, 2026-12-01T02:30:00Z; the
    # evidence as its stored JSON text).
    # The first rows are read before it returns (a failing read fails the call).
    def export_flags(
        self, owned_by: Owner | None, filters: FlagFilters, limit: int
    ) -> Iterator[tuple[Any, ...]]: ...
    # One flag with its code's owner now; None when there is none.
    def get_flag(self, flag_id: int) -> tuple[dict[str, Any], Owner] | None: ...
    # A flag whose owner `allowed` refuses is not found; (the flag after, its status and
    # note before, its owner now).
    def update_flag(
        self, flag_id: int, status: str, note: str | None, allowed: Callable[[Owner], bool]
    ) -> tuple[dict[str, Any], dict[str, Any], Owner]: ...


class ShopperArchive(Protocol):
    """A shopper's own checks and reports in the database, under the keyed hash of who they
    are (never the openid or visitor id itself)."""

    def history(self, client_hash: str, limit: int = ...) -> list[PastCheck]: ...
    def erase(self, client_hash: str) -> int: ...
    def add_report(
        self,
        code: str,
        client_hash: str | None,
        text: str | None,
        shop: str | None,
        photo: bytes | None,
        photo_type: str | None,
        city: str | None,
        province: str | None,
    ) -> int: ...
    # The report as evidence on the code's `shopper_report` flag (opened on first report).
    def add_evidence(self, code: str, report: dict[str, Any]) -> int: ...


@dataclass(frozen=True, slots=True)
class WxUser:
    """A mini-program shopper, as a session knows them."""

    openid: str

    def __repr__(self) -> str:  # never print a whole openid
        return f"WxUser(openid={self.openid[:4]}…)"


class ShopperSessions(Protocol):
    """The mini-program's sessions (cache.wechat_sessions): our opaque token -> the shopper.
    Raises domain.errors.Unavailable when sessions can be neither stored nor read."""

    def check_available(self) -> None: ...
    def create(self, user: WxUser) -> str: ...
    def get(self, token: str) -> WxUser | None: ...
    def end_all(self, openid: str) -> int: ...  # every session of the shopper (erasure)


class RecentVisits(Protocol):
    """The web page's visits of the last minutes (cache.recent_visits): a reload by the same
    visitor of the same code is no new scan."""

    def first_visit(self, visitor: str, code: str) -> bool: ...


TokenFetch = Callable[[], tuple[str, int]]  # () -> (access token, expires_in seconds)


class TokenStore(Protocol):
    """WeChat's access token, shared by every worker and refreshed by one at a time
    (cache.wechat_tokens); `rejected`: the token WeChat just refused."""

    def get(self) -> str | None: ...
    def refresh(self, fetch: TokenFetch, *, rejected: str | None = None) -> str: ...


class AccountStore(Protocol):
    """Dashboard accounts (registry.accounts.SqlAccounts). Logins are lower-cased by the
    service; rows come back as mappings with the table's columns."""

    def find_login(self, login: str) -> Mapping[str, Any] | None: ...
    def get(self, user_id: int) -> Mapping[str, Any] | None: ...
    def find_invite(self, invite_hash: str) -> Mapping[str, Any] | None: ...
    def create(self, values: Mapping[str, Any]) -> int: ...
    def update(self, user_id: int, values: Mapping[str, Any]) -> None: ...
    def list_in(self, scope: Scope) -> list[Mapping[str, Any]]: ...
    def scope_names(self, scopes: Sequence[tuple[str, int | None]]) -> dict[tuple[str, int | None], str]: ...


class AuditLog(Protocol):
    """The audit log (registry.accounts.SqlAuditLog): appended to, read newest first by scope."""

    def append(self, entry: AuditEntry) -> int: ...
    def list_in(
        self, scope: Scope, *, limit: int, before_id: int | None = None, target: str | None = None
    ) -> list[Mapping[str, Any]]: ...


class IssuingRegistry(Protocol):
    """What label issuance (services.issuing) reads and writes (registry.issuing.SqlIssuing).
    Like AdminRegistry it decides no access: it reports owners, and hands a locked order's
    owner and status to the service's `check` (which raises to refuse)."""

    def certificate_products(self, number: str) -> list[dict[str, Any]] | None: ...
    def scope_certificate_products(self, owned_by: Owner | None, most: int = 500) -> list[dict[str, Any]]: ...
    def certificate_ref(self, number: str) -> tuple[int, Owner] | None: ...
    def product_refs(self, keys: Sequence[tuple[str, str]]) -> dict[tuple[str, str], tuple[int, Owner]]: ...
    def save_specs(self, rows: Sequence[Mapping[str, Any]]) -> list[int]: ...
    def list_specs(self, owned_by: Owner | None) -> list[dict[str, Any]]: ...
    def specs(self, ids: Sequence[int]) -> dict[int, dict[str, Any]]: ...
    def add_photo(self, spec_id: int, content_type: str, sha256: str, data: bytes, most: int) -> int: ...
    def photo(self, spec_id: int, photo_id: int) -> tuple[str, bytes] | None: ...
    def photo_ids(self, spec_ids: Sequence[int]) -> dict[int, list[int]]: ...
    def create_order(
        self,
        day: date,
        certificate_id: int,
        organization_id: int,
        fields: Mapping[str, Any],
        lines: Sequence[Mapping[str, Any]],
        actor: str,
    ) -> str: ...
    def update_order(
        self,
        number: str,
        fields: Mapping[str, Any],
        lines: Sequence[Mapping[str, Any]] | None,
        check: Callable[[Owner, str], None],
        actor: str,
    ) -> None: ...
    def submit(
        self,
        number: str,
        check: Callable[[Owner, str], None],
        certificate_usable: Callable[[Any], str | None],
        actor: str,
    ) -> tuple[str, list[Any], str | None]: ...
    def review(
        self, number: str, approve: bool, reason: str | None, check: Callable[[Owner, str], None], actor: str
    ) -> str: ...
    def allocate(
        self, number: str, codes_from: str, check: Callable[[Owner, str], None], actor: str
    ) -> None: ...
    def order_lines(self, number: str) -> list[dict[str, Any]]: ...
    def insert_new_codes(
        self, line_id: int, progress: tuple[int, int], rows: Sequence[tuple[int, int, str]], issued_on: date
    ) -> list[int]: ...
    def existing_codes(self, keys: Sequence[int]) -> dict[int, tuple[int, str | None]]: ...
    def codes_of_identities(self, group_ids: Sequence[int], identities: Sequence[str]) -> dict[str, int]: ...
    def iter_order_codes(
        self, group_ids: Sequence[int], first: int, last: int
    ) -> Iterator[tuple[str, int]]: ...
    def record_losses(
        self, number: str, identities: Sequence[int], check: Callable[[Owner, str], None], actor: str
    ) -> list[int]: ...
    def losses(self, number: str) -> list[int]: ...
    def add_attachment(
        self,
        number: str,
        kind: str,
        content_type: str,
        sha256: str,
        data: bytes,
        check: Callable[[Owner, str], None],
        most: int,
    ) -> int: ...
    def attachment(self, number: str, attachment_id: int) -> tuple[str, bytes] | None: ...
    def order(self, number: str) -> dict[str, Any] | None: ...
    def list_orders(self, owned_by: Owner | None, status: str | None) -> list[dict[str, Any]]: ...
    def issued_so_far(self, product_ids: Sequence[int]) -> dict[int, int]: ...
    def uses(self, number: str) -> list[dict[str, Any]]: ...
    def take_into_use(
        self,
        number: str,
        n: int,
        span: tuple[int, int] | int,
        record: Mapping[str, Any],
        check: Callable[[Owner, str], None],
    ) -> int: ...
    def roll_back_use(self, number: str, use_id: int, check: Callable[[Owner, str], None]) -> None: ...


class CaseReader(Protocol):
    """One code's evidence in the database (registry.cases.SqlCaseReader): its scans (the
    scanner shortened), counts, reports and their photos, flags. Taken as given: the
    service checks the code's owner first."""

    def scans(self, code: str, *, limit: int) -> list[dict[str, Any]]: ...
    def scan_totals(self, code: str, since: datetime | None = None) -> dict[str, Any]: ...
    def scans_by_place(self, code: str) -> list[dict[str, Any]]: ...
    def scans_by_channel(self, code: str) -> dict[str, int]: ...
    def scans_by_day(self, code: str) -> list[dict[str, Any]]: ...
    def reports(self, code: str) -> list[dict[str, Any]]: ...
    def report_photo(self, report_id: int) -> tuple[str, bytes, str] | None: ...
    def flags_of(self, code: str) -> list[dict[str, Any]]: ...


class GrainRegistry(Protocol):
    """The Wuchang raw-grain ledger's reads and writes (registry.grain.SqlGrain)."""

    def organization_ids(self, names: Sequence[str]) -> dict[str, int]: ...
    def organization_name(self, organization_id: int) -> str | None: ...
    # Rows: organization_id, reference, purchased_on, supplier, quantity_g; upserted by
    # (organization_id, reference).
    def upsert_purchases(self, rows: Sequence[Mapping[str, Any]], actor: str) -> None: ...
    def ledger(self, organization_id: int) -> tuple[GrainBalance, list[dict[str, Any]], dict[str, int]]: ...
    def set_yield(self, organization_id: int, milling_yield: Decimal | None) -> None: ...
    def batch_ref(self, number: str) -> tuple[int, int | None, bool] | None: ...
    def save_inspection(self, batch_id: int, fields: Mapping[str, Any], actor: str) -> None: ...
    def inspection(self, batch_id: int) -> tuple[dict[str, Any], bytes] | None: ...
