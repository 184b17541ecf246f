"""Anomaly rules: pure functions over a code's scan state, each flag carrying its evidence.

Every rule counts *different scanners*: one shopper checking the same bag again and again,
at home and on a trip, is never suspicious. A scan without a scanner (an imported event
with neither client nor IP) cannot be told apart from a repeat, so it never counts as a
scanner either. Thresholds live in `RuleConfig` (overridable from the environment as
RULE_<NAME>, e.g. RULE_DISTINCT_SUSPICIOUS=6).

Evidence names scans by event id, time and city (and where the place came from: `ip`,
`gps`, `wechat`); scanners appear only as the first 8 characters of their keyed hash,
enough to tell scans apart in a report.

Weighing (issue 14). What a stranger can fake for free — made-up client ids, coordinates
sent in the body, one IP — may open a flag at `warn` for the brand to review; only what
is costly to fake can take a rule to `suspicious` (and so the shopper's verdict):

- scanners count toward `suspicious` as *identities*: a WeChat-verified session is one,
  any other scanner is its network (/24 IPv4, /48 IPv6), so any number of client ids from
  one network weigh as one (`distinct_scanners`, `velocity`);
- `impossible_travel` is `suspicious` only between two verified sessions' places;
  coordinates claimed in a public request give at most a `warn`;
- `province_spread` weighs a place by its source: GPS 1, an IP's city `ip_place_weight`
  (mobile IPs resolve to a distant gateway); toward `suspicious` only verified places and
  IP places count, one per identity (claimed coordinates, any number of them, do not).
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from anomaly.geo import distance_km
from domain.scans import Flag, FlagRule, LabelFacts, PlaceSource, Severity

if TYPE_CHECKING:
    from anomaly.events import ScanEvent

DAY_MS = 86_400_000
HOUR_MS = 3_600_000


@dataclass(frozen=True)
class RuleConfig:
    distinct_warn: int = 3
    distinct_suspicious: int = 5
    distinct_window_days: int = 30
    travel_kmh: float = 250.0
    travel_min_km: float = 50.0
    provinces: int = 3
    provinces_window_days: int = 7
    velocity_hour: int = 10
    velocity_day: int = 30
    enumeration_per_hour: int = 10
    # Per IP, against a guesser rotating client ids (and for requests without a client id).
    # Sized for carrier NAT: thousands of shoppers behind one address, of whom a few per
    # cent mistype a code. Past it only never-issued lookups from that IP are refused.
    enumeration_ip_per_hour: int = 200
    # A province known only from a scanner's IP weighs this much of a GPS place.
    ip_place_weight: float = 0.5
    # 50 rather than ~20: the daily velocity limit (30 scanners) must fit in the history.
    recent_max: int = 50
    scanners_max: int = 500
    retention_days: int = 400

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> RuleConfig:
        """Thresholds by field name (RULE_<NAME> in the environment, lower-cased); values may
        be strings. An unknown name is an error: a misspelt override must not be ignored."""
        known = {f.name for f in fields(cls)}
        if unknown := sorted(set(values) - known):
            raise ValueError(f"unknown rule settings {unknown}; known: {sorted(known)}")
        kwargs: dict[str, Any] = {}
        for f in fields(cls):
            if f.name in values:
                kind = float if isinstance(f.default, float) else int
                try:
                    kwargs[f.name] = kind(values[f.name])
                except (TypeError, ValueError) as exc:
                    raise ValueError(
                        f"rule setting {f.name} must be a number, got {values[f.name]!r}"
                    ) from exc
        return cls(**kwargs)


@dataclass(frozen=True, slots=True)
class RecentScan:
    at_ms: int
    scanner: str | None
    city: str | None
    province: str | None
    lat: float | None
    lng: float | None
    event_id: str
    identity: str | None = None  # see ScanEvent.identity; None: the scanner itself
    source: str | None = None  # where the place came from: "wechat", "gps", "ip"

    @classmethod
    def of(cls, event: ScanEvent) -> RecentScan:
        e = event
        return cls(
            e.at_ms, e.client, e.city, e.province, e.lat, e.lng, e.event_id, e.identity, e.place_source
        )

    @property
    def ident(self) -> str | None:
        return self.identity or self.scanner

    @property
    def place_from(self) -> str | None:
        """The place's source; scans recorded before sources were kept: GPS if they had
        coordinates, else the IP's city."""
        if self.province is None:
            return None
        return self.source or (PlaceSource.GPS if self.lat is not None else PlaceSource.IP)

    def evidence(self) -> dict[str, Any]:
        # Scanner hashes are shortened further: enough to tell scans apart in a report.
        return {
            "event_id": self.event_id,
            "at": _iso(self.at_ms),
            "city": self.city,
            "province": self.province,
            "place_from": self.place_from,
            "scanner": self.scanner[:8] if self.scanner else None,
            "verified": self.identity is not None and self.identity.startswith("v"),
        }


@dataclass(frozen=True, slots=True)
class CodeScanState:
    code: str
    now_ms: int
    count: int
    first_at_ms: int | None
    first_city: str | None
    distinct_scanners: int  # within the distinct-scanner window
    recent: tuple[RecentScan, ...] = ()  # newest first
    # Distinct identities (networks, verified sessions) in the same window; None: as many
    # as scanners (states built without identities, e.g. in tests).
    distinct_networks: int | None = None
    you_count: int | None = None
    you_first_ms: int | None = None


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat().replace("+00:00", "Z")


def _at(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


def _first_per_scanner(scans: list[RecentScan]) -> list[RecentScan]:
    """Each scanner's earliest scan among `scans` (oldest first): repeats folded away,
    scans without a scanner left out."""
    seen: dict[str, RecentScan] = {}
    for scan in sorted(scans, key=lambda s: s.at_ms):
        if scan.scanner:
            seen.setdefault(scan.scanner, scan)
    return list(seen.values())


def distinct_scanners(state: CodeScanState, cfg: RuleConfig) -> Flag | None:
    """Many different scanners of one code: `warn` from `distinct_warn` scanners of any kind,
    `suspicious` only from `distinct_suspicious` identities (networks or verified sessions)."""
    n = state.distinct_scanners
    if n < cfg.distinct_warn:
        return None
    m = n if state.distinct_networks is None else state.distinct_networks
    severity = Severity.SUSPICIOUS if m >= cfg.distinct_suspicious else Severity.WARN
    window = [s for s in state.recent if s.at_ms >= state.now_ms - cfg.distinct_window_days * DAY_MS]
    return Flag(
        FlagRule.DISTINCT_SCANNERS,
        severity,
        _at(state.now_ms),
        {
            "distinct_scanners": n,
            "distinct_networks": m,
            "window_days": cfg.distinct_window_days,
            "scans": [s.evidence() for s in _first_per_scanner(window)][-20:],
        },
    )


def impossible_travel(state: CodeScanState, cfg: RuleConfig) -> Flag | None:
    """Two different scanners, one right after the other, too far apart for the time between
    them. Only GPS places count: an IP's city is where the carrier routes, not the shopper.
    Coordinates are the client's word: `suspicious` only when both places come from
    verified sessions of two identities, otherwise `warn` for the brand to look at."""
    located = sorted(
        (s for s in state.recent if s.lat is not None and s.lng is not None and s.scanner),
        key=lambda s: s.at_ms,
    )
    worst: tuple[int, float, float, RecentScan, RecentScan] | None = None
    for earlier, later in itertools.pairwise(located):
        if earlier.scanner == later.scanner:
            continue  # one shopper travelling with the bag
        km = distance_km(earlier.lat or 0.0, earlier.lng or 0.0, later.lat or 0.0, later.lng or 0.0)
        hours = max((later.at_ms - earlier.at_ms) / HOUR_MS, 1 / 60)
        kmh = km / hours
        if km <= cfg.travel_min_km or kmh <= cfg.travel_kmh:
            continue
        trusted = (
            earlier.place_from == later.place_from == PlaceSource.WECHAT and earlier.ident != later.ident
        )
        rank = 2 if trusted else 1
        if worst is None or (rank, kmh) > (worst[0], worst[2]):
            worst = (rank, km, kmh, earlier, later)
    if worst is None:
        return None
    rank, km, kmh, earlier, later = worst
    return Flag(
        FlagRule.IMPOSSIBLE_TRAVEL,
        Severity.SUSPICIOUS if rank == 2 else Severity.WARN,
        _at(state.now_ms),
        {
            "km": round(km),
            "km_per_hour": round(kmh),
            "scans": [earlier.evidence(), later.evidence()],
        },
    )


def province_spread(state: CodeScanState, cfg: RuleConfig) -> Flag | None:
    window = [
        s for s in state.recent if s.at_ms >= state.now_ms - cfg.provinces_window_days * DAY_MS and s.province
    ]
    # Each scanner counts once, at its first place: a traveller re-checking is one scanner.
    # A province weighs as its best-known place: GPS 1, an IP's city less (mobile IPs
    # resolve to a gateway that may be provinces away).
    weights: dict[str, float] = {
        PlaceSource.GPS: 1.0,
        PlaceSource.WECHAT: 1.0,
        PlaceSource.IP: cfg.ip_place_weight,
    }
    provinces: dict[str, RecentScan] = {}
    for scan in _first_per_scanner(window):
        best = provinces.get(scan.province or "")
        if (
            best is None
            or weights[scan.place_from or PlaceSource.IP] > weights[best.place_from or PlaceSource.IP]
        ):
            provinces[scan.province or ""] = scan
    weight = sum(weights[s.place_from or PlaceSource.IP] for s in provinces.values())
    if weight < cfg.provinces:
        return None
    # Toward `suspicious`: one place per identity, and only places a client cannot simply
    # claim (a verified session's GPS, an IP's city).
    costly: dict[str, float] = {PlaceSource.WECHAT: 1.0, PlaceSource.IP: cfg.ip_place_weight}
    firsts: dict[str, RecentScan] = {}
    for scan in sorted(window, key=lambda s: s.at_ms):
        if scan.ident and scan.place_from in costly:
            firsts.setdefault(scan.ident, scan)
    strong: dict[str, float] = {}
    for scan in firsts.values():
        key = scan.province or ""
        strong[key] = max(strong.get(key, 0.0), costly[scan.place_from or PlaceSource.IP])
    severity = Severity.SUSPICIOUS if sum(strong.values()) >= cfg.provinces else Severity.WARN
    return Flag(
        FlagRule.PROVINCE_SPREAD,
        severity,
        _at(state.now_ms),
        {
            "provinces": sorted(provinces),
            "weight": weight,
            "window_days": cfg.provinces_window_days,
            "scans": [s.evidence() for s in provinces.values()],
        },
    )


def velocity(state: CodeScanState, cfg: RuleConfig) -> Flag | None:
    hour = _first_per_scanner([s for s in state.recent if s.at_ms >= state.now_ms - HOUR_MS])
    day = _first_per_scanner([s for s in state.recent if s.at_ms >= state.now_ms - DAY_MS])
    found = [
        (name, scans, limit, len({s.ident for s in scans}))
        for name, scans, limit in (("hour", hour, cfg.velocity_hour), ("day", day, cfg.velocity_day))
        if len(scans) > limit
    ]
    if not found:
        return None
    # `suspicious` only when the identities (networks, verified sessions) exceed it too.
    window, scans, limit, idents = max(found, key=lambda f: f[3] > f[2])
    return Flag(
        FlagRule.VELOCITY,
        Severity.SUSPICIOUS if idents > limit else Severity.WARN,
        _at(state.now_ms),
        {
            "window": window,
            "scanners": len(scans),
            "networks": idents,
            "limit": limit,
            "scans": [s.evidence() for s in scans][-20:],
        },
    )


CODE_RULES = (distinct_scanners, impossible_travel, province_spread, velocity)


def evaluate(state: CodeScanState, cfg: RuleConfig, settled: frozenset[str] = frozenset()) -> list[Flag]:
    """Every per-code rule over the state that already includes the scan being made.

    Rules in `settled` already stand at their highest severity on this code and cannot
    change: they are skipped (on a copied code every scan would otherwise rebuild them).
    """
    return [
        flag for rule in CODE_RULES if rule.__name__ not in settled and (flag := rule(state, cfg)) is not None
    ]


# A rule's function name is its flag's rule name: FlagRule() refuses a name the domain
# does not know, when this module is imported.
CODE_RULE_NAMES = tuple(FlagRule(rule.__name__) for rule in CODE_RULES)


def enumeration(not_found_last_hour: int, cfg: RuleConfig) -> bool:
    """One client or IP looking up more never-issued codes than a shopper mistypes: a guesser."""
    return not_found_last_hour > cfg.enumeration_per_hour


def over_quantity(per_package: Mapping[float, int], certified_tonnes: float, now: datetime) -> Flag | None:
    """More of one certificate product's codes seen on shelves (distinct codes per package
    weight, kg) than its certified quantity can fill: labels on goods never certified."""
    if certified_tonnes <= 0:
        return None
    seen_tonnes = sum(kg * n for kg, n in per_package.items() if kg > 0) / 1000
    if seen_tonnes <= certified_tonnes:
        return None
    return Flag(
        FlagRule.OVER_QUANTITY,
        Severity.SUSPICIOUS,
        now,
        {
            "distinct_codes": sum(per_package.values()),
            "per_package_kg": {f"{kg:g}": n for kg, n in sorted(per_package.items())},
            "seen_tonnes": round(seen_tonnes, 3),
            "certified_tonnes": certified_tonnes,
        },
    )


def off_market(
    province: str | None, declared: frozenset[str], scan: RecentScan, now: datetime
) -> Flag | None:
    """A scan outside the sales region declared for the product (only where one is declared).
    The region lists provinces or cities ("浙江省", "上海市", "苏州市"); a scan without a
    place is never off-market."""
    if not declared or province is None or province in declared or (scan.city and scan.city in declared):
        return None
    return Flag(
        FlagRule.OFF_MARKET,
        Severity.WARN,
        now,
        {"province": province, "city": scan.city, "declared": sorted(declared), "scans": [scan.evidence()]},
    )


@dataclass(frozen=True, slots=True)
class ProductContext:
    """The certificate product a scanned code belongs to, as the product rules need it."""

    key: str  # the certificate product's id
    package_kg: float | None
    certified_tonnes: float | None
    regions: frozenset[str] = frozenset()

    @property
    def counts_codes(self) -> bool:
        """Only with both a package weight and a certified quantity is there a claim to check."""
        return bool(self.package_kg and self.certified_tonnes)


def product_rules(
    product: ProductContext, scan: RecentScan, seen: Mapping[float, int], now: datetime
) -> list[Flag]:
    """Over-quantity and off-market for one scan of a genuine code. `seen`: the product's
    codes seen so far per package weight when this scan is its code's first, else empty
    (a code already counted cannot push the product over its quantity again)."""
    flags = []
    if seen and product.counts_codes:
        flag = over_quantity(seen, product.certified_tonnes or 0, now)
        if flag is not None:
            flags.append(flag)
    if product.regions:
        flag = off_market(scan.province, product.regions, scan, now)
        if flag is not None:
            flags.append(flag)
    return flags


def label_rules(label: LabelFacts, scan: RecentScan, genuine: bool, now: datetime) -> list[Flag]:
    """The rules about the one label scanned (issue 17), for a scan of an issued code.

    `not_in_use` (warn): a genuine label still in its order's stock, no use record (领用)
    covering it: labels leaking from stock (or a take not yet recorded), for the holder to
    look at. `identity_mismatch`: the identity code sent with the code is another label's,
    a label made of two. A shopper's word costs nothing, so from anyone but a
    WeChat-verified session it is a `warn` (one stranger must not mark a genuine code
    suspicious for everyone); the asker's own answer says `suspicious` either way."""
    flags = []
    if genuine and label.in_stock:
        flags.append(
            Flag(
                FlagRule.NOT_IN_USE,
                Severity.WARN,
                now,
                {
                    "identity_code": label.identity_code,
                    "order": label.order_number,
                    "scans": [scan.evidence()],
                },
            )
        )
    if label.mismatch:
        verified = scan.identity is not None and scan.identity.startswith("v")
        flags.append(
            Flag(
                FlagRule.IDENTITY_MISMATCH,
                Severity.SUSPICIOUS if verified else Severity.WARN,
                now,
                {
                    "identity_code_given": label.identity_given,
                    "identity_code_on_file": label.identity_code,
                    "order": label.order_number,
                    "scans": [scan.evidence()],
                },
            )
        )
    return flags
