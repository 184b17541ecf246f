"""The Lua scripts of the scan store and their calling convention, named in one place.

Each script's KEYS, ARGV and reply are a NamedTuple here: the Python side builds the keys
and arguments as those tuples (a tuple is what redis-py sends, in field order) and decodes
the reply into one, and the script reads them through names generated from the same
fields: `local K_STATE = KEYS[1]`, `local A_NOW = ARGV[1]`, `local R_SCANS = 1`, … are
prepended to the `.lua` file. Adding a field is one line here plus its use in the script;
nothing is counted by hand. tests/unit/anomaly/test_anomaly_scripts.py checks that the
two sides agree.

The `.lua` files are package data of `anomaly` (read with importlib.resources, so they
are found from a checkout, an installed package or the Docker image, which copies the tree).
"""

from __future__ import annotations

from collections.abc import Mapping
from importlib import resources
from typing import Any, NamedTuple

from domain.scans import SEVERITY_RANK


class ScanKeys(NamedTuple):
    """The keys scan.lua touches (see anomaly.state for what each holds)."""

    state: str  # s:{C}:h
    scanners: str  # s:{C}:u
    recent: str  # s:{C}:r
    flags: str  # s:{C}:fl
    event_ids: str  # s:{C}:ev
    client_guesses: str  # s:e:{S} (on a cluster: the state key again, not touched)
    stream: str  # s:stream (on a cluster: s:{g<G>}:stream, the code's slot group's)
    scanner_last: str  # s:{C}:z
    ip_guesses: str  # s:e:{I} (the scanner's when there is no IP; on a cluster as above)
    product_codes: str  # s:q:{P} (on a cluster as above)
    identities: str  # s:{C}:n
    # Resolving the code in the same call (one server; "" otherwise, not touched): its
    # projection bucket (cache.projection) and the per-group verdict facts (cache.keys.facts).
    bucket: str = ""
    facts: str = ""


class ScanArgs(NamedTuple):
    """scan.lua's arguments. Redis hands every one to the script as a string: flags are
    "1"/"0" and absent values ""."""

    now: int  # the scan's time, ms
    scanner: str  # the scanner's hash ("" for none)
    city: str
    province: str
    lat: float | str
    lng: float | str
    verdict: str
    record: str  # "1": record the scan; "0": only read
    event_id: str
    distinct_window_ms: int
    recent_max: int
    scanners_max: int
    enumeration_per_hour: int
    ttl_ms: int
    stream_maxlen: int
    dedupe: str  # "1": the event id came from outside and may repeat
    event_json: str
    ip_hash: str
    code: str
    enumeration_ip_per_hour: int
    has_coordinates: str  # "1" when the scan came with coordinates
    provinces: int
    distinct_warn: int
    distinct_suspicious: int
    velocity_min: int
    package_kg: str  # the package weight to count the product's code under; "" for none
    identity: str
    place_shown: str  # "1": the place may name the code's first place (not a claim)
    lookup: str  # "1": a read-only lookup that counts toward enumeration
    trust: str  # the history entry's trust field
    wechat_place: str  # "1": the place came from a verified session
    # "": the script counts the enumeration sets itself (one server). On a cluster they lie
    # in other slots: the gate (anomaly/gate.lua) counted them first, and this is its
    # verdict, "<client over><ip over>" as "0"/"1" each.
    gate: str
    # The request's rate-limit windows, counted first: "key expiry_s limit" lines ("" for
    # none; webapp.limits.RateLimits builds them with the `limits` library's key names).
    windows: str
    # Resolve the code here: its field in K_BUCKET ("": the caller resolved it and gave
    # `verdict`), and the facts' field prefix ("g" label group, "b" BQ batch) put before
    # the projection value's first item (the group's or batch's id).
    field: str = ""
    facts_prefix: str = ""
    product_prefix: str = ""  # the product tally's key without the product (s:q:)


class ScanReply(NamedTuple):
    """What scan.lua answers: the code's state, this scan included."""

    scans: int  # how often the code was scanned
    first_ms: int  # 0: never scanned
    first_city: bytes | str
    distinct: int  # distinct scanners in the window
    you: bytes | str  # "first_ms,count" of this scanner, "" for none
    throttled: int
    duplicate: int
    recent: list[Any]  # the history entries, only when some rule could change
    flags: list[Any]  # rule, "severity|raised_ms|status", … (HGETALL)
    product_codes: list[Any]  # package kg, codes, … (only at a code's first genuine scan)
    identities: int  # distinct identities in the window
    # 1: this was the code's first genuine scan (the product's tally counts it; on a
    # cluster the tally lies in another slot and the caller counts it there).
    first_genuine: int
    limited: int  # seconds until the longest exceeded window resets; 0: within every window
    # Resolving here (A_FIELD given): the code's projection value and the verdict recorded;
    # `need` "" when done, "miss" (not in the projection: never issued, or its bucket not
    # filled) or "facts" (none for its group under this key yet): nothing was counted or
    # recorded, and the caller resolves the code itself or writes the facts and calls again.
    resolved: bytes | str = ""
    verdict: bytes | str = ""
    need: bytes | str = ""


class FlagKeys(NamedTuple):
    flags: str  # s:{C}:fl
    flag_stream: str  # s:flags


class FlagArgs(NamedTuple):
    """flags.lua's fixed arguments; one (rule, severity, raised ms, payload) per flag follow."""

    stream_maxlen: int
    ttl_ms: int


class FlagReply(NamedTuple):
    written: list[Any]  # the rules raised or escalated by this call
    flags: list[Any]  # the code's flags after it (HGETALL)


def prologue(keys: type[tuple[Any, ...]], args: type[tuple[Any, ...]], reply: type[tuple[Any, ...]]) -> str:
    """The Lua lines that name every KEYS, ARGV and reply position of a script."""
    lines = [f"local K_{name.upper()} = KEYS[{i}]" for i, name in enumerate(_fields(keys), 1)]
    lines += [f"local A_{name.upper()} = ARGV[{i}]" for i, name in enumerate(_fields(args), 1)]
    lines += [f"local R_{name.upper()} = {i}" for i, name in enumerate(_fields(reply), 1)]
    return "\n".join(lines) + "\n"


def constants(values: Mapping[str, int | Mapping[str, int]]) -> str:
    """Lua locals for values the Python side owns (numbers, and tables of numbers by name)."""
    lines = []
    for name, value in values.items():
        if isinstance(value, Mapping):
            items = ", ".join(f"{k} = {v}" for k, v in value.items())
            lines.append(f"local {name} = {{{items}}}")
        else:
            lines.append(f"local {name} = {value}")
    return "\n".join(lines) + "\n"


def _fields(layout: type[tuple[Any, ...]]) -> tuple[str, ...]:
    return layout._fields  # type: ignore[attr-defined]


def source(name: str) -> str:
    """A `.lua` file shipped in this package, as written (without the generated names)."""
    return resources.files("anomaly").joinpath(name).read_text(encoding="utf-8")


def scan_script() -> str:
    return prologue(ScanKeys, ScanArgs, ScanReply) + source("scan.lua")


def gate_script() -> str:
    """The enumeration gate of a scan on a cluster (one set, its own slot): gate.lua."""
    return source("gate.lua")


def flag_script() -> str:
    head = constants({"FLAG_ARGS": len(FlagArgs._fields), "SEVERITY_RANK": dict(SEVERITY_RANK)})
    return head + prologue(FlagKeys, FlagArgs, FlagReply) + source("flags.lua")
