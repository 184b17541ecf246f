"""The vocabulary of scans and flags: what a verify leaves behind and what the rules say
about a code. Pure values; the scan store (anomaly/), its SQL archive (registry/scans.py)
and the services all speak these names.

The roles around them, one name each:

- `domain.ports.ScanLedger`: the port the verify service records a scan through and
  reads a code's history and open flags from (`ScanInput` in, `ScanResult` out);
- `anomaly.adapter.ScanLedgerAdapter`: the ledger for a deployment: minimizes a
  `ScanInput` into a scan event (hashed ids, rounded coordinates) and guards its store
  with a breaker;
- `anomaly.state.RedisScanStore` / `anomaly.state.MemoryScanStore`: the live scan state
  and rules, in Redis (one Lua script per verify) or in process (the embedded default);
- `registry.scans.SqlScanArchive`: the database copy of every event and flag, which the
  worker fills from the streams and the dashboards, exports and reviews read.

Enums are `StrEnum`s: members compare and hash as their strings, so values read back
from Redis, SQL or JSON match them without conversion.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from domain.codes import normalize_identity
from domain.errors import BadInput

if TYPE_CHECKING:
    from domain.records import LabelGroup


class Severity(StrEnum):
    """How sure a flag is. `warn` opens a flag for the brand to review; only `suspicious`
    (evidence that is costly to fake) changes the shopper's verdict."""

    WARN = "warn"
    SUSPICIOUS = "suspicious"


# A flag only ever moves up this order (an escalation), never down.
SEVERITY_RANK: dict[str, int] = {Severity.WARN: 1, Severity.SUSPICIOUS: 2}


class FlagStatus(StrEnum):
    """Where a flag stands in review: raised (`open`), kept by a reviewer (`confirmed`),
    set aside (`dismissed`; it opens again only if it escalates)."""

    OPEN = "open"
    CONFIRMED = "confirmed"
    DISMISSED = "dismissed"


# The flags a verify answers with (a dismissed one is not shown).
ACTIVE_STATUSES: tuple[FlagStatus, ...] = (FlagStatus.OPEN, FlagStatus.CONFIRMED)


class FlagRule(StrEnum):
    """The rules a flag can name. Per code, from its scans: `distinct_scanners`,
    `impossible_travel`, `province_spread`, `velocity` (anomaly.rules.CODE_RULES). From a
    shopper: `shopper_report` (a report of a suspected counterfeit). Per certificate
    product: `over_quantity` (more codes on shelves than its certified quantity can fill)
    and `off_market` (scanned outside its declared sales region). Per label (issue 17):
    `not_in_use` (a genuine label scanned while still in its order's stock: no use record
    covers it) and `identity_mismatch` (the identity code sent with it is another label's)."""

    DISTINCT_SCANNERS = "distinct_scanners"
    IMPOSSIBLE_TRAVEL = "impossible_travel"
    PROVINCE_SPREAD = "province_spread"
    VELOCITY = "velocity"
    SHOPPER_REPORT = "shopper_report"
    OVER_QUANTITY = "over_quantity"
    OFF_MARKET = "off_market"
    NOT_IN_USE = "not_in_use"
    IDENTITY_MISMATCH = "identity_mismatch"


class PlaceSource(StrEnum):
    """Where a scan's place came from, from costliest to cheapest to fake: coordinates
    from a WeChat-verified session, coordinates claimed in a public request, the IP's city."""

    WECHAT = "wechat"
    GPS = "gps"
    IP = "ip"


# Event kinds carried on a scan's channel (the channels themselves are the verify
# service's: manual, qr, photo, web, wechat, api).
# A scan from a WeChat-verified session (a costly identity) reaches the scan store with
# its channel prefixed by this mark; the scan event strips it and keeps `verified`.
VERIFIED_CHANNEL_PREFIX = "wx:"
# The problem code of a scan store that failed or is skipped (anomaly.adapter): the verify
# answers without scan history. Any other Unavailable (the database's) is the answer's.
SCAN_STORE_UNAVAILABLE = "scan_store_unavailable"
# A read-only lookup (GET of a code, the result page) of a never-issued code: counted
# toward the asker's enumeration budget, never recorded as a scan.
LOOKUP_CHANNEL = "peek"


@dataclass(frozen=True, slots=True)
class Flag:
    """A rule's finding about a code (or its product), with the evidence a reviewer reads:
    scans by event id, time and city; scanners only as short hash prefixes."""

    rule: str  # a FlagRule
    severity: str  # a Severity
    raised_at: datetime
    evidence: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class FlagFilters:
    """The flag list's filters, checked (services.scans.ScanAdminService): a flag's own
    rule, severity, status and time raised; its code's certificate and product now; a
    province its code was scanned in. None: not filtered."""

    rule: str | None = None
    severity: str | None = None
    status: str | None = None
    certificate: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    product: str | None = None
    province: str | None = None


# A flag as a file of the list has it (CSV and XLSX exports), in this order.
FLAG_FILE_COLUMNS = (
    "id",
    "code",
    "rule",
    "severity",
    "status",
    "raised_at",
    "updated_at",
    "note",
    "evidence",
)


@dataclass(frozen=True, slots=True)
class ScanSummary:
    """How often a code was queried, as the shopper sees it ("queried 3 times, first on … in …")."""

    count: int
    first_at: datetime | None
    first_city: str | None
    distinct_scanners: int
    you_count: int | None = None
    you_first_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class PastCheck:
    """One of a shopper's own checks, as their history shows it."""

    code: str
    at: datetime
    channel: str
    verdict: str  # a Verdict
    city: str | None


@dataclass(frozen=True, slots=True)
class OpenFlag:
    """A flag as a verify answers it: open or confirmed (see ACTIVE_STATUSES)."""

    rule: str  # a FlagRule
    severity: str  # a Severity
    raised_at: datetime


@dataclass(frozen=True, slots=True)
class ScanInput:
    """One verify, as the scan store needs it. `client` and `ip` are raw here and are
    hashed with the server's key by the scan store before anything is kept."""

    code: str
    kind: str | None
    at: datetime
    channel: str
    verdict: str
    client: str | None = None
    ip: str | None = None
    lat: float | None = None
    lng: float | None = None
    event_id: str | None = None
    group: LabelGroup | None = None  # the code's label group, for the product rules
    label: LabelFacts | None = None  # the scanned label itself, for the label rules
    # The request's rate-limit windows, counted by the scan store in the same round trip
    # (domain.ports.RateWindows.payload; "" for none).
    windows: str = ""
    # The code still to be resolved, by the scan store in the same round trip: where its
    # record lies (`place`, from the record reader) and, given that record's projection
    # value, what the verify makes of it (`resolve_with`: verdict, label group, label).
    # `verdict` is then "" until the store resolves it.
    place: StorePlace | None = None
    resolve_with: Callable[[str], tuple[str, LabelGroup | None, LabelFacts | None]] | None = None


@dataclass(frozen=True, slots=True)
class StorePlace:
    """Where a code's record lies in the key store, for the scan store to read in the
    verify's own round trip (cache.projection, one server): its bucket key and field, and
    the key of the verdict facts of the groups under the current status generation and
    China's day, with the prefix of its group's field ("g" label group, "b" BQ batch)."""

    bucket: str
    field: str
    facts: str
    facts_prefix: str


@dataclass(frozen=True, slots=True)
class LabelFacts:
    """What the registry says about the one label scanned (issue 17), for the label rules.

    `identity_code`: its identity code on file (None: none on file). `in_stock`: it was
    issued through an order line whose labels are taken into use (领用), and no use record
    covered it at the scan's day, so it left stock unrecorded (`not_in_use`); False for
    labels in use and for codes never issued through an order line (imported lists), which
    have no stock to leak from. `identity_given`: the identity code sent with the code
    (None: none was); another label's raises `identity_mismatch`."""

    identity_code: str | None
    order_number: str | None = None
    in_stock: bool = False
    identity_given: str | None = None

    @property
    def mismatch(self) -> bool:
        # Only a 9-digit identity on file can be compared with the 9 digits a shopper sends
        # (domain.codes.normalize_identity): an imported list may carry another body's
        # numbering (up to 24 characters), which no typed identity could ever equal, and a
        # genuine label must not turn suspicious for that.
        if self.identity_given is None or self.identity_code is None:
            return False
        try:  # folded as a typed one is (full-width digits, spaces, dashes)
            stored = normalize_identity(self.identity_code)
        except BadInput:
            return False
        return self.identity_given != stored


@dataclass(frozen=True, slots=True)
class ScanResult:
    """What the ledger answers for one scan: the summary, the active flags, and whether the
    asker is refused for guessing codes (`throttled`)."""

    summary: ScanSummary
    flags: tuple[OpenFlag, ...] = ()
    throttled: bool = False
    # Seconds until the longest rate-limit window this request exceeded resets; 0: none
    # (nothing was recorded for a refused request).
    limited_s: int = 0
    # A scan with a `place`: the code's projection value the store read, "" when it could
    # not resolve the code there (nothing counted or recorded: the caller resolves it and
    # records as usual); None for a scan without one.
    resolved: str | None = None
