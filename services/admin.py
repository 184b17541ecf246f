"""Admin use cases for certification bodies, brands and regulators: bodies, certificates,
codes, orders, BQ batches, tokens. Every change ends by telling the caches (generations),
so it shows in every verify answer within a second.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import itertools
import logging
import operator
import secrets
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Annotated, Any, Literal, NamedTuple, NotRequired, get_args, get_origin

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)
from typing_extensions import TypedDict, get_type_hints

from domain import access
from domain.access import Owner
from domain.bulk import BulkResult, RowProblem, Scope
from domain.certificates import (
    CERTIFICATE_PATTERN,
    CertificateStatus,
    body_codes_from_approval,
    check_body_codes,
    parse_certificate_number,
)
from domain.china_time import china_today, iso_utc
from domain.codes import organic_key
from domain.errors import BadInput, Conflict, DomainError, Forbidden, NotFound, Unavailable
from domain.grain import GrainBalance, kg, over_cap_detail
from domain.ports import AdminRegistry, CodeProjection, FilterStore, Generations, RecordCache
from services.sheets import CsvBlock, CsvTable

log = logging.getLogger(__name__)

Str200 = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Opt100 = Annotated[str, StringConstraints(strip_whitespace=True, max_length=100)]


class _Row(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class BodyIn(_Row):
    code: str | None = None
    legacy_code: str | None = None
    name: Str200
    approval_number: str | None = None

    @model_validator(mode="after")
    def _codes(self) -> BodyIn:
        if self.approval_number:
            code, legacy = body_codes_from_approval(self.approval_number)
            self.code = self.code or code
            self.legacy_code = self.legacy_code or legacy
        if not self.code:
            raise ValueError("code is required when approval_number is not given")
        check_body_codes(self.code, self.legacy_code)
        return self


class ProductIn(_Row):
    name: Str200
    description: Annotated[str, StringConstraints(max_length=1000)] | None = None
    certified_tonnes: Annotated[Decimal, Field(ge=0, max_digits=14, decimal_places=3)] | None = None
    # Where the product is declared to be sold: province or city names ("浙江省", "上海市").
    sales_regions: (
        list[Annotated[str, StringConstraints(min_length=2, max_length=20, pattern=r"^[^,|]+$")]] | None
    ) = Field(default=None, max_length=40)


class CertificateIn(_Row):
    number: str
    body_code: str
    holder: Str200
    producer: Str200 | None = None
    kind: Literal["organic", "conversion"] = "organic"
    category: Annotated[str, StringConstraints(max_length=40)] | None = None
    valid_from: date
    valid_until: date
    status: Literal["valid", "suspended", "revoked", "cancelled", "expired"] = "valid"
    products: list[ProductIn] = Field(default_factory=list, max_length=500)

    @field_validator("number")
    @classmethod
    def _number(cls, value: str) -> str:
        return parse_certificate_number(value).text

    @model_validator(mode="after")
    def _term(self) -> CertificateIn:
        if self.valid_until < self.valid_from:
            raise ValueError("valid_until is before valid_from")
        body_part = parse_certificate_number(self.number).body_part
        expected = self.body_code if len(body_part) == len(self.body_code) else None
        if body_part.startswith("F"):
            expected = "9" + body_part[1:]
        if expected is not None and body_part.replace("F", "9") != expected:
            raise ValueError(f"certificate number {self.number} does not belong to body {self.body_code}")
        return self


class CodeIn(TypedDict):
    """One organic code row. A TypedDict with declarative constraints only: validated in
    pydantic's core at ~1.5 µs a row, so a million-row CSV is not held up by validation."""

    __pydantic_config__ = ConfigDict(extra="forbid", str_strip_whitespace=True)  # type: ignore[misc]

    code: Annotated[str, StringConstraints(pattern=r"^\d{17,18}$")]
    identity_code: NotRequired[Annotated[str, StringConstraints(max_length=24)] | None]
    certificate: Annotated[str, StringConstraints(to_upper=True, pattern=CERTIFICATE_PATTERN)]
    product: Str200
    issued_on: NotRequired[date | None]
    order: NotRequired[Annotated[str, StringConstraints(max_length=32)] | None]
    package: NotRequired[Opt100]
    label_spec: NotRequired[Opt100]


class BatchCodeIn(_Row):
    a_code: Annotated[str, StringConstraints(pattern=r"^[0-9A-Za-z]{8,32}$")]
    b_code: Annotated[str, StringConstraints(pattern=r"^[0-9A-Za-z]{8,32}$")]


class BatchIn(_Row):
    number: Annotated[str, StringConstraints(pattern=r"^[0-9A-Za-z\-]{3,40}$")]
    producer: Str200
    product: Str200
    net_content_kg: Annotated[Decimal, Field(gt=0, max_digits=10, decimal_places=3)] | None = None
    codes: list[BatchCodeIn] = Field(default_factory=list, max_length=200_000)
    trace: dict[str, Any] = Field(default_factory=dict)
    organization: str | None = None
    # The company's raw-grain purchases (ledger references) the batch's grain came from:
    # the first link of the chain its A code answers with (issue 17).
    purchases: list[Annotated[str, StringConstraints(min_length=1, max_length=60)]] = Field(
        default_factory=list, max_length=1000
    )


class StatusChangeIn(_Row):
    status: Literal["valid", "suspended", "revoked", "cancelled"]
    reason: Annotated[str, StringConstraints(max_length=500)] | None = None
    effective_on: date | None = None

    @field_validator("effective_on", mode="before")
    @classmethod
    def _iso_date(cls, value: Any) -> Any:
        # JSON has no dates: "YYYY-MM-DD" only (pydantic alone reads a number as Unix time).
        if value is not None and not isinstance(value, str | date):
            raise ValueError("effective_on must be a date as YYYY-MM-DD")
        return value


_FIELD_HELP = {
    "code": "not a 17/18-digit organic code (BQ codes are loaded with their batch)",
    "certificate": "not a certificate number like 0123OP2400017",
}


_FIELD_CODES = {"code": "invalid_code", "certificate": "invalid_certificate_number"}


def _errors(exc: ValidationError | list[Any]) -> str:
    """The first errors of a row as one line; `exc` may be the row's error dicts."""
    parts = []
    errors = exc.errors(include_url=False) if isinstance(exc, ValidationError) else exc
    for err in errors[:3]:
        where = ".".join(str(p) for p in err["loc"]) or "row"
        msg = (
            _FIELD_HELP[where]
            if err["type"] == "string_pattern_mismatch" and where in _FIELD_HELP
            else err["msg"]
        )
        if where == "code" and str(err.get("input", "")).startswith("number-cell:"):
            msg = (
                "the code is stored as a number in the sheet, which keeps only 15 digits; store codes as text"
            )
        parts.append(f"{where}: {msg}")
    return "; ".join(parts)


def _validated(rows: Iterable[Any], model: Any, key: str, result: BulkResult) -> list[tuple[int, Any]]:
    """Validate rows in one call to pydantic's core (per-row Python overhead dominates a
    million-row import otherwise); each bad row is reported, the rest are returned."""
    batch = list(rows)
    adapter = _list_adapter(model)
    bad: dict[int, tuple[str, str]] = {}
    if all(type(row) is dict for row in batch):  # every CSV row: no per-row index lists
        candidates, todo = list(range(len(batch))), batch
    else:
        for i, row in enumerate(batch):
            if isinstance(row, RowProblem):  # a row the file reader could not read
                bad[i] = (row.code, row.detail)
            elif type(row) is not dict and not isinstance(row, Mapping):
                bad[i] = ("invalid_row", "each row must be an object")
        candidates = [i for i in range(len(batch)) if i not in bad]
        todo = [batch[i] for i in candidates]
    try:
        try:
            valid = adapter.validate_python(todo)
        except ValidationError as exc:
            for err in exc.errors(include_url=False):
                index = candidates[int(err["loc"][0])]
                if index not in bad:
                    field = str(err["loc"][1]) if len(err["loc"]) > 1 else ""
                    message = _errors([{**err, "loc": err["loc"][1:]}])
                    bad[index] = (_FIELD_CODES.get(field, "invalid_row"), message)
            candidates = [i for i in candidates if i not in bad]
            valid = adapter.validate_python([batch[i] for i in candidates])
    except DomainError:
        # A domain check inside a validator refused a row: find which, one row at a time.
        valid, kept = [], []
        for i in candidates:
            try:
                valid.append(_adapter(model).validate_python(batch[i]))
                kept.append(i)
            except ValidationError as exc:
                first = exc.errors()[0]["loc"]
                bad[i] = (_FIELD_CODES.get(str(first[0]) if first else "", "invalid_row"), _errors(exc))
            except DomainError as exc:
                bad[i] = (exc.code, exc.detail)
        candidates = kept
    for i in sorted(bad):
        row = batch[i]
        result.reject(i, row.get(key, "") if isinstance(row, Mapping) else "", *bad[i])
    return list(zip(candidates, valid, strict=True))


def _group_key(row: Mapping[str, Any]) -> tuple[Any, ...]:
    """A code row's label group, as `import_codes` keys its groups: certificate, product,
    order, package, label."""
    return (
        row["certificate"],
        row["product"],
        row.get("order"),
        row.get("package", ""),
        row.get("label_spec", ""),
    )


class _Columns(NamedTuple):
    """A chunk's columns as CodeIn validates them: the code and identity columns whole, the
    others as their distinct values; `changes` maps a column's cell to its validated value
    where they differ (a day's text to its date)."""

    per_row: dict[str, list[Any]]
    distinct: dict[str, list[Any]]
    changes: list[tuple[str, dict[Any, Any]]]

    def apply(self, block: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The rows holding their validated values (changed in place: the reader's own dicts)."""
        for name, changed in self.changes:  # e.g. issued_on: once per distinct day
            for row in block:
                value = changed.get(row[name], _SAME)
                if value is not _SAME:
                    row[name] = value
        return block


def _checked_columns(block: list[Any] | CsvBlock) -> _Columns | None:
    """A chunk of code rows checked column by column: its columns when each row is valid as
    `_validated` would find it; None, with nothing changed, when this fast path is not
    sure, and `_validated` then validates the chunk row by row and reports every bad row.

    Sure means: every row a plain dict with the same known columns (a CSV's rows without
    blank cells), and every value of every column valid. Each column is checked by
    CodeIn's own type for that field (`_code_field`): the code and identity columns in one
    pass of pydantic's core each (their values must come back as they are), the others
    over their distinct values once (a file's certificate, product, day, order, package
    and label repeat on every row). CodeIn is a TypedDict of independent field constraints
    (no validator sees two fields), so a row is valid exactly when each of its fields is,
    with the same values: tests/unit/test_code_columns.py checks that on generated rows.
    Any doubt sends the whole chunk to `_validated`: messages and order come from one place."""
    if isinstance(block, CsvBlock):
        # A CSV's block gives its columns as read (the rows it would give, as dicts, hold
        # exactly these names and cells): no dict is made.
        named = block.columns()
        if named is None or not _CODE_REQUIRED <= named.keys() <= _CODE_FIELDS.keys():
            return None
        return _valid_columns(named)
    if not block or type(block[0]) is not dict:
        return None
    names = list(block[0])
    if not set(names) <= _CODE_FIELDS.keys() or not set(names) >= _CODE_REQUIRED:
        return None
    # The same length and every one of the first row's keys: the same key set (a row with
    # a blank cell lacks its key; a row of another shape is not a CSV's).
    if set(map(type, block)) != {dict} or set(map(len, block)) != {len(names)}:
        return None
    try:
        named = {name: list(map(operator.itemgetter(name), block)) for name in names}
    except KeyError:  # another key set
        return None
    return _valid_columns(named)


def _rows(block: list[Any] | CsvBlock) -> list[Any]:
    return block.rows() if isinstance(block, CsvBlock) else block


def _valid_columns(named: dict[str, list[Any]]) -> _Columns | None:
    """`_checked_columns`'s checks of the columns themselves."""
    columns = _Columns({}, {}, [])
    try:
        for name, column in named.items():
            if name in _PER_ROW:
                if not _PER_ROW[name](column) and _code_field(name).validate_python(column) != column:
                    return None  # a value the model would change (spaces): not the fast path's
                columns.per_row[name] = column
                continue
            # A chunk's column mostly holds one value: told by comparing every cell with the
            # first (list.count, ~0.05 s a million cells), where hashing every fresh cell cost
            # ~0.13 s. The same equality as a dict's keys, so the same distinct values.
            if column and column.count(column[0]) == len(column):
                distinct = column[:1]
            else:
                distinct = list(dict.fromkeys(column))  # TypeError: an unhashable cell
            valid = _code_field(name).validate_python(distinct)
            columns.distinct[name] = valid
            changed = {k: v for k, v in zip(distinct, valid, strict=True) if type(v) is not type(k) or v != k}
            if changed:
                columns.changes.append((name, changed))
    except (TypeError, ValidationError):
        return None
    return columns


_SAME = object()


def _plain_codes(column: list[Any]) -> bool:
    # CodeIn's code, stricter (ASCII digits, nothing to strip), in C passes: ~40 ms a
    # million where pydantic's check and the comparison with its copy cost ~220 ms.
    try:
        joined = "".join(column)
    except TypeError:  # not every cell a str
        return False
    return set(map(len, column)) <= {17, 18} and joined.isascii() and joined.encode().isdigit()


def _plain_identities(column: list[Any]) -> bool:
    # CodeIn's identity code, stricter: no white space anywhere (str.split's, which holds
    # every character pydantic strips), at most 24 characters. ~30 ms a million where
    # pydantic's check and the comparison cost ~150 ms.
    try:
        joined = "".join(column)
    except TypeError:
        return False
    parts = joined.split()
    return max(map(len, column), default=0) <= 24 and len(parts) == 1 and len(parts[0]) == len(joined)


# A value per row: no distinct-value pass; each column's quick check, which may refuse what
# the model accepts (then pydantic checks it) but never accepts what the model would change.
_PER_ROW: dict[str, Callable[[list[Any]], bool]] = {"code": _plain_codes, "identity_code": _plain_identities}


def _field_type(hint: Any) -> Any:
    return get_args(hint)[0] if get_origin(hint) is NotRequired else hint


_CODE_HINTS = get_type_hints(CodeIn, include_extras=True)
_CODE_FIELDS = {name: _field_type(hint) for name, hint in _CODE_HINTS.items()}
# From the hints, not __required_keys__: under `from __future__ import annotations` the
# TypedDict cannot see NotRequired in its string annotations and calls every key required.
_CODE_REQUIRED = frozenset(name for name, hint in _CODE_HINTS.items() if _field_type(hint) is hint)


@functools.cache
def _code_field(name: str) -> TypeAdapter[list[Any]]:
    """CodeIn's type for one field, with CodeIn's config, over a list of values."""
    field: Any = _CODE_FIELDS[name]
    return TypeAdapter(list[field], config=CodeIn.__pydantic_config__)  # type: ignore[attr-defined]


@functools.cache
def _list_adapter(model: Any) -> TypeAdapter[list[Any]]:
    return TypeAdapter(list[model])


@functools.cache
def _adapter(model: Any) -> TypeAdapter[Any]:
    return TypeAdapter(model)


TOKEN_TOUCH_EVERY = timedelta(minutes=1)


def _token_json(item: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v.isoformat() if isinstance(v, datetime) else v for k, v in item.items()}


# How long an import's in-flight mark lasts unless the next chunk renews it (see
# RedisFilterStore.importing): past it, workers reload the filter of an importer that died.
IMPORT_MARK_S = 60.0
_MARK_MARGIN_S = 5.0  # a renewal this near the mark's end counts as after it (clocks differ)


@dataclass
class _Mark:
    """An import's in-flight marks: the filter's token, the projection's, and when the
    filter's was last said (monotonic seconds)."""

    token: str | None = None
    projected: str | None = None
    said_at: float = 0.0


def _lines(joined: str) -> list[str]:
    return joined.split("\n")


class Lines(list[str]):
    """Strings that cross to a writer process as one (joined, split there): 100,000 codes
    cost ~2 ms to pickle and ~7 to unpickle, where the list cost ~9 and ~6 (the identities
    as many again). A list whose strings hold a newline crosses as a list."""

    def __reduce__(self) -> tuple[Any, ...]:
        joined = "\n".join(self)
        if self and joined.count("\n") == len(self) - 1:
            return (_lines, (joined,))
        return (list, (list(self),))


def _untold() -> Unavailable:
    """What a writer raises when the cache could not be told of its codes: they are not
    saved, since the workers' filters would call them never issued."""
    return Unavailable(
        "the cache could not be told of the codes, so they were not saved", code="cache_unavailable"
    )


class OneGroup(NamedTuple):
    """A whole chunk's rows to write (`AdminService._whole_chunk`), as their columns: one
    label group and issue day, and each code's identity (or none). A writer process lays
    out the rows itself: the chunk crosses to it as its codes and identities, two lists of
    strings, not as 100,000 tuples pickled and unpickled (and the keys are computed there,
    beside the other writer, not in the importer's one process)."""

    group_id: int
    issued_on: date | None
    identities: list[str] | None

    def rows(self, codes: list[str]) -> list[tuple[int, int, date | None, str | None]]:
        identities = self.identities
        # A whole chunk's codes are all of one width: an 18-digit code's key is its number.
        keys = map(int, codes) if codes and len(codes[0]) == 18 else map(organic_key, codes)
        return list(
            zip(
                keys,
                itertools.repeat(self.group_id),
                itertools.repeat(self.issued_on),
                identities if identities is not None else itertools.repeat(None),
                strict=False,
            )
        )


class ProjectionUnwritten(Exception):
    """Records were saved but could not be written to the code projection: the writer's
    mark must lapse (the projection goes off until rebuilt). Plain arguments (a message,
    and the keys an import chunk's guard skipped): it crosses from a writer process to the
    importer pickled, and the importer still counts the chunk as landed."""

    @property
    def skipped(self) -> list[int]:
        return list(self.args[1]) if len(self.args) > 1 else []


def _unprojected(exc: BaseException | None) -> bool:
    """Whether `exc`, what caused it or what it was raised while handling is a
    ProjectionUnwritten: both links are followed (a second failure raised while the first
    was handled carries its own cause, and the first only as its context)."""
    todo, seen = [exc], 0
    while todo and seen < 32:
        e = todo.pop()
        if e is None:
            continue
        seen += 1
        if isinstance(e, ProjectionUnwritten):
            return True
        todo += [e.__cause__, e.__context__]
    return False


class ImportStopped(DomainError):
    """An import that stopped part way, or ended without telling the caches.

    It says exactly what landed: `result.accepted` rows are saved (each verifies, see
    `write_chunk`), `result.rejected` lists the bad rows met so far, `rows_read` rows of the
    input were read. An import is idempotent: sending the whole input again completes it.
    """

    def __init__(self, result: BulkResult, rows_read: int, cause: Exception) -> None:
        self.result = result
        self.rows_read = rows_read
        self.cause = cause
        cause_detail = cause.detail if isinstance(cause, DomainError) else type(cause).__name__
        if isinstance(cause, DomainError) and cause.status < 500 and not isinstance(cause, Unavailable):
            status = cause.status
        else:
            status = 503
        super().__init__(
            f"{result.accepted:,} rows saved, of {rows_read:,} read ({len(result.rejected):,} "
            f"rejected), then: {cause_detail}. Every saved code verifies; send the whole input "
            "again to complete the import (it is idempotent).",
            code="import_incomplete",
        )
        self.status = status
        self.retry_after_s = 5

    def extra(self) -> dict[str, Any]:
        """The problem document's fields beyond RFC 9457's: what landed."""
        return {"rows_read": self.rows_read, **self.result.as_dict()}


def hash_token(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


class AdminService:
    def __init__(
        self,
        registry: AdminRegistry,
        resolver: RecordCache,
        generations: Generations,
        filters: FilterStore | None,
        bootstrap_token: str | None,
        region_name: Callable[[str], str | None] | None = None,
        projection: CodeProjection | None = None,
    ) -> None:
        # Every issued code in the key store (cache.projection): written after each save,
        # inside a mark begun before it (see `_begin_import`). The writers' own client.
        self.projection = projection
        # Sales regions are checked against the place names scans get (None: not checked).
        self.region_name = region_name
        # `generations` and `filters` are the writers' own (an import's Redis client waits
        # seconds and raises; the verify path's waits 50 ms and fails open).
        self.registry = registry
        self.resolver = resolver
        self.generations = generations
        self.filters = filters
        self._bootstrap_hash = hash_token(bootstrap_token) if bootstrap_token else None

    # -- auth -------------------------------------------------------------------------------

    def authenticate(self, raw: str | None) -> Scope | None:
        if not raw:
            return None
        digest = hash_token(raw)
        if self._bootstrap_hash is not None and secrets.compare_digest(digest, self._bootstrap_hash):
            return Scope("all", None, None, "bootstrap")
        found = self.registry.find_token(digest)
        if found is None:
            return None
        scope, last_used = found
        self._touch(scope, last_used)
        return scope

    def _touch(self, scope: Scope, last_used: datetime | None) -> None:
        """Record the token's use at most once a minute: not a database write per request."""
        now = datetime.now(UTC)
        if scope.token_id is None or (last_used is not None and now - last_used < TOKEN_TOUCH_EVERY):
            return
        try:
            self.registry.touch_token(scope.token_id, now, now - TOKEN_TOUCH_EVERY)
        except Exception:  # bookkeeping only: a failed write never refuses the caller
            log.warning("could not record the use of token %s", scope.token_id, exc_info=True)

    def create_token(
        self, name: str, scope_kind: str, target: str | None, *, expires_at: datetime | None = None
    ) -> str:
        if scope_kind not in ("all", "body", "organization"):
            raise BadInput("scope must be all, body or organization", code="invalid_scope")
        if scope_kind != "all" and not target:
            raise BadInput(f"a {scope_kind} token needs a target", code="target_required")
        scope_id = None if scope_kind == "all" else self.registry.scope_target_id(scope_kind, target or "")
        raw = "ovk_" + secrets.token_urlsafe(32)
        self.registry.create_token(hash_token(raw), name, scope_kind, scope_id, expires_at)
        return raw

    def list_tokens(self, scope: Scope) -> dict[str, Any]:
        """The tokens of the caller's own body or organization (every token for the all
        scope), without secrets: only hashes are stored."""
        return {"items": [_token_json(i) for i in self.registry.list_tokens(access.visible_to(scope))]}

    def revoke_token(self, token_id: int, scope: Scope) -> dict[str, Any]:
        return _token_json(self.registry.revoke_token(token_id, access.visible_to(scope)))

    # -- change propagation ----------------------------------------------------------------

    def _announce_codes(self, codes: Sequence[str | int]) -> None:
        """Add codes to the filter of issued codes BEFORE they are saved: the filter may
        hold codes that are not saved (harmless: the database says no), never the other
        way round (a saved code answered "never issued"). Raises when it cannot: the caller
        must not save them then."""
        if self.filters is None or not codes:
            return
        try:
            self.filters.add(list(codes))
        except Exception as exc:
            raise Unavailable(
                "the cache cannot be reached, so these codes were not saved; retry the call",
                code="cache_unavailable",
            ) from exc

    def _project_saved(self, codes: list[str]) -> None:
        """Write codes' records into the projection as the registry holds them now (their
        saving transaction has committed): a code the registry lacks leaves it. Used where
        the caller does not hold the saved rows (batches, losses, generated codes). A
        failure here leaves the caller's mark to lapse (see `_begin_import`)."""
        if self.projection is None or not codes:
            return
        try:
            found, missing = self.registry.records_of(codes)
            self.projection.write(found)
            if missing:
                self.projection.remove(missing)
        except Exception as exc:
            raise ProjectionUnwritten(f"{len(codes)} saved codes not projected: {exc}") from exc

    def _changed(self, *names: str, codes: Sequence[str] = ()) -> None:
        failure: Exception | None = None
        try:
            # The saved records into the projection first: a failure of what follows must
            # not leave a mark ended over codes it lacks.
            self._project_saved(list(codes))
        except Exception as exc:
            failure = exc
        try:
            if codes:
                # Announced before the write by callers that can (imports, batches); again here
                # for any that did not (idempotent bits).
                self._announce_codes(list(codes))
        except Exception as exc:
            failure = failure or exc
        try:
            # Whatever failed above, the generations move (every worker drops what it holds;
            # written codes move "codes", which retires their cached records and absences).
            self.generations.bump(*names, *(("codes",) if codes and "codes" not in names else ()))
        except Exception as exc:
            failure = failure or exc
        self.resolver.refresh(force=True)
        if failure is not None:
            # The write is in the database; only the propagation failed. Retrying the
            # (idempotent) call propagates it.
            log.error("change saved but not propagated", exc_info=failure)
            raise Unavailable(
                "the change is saved but could not be propagated to the caches; retry the call",
                code="cache_unavailable",
            ) from failure

    # -- bodies and certificates -----------------------------------------------------------

    def upsert_bodies(self, rows: Sequence[Any], scope: Scope) -> BulkResult:
        if not access.may_manage_bodies(scope):
            raise Forbidden("only a regulator token may register certification bodies")
        result = BulkResult()
        good = _validated(rows, BodyIn, "code", result)
        result.merge(self.registry.upsert_bodies([(i, m.model_dump()) for i, m in good]))
        self._changed("status")
        return result

    def upsert_certificates(self, rows: Sequence[Any], scope: Scope) -> BulkResult:
        result = BulkResult()
        good = self._known_regions(_validated(rows, CertificateIn, "number", result), result)
        payload = [(i, {**m.model_dump(), "products": [p.model_dump() for p in m.products]}) for i, m in good]
        result.merge(
            self.registry.upsert_certificates(
                payload, functools.partial(access.may_certify, scope), changed_by=scope.actor
            )
        )
        self._changed("status")
        return result

    def _known_regions(self, good: list[tuple[int, Any]], result: BulkResult) -> list[tuple[int, Any]]:
        """Sales regions in the names scans are placed under; a row naming no known place is
        rejected (a misspelt region would make every scan off-market)."""
        if self.region_name is None:
            return good
        kept = []
        for i, cert in good:
            unknown = []
            for product in cert.products:
                if product.sales_regions:
                    names = [self.region_name(r) for r in product.sales_regions]
                    unknown += [r for r, n in zip(product.sales_regions, names, strict=True) if n is None]
                    product.sales_regions = sorted({n for n in names if n})
            if unknown:
                result.reject(i, cert.number, "unknown_region", f"no province or city named {unknown}")
            else:
                kept.append((i, cert))
        return kept

    def change_certificate_status(self, number: str, body: Any, scope: Scope) -> dict[str, Any]:
        try:
            change = StatusChangeIn.model_validate(body)
        except ValidationError as exc:
            raise BadInput(_errors(exc), code="invalid_body") from exc
        number = parse_certificate_number(number).text
        state = self.registry.change_certificate_status(
            number,
            CertificateStatus(change.status),
            change.reason,
            # Unsaid, a change takes effect on China's today (the server's clock is UTC).
            change.effective_on or china_today(datetime.now(UTC)),
            functools.partial(access.may_certify, scope),
            changed_by=scope.actor,
        )
        self._changed("status")
        return {
            "number": state.number,
            "status": state.status.value,
            "status_since": state.status_since.isoformat() if state.status_since else None,
            "history": [
                {
                    **h,
                    "effective_on": h["effective_on"].isoformat() if h["effective_on"] else None,
                    "changed_at": iso_utc(h["changed_at"]),  # stored naive UTC: say so
                }
                for h in self.registry.certificate_history(number)
            ],
        }

    # -- codes ------------------------------------------------------------------------------

    def import_codes(
        self,
        rows: Iterable[Any],
        scope: Scope,
        *,
        chunk: int = 5000,
        progress: Callable[[int, int], None] | None = None,
        bulk_file: bool = False,
        executor: Executor | None = None,
        writer: Callable[..., None] | None = None,
    ) -> BulkResult:
        """Upsert organic codes; each bad row is reported, the good ones land.

        Rows stream in chunks (bounded memory for millions of rows). With `bulk_file` on
        MySQL each chunk goes through LOAD DATA LOCAL INFILE. One chunk is written while
        the next is validated (at most one in flight): by a thread, or by the `executor` and
        `writer` given (the CLI passes a process, which the GIL does not slow down).
        """
        result = BulkResult()
        certs = self.registry.certificate_refs()
        products = self.registry.product_ids()
        groups: dict[tuple[Any, ...], int] = {}
        orders: dict[str, tuple[int, int]] = {}
        # A body token's writes are guarded against taking over another body's codes; LOAD
        # DATA ... REPLACE cannot be guarded, so it is for the all scope (the CLI) only, and
        # so is a `writer` (the CLI's writer process always loads files).
        if writer is not None and not access.may_load_files(scope):
            raise ValueError("a writer loads files with REPLACE: the all scope only")
        guard = access.code_guard(scope)
        use_file = bulk_file and self.registry.bulk_file_supported and access.may_load_files(scope)
        numbering = self.registry.body_numbering()
        prefixes: dict[str, tuple[str, str | None]] = {}  # certificate -> its body's prefixes
        # Label groups are checked per row but made (with their order) only for rows that
        # pass every check: a refused row never takes an order number someone else needs.
        checked: dict[tuple[Any, ...], tuple[str, str] | None] = {}
        own = executor is None
        pool = executor or ThreadPoolExecutor(max_workers=1, thread_name_prefix="import")
        write = writer or functools.partial(self.write_chunk, use_file=use_file, body_id=guard)
        in_flight = max(1, getattr(pool, "_max_workers", 1))
        # Writes in flight, with their row counts and, for a guarded write, where each code
        # came from (the guard may skip a code another body took since the chunk's check).
        pending: list[tuple[Future[Any], int, dict[int, tuple[int, str]] | None]] = []
        landed = offset = 0
        failure: Exception | None = None
        unprojected = False  # some saved chunk's records did not reach the projection
        unwritten: list[ProjectionUnwritten] = []  # chunks that landed but were not projected
        # A landed chunk the projection did not hear of is still counted (see `_written`).
        written = functools.partial(self._written, unwritten=unwritten)

        def make_group(gkey: tuple[Any, ...]) -> int:
            # A whole chunk's one group, not made yet: checked as the per-row loop checks it,
            # and made (0: refused, or its order taken meanwhile; the per-row loop then says
            # why for every row).
            if gkey not in checked:
                checked[gkey] = self._group_refusal(gkey, certs, products, orders, scope)
            if checked[gkey] is not None:
                return 0
            return self._make_group(gkey, groups, certs, products, orders)

        mark = _Mark()
        try:
            mark = self._begin_import()
            # A CSV read by the CLI comes in blocks that give their columns (no dict per row).
            blocks = rows.blocks(chunk) if isinstance(rows, CsvTable) else chunked(rows, chunk)
            for block in blocks:
                self._still_importing(mark)
                sub = BulkResult()
                columns = _checked_columns(block)
                whole = None
                if columns is not None and guard is None:
                    whole = self._whole_chunk(columns, offset, groups, prefixes, certs, numbering, make_group)
                good: Iterable[tuple[int, Any]]
                out: list[tuple[int, int, date | None, str | None]]
                one: OneGroup | None = None  # a whole chunk's rows, as its columns
                if whole is not None:
                    good, out, (one, codes, where) = (), [], whole
                elif columns is not None:
                    good, out, codes, where = enumerate(columns.apply(_rows(block))), [], [], []
                else:
                    good, out, codes, where = _validated(_rows(block), CodeIn, "code", sub), [], [], []
                for err in sub.rejected:
                    result.reject(offset + err.row, err.key, err.code, err.detail)
                ungrouped: dict[int, tuple[Any, ...]] = {}  # row of `out` -> its group to make
                for local_i, m in good:
                    code = m["code"]
                    # One dict lookup per row in the common case: the row's label group.
                    gkey = _group_key(m)
                    group_id = groups.get(gkey, 0)
                    if not group_id:
                        if gkey not in checked:
                            checked[gkey] = self._group_refusal(gkey, certs, products, orders, scope)
                        refusal = checked[gkey]
                        if refusal is not None:
                            result.reject(offset + local_i, code, *refusal)
                            continue
                    prefix = prefixes.get(gkey[0])
                    if prefix is None:
                        prefix = prefixes[gkey[0]] = numbering.get(certs[gkey[0]][1], ("", None))
                    # A code carries its body's number (4 digits; a 17-digit legacy code the
                    # 3-digit legacy one): a certificate of one body never takes another's.
                    current, legacy = prefix
                    if (code[:4] != current) if len(code) == 18 else (code[:3] != legacy):
                        result.reject(
                            offset + local_i,
                            code,
                            "code_body_mismatch",
                            f"the code's body prefix is not that of certificate {gkey[0]}'s body",
                        )
                        continue
                    if not group_id:
                        ungrouped[len(out)] = gkey
                    out.append((organic_key(code), group_id, m.get("issued_on"), m.get("identity_code")))
                    codes.append(code)
                    where.append(offset + local_i)
                if guard is not None and out:
                    kept = self._own_codes(scope, out, codes, where, result)
                    if len(kept) < len(out):
                        ungrouped = {new: ungrouped[old] for new, old in enumerate(kept) if old in ungrouped}
                        out, codes, where = ([rows[i] for i in kept] for rows in (out, codes, where))  # type: ignore[assignment]
                if ungrouped:
                    out, codes, where = self._make_groups(
                        out, codes, where, ungrouped, groups, certs, products, orders, result
                    )
                while len(pending) >= in_flight:
                    landed += written(*pending.pop(0), result)  # bounded memory
                    if unwritten:
                        raise unwritten[0]  # the chunk landed; the projection could not hear of it
                # Where each code came from, for a guarded write only (built per row: not for
                # the CLI's million-row files, which are never guarded).
                rows_of = (
                    dict(zip((row[0] for row in out), zip(where, codes, strict=True), strict=True))
                    if guard
                    else None
                )
                pending.append((pool.submit(write, one or out, codes), len(codes), rows_of))
                offset += len(block)
                if progress is not None:
                    progress(offset, landed + sum(p[1] for p in pending))
        except Exception as exc:
            failure = exc
            unprojected = _unprojected(exc)
        finally:
            # Every exit path: the writes in flight end and are counted, and the caches are
            # told (the generations move) whatever failed, so what landed verifies.
            for future, n, sources in pending:
                try:
                    landed += written(future, n, sources, result)
                except Exception as exc:
                    failure = failure or exc
            if unwritten:
                failure, unprojected = failure or unwritten[0], True
            if own:
                pool.shutdown()
            untold = self._end_import(mark, projected=not unprojected)
        result.accepted = landed
        if failure is not None:
            if landed == 0 and isinstance(failure, DomainError) and untold is None:
                raise failure  # nothing was saved: the error as it is
            raise ImportStopped(result, offset, failure)
        if untold is not None:
            raise ImportStopped(result, offset, untold)
        return result

    @staticmethod
    def _whole_chunk(
        columns: _Columns,
        offset: int,
        groups: dict[tuple[Any, ...], int],
        prefixes: dict[str, tuple[str, str | None]],
        certs: dict[str, tuple[int, int, int]],
        numbering: Mapping[int, tuple[str, str | None]],
        make_group: Callable[[tuple[Any, ...]], int],
    ) -> tuple[OneGroup, list[str], list[int]] | None:
        """The rows to write of a chunk every row of which lands, or None: what the per-row
        loop of `import_codes` makes of it, made column-wise. That is, one label group for
        the whole chunk (every group column a single value), and every code of one length
        carrying its body's prefix; anything else goes row by row. A group not made yet is
        made (`make_group`) only once every row is known to land, as the per-row loop makes
        a group only for rows that passed every check; a chunk whose group is refused goes
        row by row, which says why for each row."""
        distinct = columns.distinct
        if any(len(values) != 1 for values in distinct.values()):
            return None
        one = {name: values[0] for name, values in distinct.items()}
        gkey = _group_key(one)
        group_id = groups.get(gkey, 0)
        if not group_id and gkey[0] not in certs:
            return None  # an unknown certificate: the per-row loop's refusal
        prefix = prefixes.get(gkey[0])
        if prefix is None:
            prefix = prefixes[gkey[0]] = numbering.get(certs[gkey[0]][1], ("", None))
        codes: list[str] = columns.per_row["code"]
        lengths = set(map(len, codes))
        want = prefix[0] if lengths == {18} else prefix[1] if lengths == {17} else None
        if not want or len(want) != (4 if lengths == {18} else 3):
            return None
        # Every code's first characters at once: the codes are all one width, so the i-th
        # character of each is every width-th character of them joined.
        joined, width = "".join(codes), len(codes[0])
        if any(joined[i::width] != want[i] * len(codes) for i in range(len(want))):
            return None
        if not group_id:
            group_id = make_group(gkey)
            if not group_id:
                return None
        identities = columns.per_row.get("identity_code")
        out = OneGroup(group_id, one.get("issued_on"), None if identities is None else Lines(identities))
        return out, Lines(codes), list(range(offset, offset + len(codes)))

    def _group_refusal(
        self,
        gkey: tuple[Any, ...],
        certs: dict[str, tuple[int, int, int]],
        products: dict[tuple[int, str], int],
        orders: dict[str, tuple[int, int]],
        scope: Scope,
    ) -> tuple[str, str] | None:
        """Why rows of (certificate, product, order, package, label) are refused, or None;
        nothing is created here (see `_make_groups`)."""
        cert_no, product, order, _package, _label_spec = gkey
        ref = certs.get(cert_no)
        if ref is None:
            return "unknown_certificate", f"no certificate {cert_no}"
        cert_id, body_id, _org = ref
        if not access.may_certify(scope, Owner(body_id, _org)):
            return "forbidden", "the certificate belongs to another body"
        if (cert_id, product) not in products:
            return "unknown_product", f"certificate {cert_no} lists no product {product!r}"
        if order and order not in orders:
            found = self.registry.find_order(order)
            if found is not None:
                orders[order] = found
        if order and order in orders and orders[order][1] != cert_id:
            return "order_certificate_mismatch", f"order {order} belongs to another certificate"
        return None

    def _make_groups(
        self,
        out: list[tuple[int, int, date | None, str | None]],
        codes: list[str],
        where: list[int],
        ungrouped: dict[int, tuple[Any, ...]],
        groups: dict[tuple[Any, ...], int],
        certs: dict[str, tuple[int, int, int]],
        products: dict[tuple[int, str], int],
        orders: dict[str, tuple[int, int]],
        result: BulkResult,
    ) -> tuple[list[tuple[int, int, date | None, str | None]], list[str], list[int]]:
        """Make the label groups (and orders) of rows that passed every check, now that they
        did. An order made meanwhile on another certificate (by another import, or by an
        earlier row of this one naming the same new number) refuses the row."""
        kept: list[int] = []
        for i, row in enumerate(out):
            gkey = ungrouped.get(i)
            if gkey is not None and gkey not in groups:
                self._make_group(gkey, groups, certs, products, orders)
            if gkey is not None:
                if gkey not in groups:
                    result.reject(
                        where[i],
                        codes[i],
                        "order_certificate_mismatch",
                        f"order {gkey[2]} belongs to another certificate",
                    )
                    continue
                out[i] = (row[0], groups[gkey], row[2], row[3])
            kept.append(i)
        if len(kept) == len(out):
            return out, codes, where
        return [out[i] for i in kept], [codes[i] for i in kept], [where[i] for i in kept]

    def _make_group(
        self,
        gkey: tuple[Any, ...],
        groups: dict[tuple[Any, ...], int],
        certs: dict[str, tuple[int, int, int]],
        products: dict[tuple[int, str], int],
        orders: dict[str, tuple[int, int]],
    ) -> int:
        """Make one checked label group (and its order, on first sight, in one transaction);
        its id, or 0 when its order is another certificate's (made meanwhile)."""
        cert_no, product, order, package, label_spec = gkey
        cert_id = certs[cert_no][0]
        if not order or order not in orders or orders[order][1] == cert_id:
            group_id, order_ref = self.registry.label_group_for(
                cert_id, products[(cert_id, product)], package, label_spec, order
            )
            if order_ref is not None:
                orders[order] = order_ref
            if group_id is not None:
                groups[gkey] = group_id
        return groups.get(gkey, 0)

    def _written(
        self,
        future: Future[Any],
        n: int,
        sources: dict[int, tuple[int, str]] | None,
        result: BulkResult,
        unwritten: list[ProjectionUnwritten],
    ) -> int:
        """How many rows of a finished write landed; the guard's skips are `forbidden` rows
        (a code another body took between the chunk's owner check and its write). A chunk
        saved but not projected counts as landed and is added to `unwritten`."""
        try:
            skipped = future.result() or ()  # a failed write surfaces here
        except ProjectionUnwritten as exc:
            unwritten.append(exc)
            skipped = exc.skipped
        for key in skipped:
            if sources is not None and key in sources:
                row, code = sources[key]
                result.reject(row, code, "forbidden", "the code belongs to another body's certificate")
        return n - len(skipped)

    def _own_codes(
        self,
        scope: Scope,
        out: list[tuple[int, int, date | None, str | None]],
        codes: list[str],
        where: list[int],
        result: BulkResult,
    ) -> list[int]:
        """The rows of the chunk to keep: those whose code is new or already this body's (one
        query per chunk); a body token never takes over another body's code."""
        owners = self.registry.code_owners([row[0] for row in out])
        foreign = {key for key, owner in owners.items() if not access.may_certify(scope, owner)}
        kept = []
        for i, (row, code, at) in enumerate(zip(out, codes, where, strict=True)):
            if row[0] in foreign:
                result.reject(at, code, "forbidden", "the code belongs to another body's certificate")
            else:
                kept.append(i)
        return kept

    def write_chunk(
        self,
        out: list[tuple[int, int, date | None, str | None]] | OneGroup,
        codes: list[str],
        use_file: bool,
        body_id: int | None = None,
    ) -> list[int]:
        """Write one validated chunk and tell the caches (filter, projection) about its codes;
        the keys a guarded write (`body_id`) skipped as another body's.

        The filter hears of the codes before they are saved (see `_announce_codes`): when
        Redis fails first, nothing of the chunk is saved; when it fails after, the chunk is
        saved and will verify. Cached records and absences are the generations' business
        (see `_propagate_codes`).
        """
        if isinstance(out, OneGroup):
            out = out.rows(codes)
        if not out:
            return []
        self._propagate_codes(codes, [row[0] for row in out])
        skipped = self.registry.save_codes(out, body_id=body_id, bulk_file=use_file)
        if self.projection is not None:
            # The rows as saved: a skipped row (another body's code) keeps its record. A
            # failure raises: the import stops and its mark lapses (see `_begin_import`).
            gone = set(skipped)
            try:
                self.projection.write_keys([row for row in out if row[0] not in gone] if gone else out)
            except Exception as exc:
                raise ProjectionUnwritten(f"{len(out)} saved codes not projected: {exc}", skipped) from None
        return skipped

    def _propagate_codes(self, codes: list[str], keys: list[int] | None = None) -> None:
        """Before a chunk is saved: its codes into the filter. Their cached records and
        absences need no dropping: the import moved the codes generation at its start (see
        `_begin_import`), and what workers cache while it runs lives a second."""
        try:
            self._announce_codes(keys if keys is not None else codes)
        except Exception as exc:
            raise _untold() from exc

    # -- codes written by other use cases (issuance: generated and printer codes) -----------

    @contextlib.contextmanager
    def code_writes(self) -> Iterator[_Mark]:
        """An import's frame for codes other use cases write (services.issuing): the
        in-flight mark before the first is saved, and the generations moved after the last,
        whatever failed in between (so what landed verifies). The frame's mark is what it
        yields: a caller that writes for longer than the mark lives renews it between its
        chunks (`still_writing`), as an import does."""
        mark = self._begin_import()
        projected = True
        try:
            yield mark
        except BaseException as exc:
            projected = not _unprojected(exc)
            raise
        finally:
            untold = self._end_import(mark, projected=projected)
        if untold is not None:
            raise Unavailable(
                "the codes are saved but the caches were not told; retry the call", code="cache_unavailable"
            ) from untold

    def still_writing(self, mark: _Mark) -> None:
        """Between a frame's chunks (see `code_writes`): its marks renewed, so workers go on
        asking the shared bits, not their copy of the filter, about codes it announced
        (raises when the cache cannot be told: then nothing more may be saved)."""
        try:
            self._still_importing(mark)
        except Exception as exc:
            raise _untold() from exc

    def before_saving(self, codes: list[str], keys: list[int]) -> None:
        """Codes about to be saved: into the filter, the frame's projection mark renewed
        (raises when the cache cannot be told: then they must not be saved)."""
        self._propagate_codes(codes, keys)
        if self.projection is not None:
            try:
                self.projection.renew()
            except Exception as exc:
                raise _untold() from exc

    def after_saving(
        self, codes: list[str], rows: Sequence[tuple[int, int, date | None, str | None]] | None = None
    ) -> None:
        """Codes just saved: into the projection as saved (raises when it cannot: the
        frame's mark then lapses). A caller
        that holds the saved organic rows (key, group, issued on, identity) passes them: they
        are projected as they are, not read back from the database (issuance's generated
        codes: reading back cost more than saving them)."""
        if rows is None:
            self._project_saved(codes)
        elif self.projection is not None and rows:
            try:
                self.projection.write_keys(rows)
            except Exception as exc:
                raise ProjectionUnwritten(f"{len(rows)} saved codes not projected: {exc}") from exc

    def changed(self, *names: str, codes: Sequence[str] = ()) -> None:
        """A change another use case saved: tell every worker (see `_changed`)."""
        self._changed(*names, codes=codes)

    # -- imports in flight ------------------------------------------------------------------

    @contextlib.contextmanager
    def _projecting(self) -> Iterator[None]:
        """The projection's mark alone around a save and its `_changed` (which projects
        the saved codes): it ends unless their records could not be written."""
        if self.projection is None:
            yield
            return
        try:
            token = self.projection.begin(IMPORT_MARK_S)
        except Exception as exc:
            raise Unavailable(
                "the cache cannot be reached, so nothing was saved; retry the call", code="cache_unavailable"
            ) from exc
        try:
            yield
        except BaseException as exc:
            if _unprojected(exc):
                self.projection.abandon(token)
                raise
            self._end_mark(token)
            raise
        self._end_mark(token)

    def _end_mark(self, token: str) -> None:
        assert self.projection is not None
        try:
            self.projection.end(token)
        except Exception:  # it lapses: the projection is off until rebuilt (safe)
            self.projection.abandon(token)
            log.warning("the code projection's mark could not be ended", exc_info=True)

    def projecting(self) -> contextlib.AbstractContextManager[None]:
        """`_projecting` for other use cases (services.issuing: printing losses)."""
        return self._projecting()

    def _begin_import(self) -> _Mark:
        """Say an import is in flight before its first row is saved (see RecordResolver):
        the filter's mark, and the projection's (until it ends, a miss is asked of the
        database; if it lapses, the projection is off until `flask rebuild-projection`)."""
        token = projected = None
        said_at = time.monotonic()  # before the mark is said (see `_still_importing`)
        try:
            if self.filters is not None:
                token = secrets.token_hex(8)
                self.filters.importing(token, IMPORT_MARK_S)
            # Every code's cached record and absence from before the import retired: from
            # here until the import ends, workers keep what they read for a second. After
            # the filter's mark (a worker that sees the new generation sees the import in
            # flight), before the projection's: the projection's mark is the last step, so
            # no failure leaves it begun and renewed by this process with nobody to end it.
            self.generations.bump("codes")
            if self.projection is not None:
                projected = self.projection.begin(IMPORT_MARK_S)
        except Exception as exc:
            raise Unavailable(
                "the cache cannot be reached, so no code was saved; retry the import",
                code="cache_unavailable",
            ) from exc
        return _Mark(token, projected, said_at)

    def _still_importing(self, mark: _Mark) -> None:
        token, projected = mark.token, mark.projected
        if token is not None and self.filters is not None:
            # Taken before the mark is said (its deadline is counted from then), and judged
            # with a margin: workers read the deadline by their own clocks.
            now, said_at = time.monotonic(), mark.said_at
            self.filters.importing(token, IMPORT_MARK_S)
            mark.said_at = now
            if now - said_at >= IMPORT_MARK_S - _MARK_MARGIN_S:
                # The import stalled past its mark: meanwhile workers took it for ended and
                # kept what they read for a minute or a day, and codes it saves from here
                # would be answered by those entries. Retired, as at the import's start.
                self.generations.bump("codes")
        if projected is not None and self.projection is not None:
            self.projection.renew(IMPORT_MARK_S)

    def _end_import(self, mark: _Mark, *, projected: bool = True) -> Exception | None:
        """Move the codes and status generations (every worker reloads the filter and drops
        its copies) and end the in-flight marks; the error, if that failed. Then workers still
        answer every saved code right: from the database while they cannot read the
        generations, from the shared bits while the mark lasts, and they reload the filter
        when either ends. The projection's mark ends only when every saved record was
        written (`projected`); otherwise it lapses and the projection is off until rebuilt."""
        token, proj_token = mark.token, mark.projected
        if proj_token is not None and self.projection is not None and not projected:
            self.projection.abandon(proj_token)
        try:
            self.generations.bump("codes", "status")
            if token is not None and self.filters is not None:
                self.filters.imported(token)
            if proj_token is not None and self.projection is not None and projected:
                self.projection.end(proj_token)
        except Exception as exc:
            if proj_token is not None and self.projection is not None:
                self.projection.abandon(proj_token)  # its mark lapses unless it ended
            log.error("import ended but the caches were not told", exc_info=exc)
            return exc
        finally:
            self.resolver.refresh(force=True)
        return None

    def void_order(self, number: str, reason: str | None, scope: Scope) -> dict[str, Any]:
        owner = self.registry.order_owner(number)
        if owner is None or not access.may_certify(scope, owner):
            raise NotFound(f"no order {number}", code="order_not_found")
        state = self.registry.void_order(number, reason, scope.actor)
        self._changed("status")
        return {
            "number": state.number,
            "status": "voided",
            "voided_at": state.voided_at.isoformat() if state.voided_at else None,
        }

    # -- BQ batches -------------------------------------------------------------------------

    def upsert_batch(self, body: Any, scope: Scope) -> dict[str, Any]:
        try:
            batch = BatchIn.model_validate(body)
        except ValidationError as exc:
            raise BadInput(_errors(exc), code="invalid_body") from exc
        # The company creates its batches; the regulator may write any (DOMAIN.md). A BQ
        # batch has no certification body, so a body token writes none.
        if not access.may_write_batches(scope):
            raise Forbidden("BQ batches are written by their organization or the regulator")
        org_id = None
        if scope.kind == "organization":
            org_id = scope.id  # an organization's batch is its own, whatever the body says
        elif batch.organization:
            org_id = self.registry.scope_target_id("organization", batch.organization)

        def check(owner: Owner, activated: bool) -> None:
            # Asked on the batch's row locked for the write: no other write moves it between.
            if not access.may_change_batch(scope, owner):
                raise NotFound(f"no batch {batch.number}", code="batch_not_found")
            if activated and not access.may_change_activated_batch(scope):
                raise Conflict(
                    f"batch {batch.number} is activated; only the regulator may change it",
                    code="batch_activated",
                )

        codes: list[tuple[int, str, str]] = []
        for i, pair in enumerate(batch.codes):
            codes.append((i, pair.a_code, "a"))
            codes.append((i, pair.b_code, "b"))

        def cap(balance: GrainBalance, net_g: int, marks: int) -> None:
            # Total-quantity control (seed 002): a company's marks, this batch's included,
            # stay within its raw grain × milling yield. Asked with the company's row locked.
            if marks and net_g <= 0:
                raise BadInput(
                    f"batch {batch.number}: net_content_kg is required to check the raw-grain cap",
                    code="net_content_required",
                )
            if balance.over_g:
                # A batch of no marks (net content unknown) adds nothing; it is refused only
                # because the company is already over its cap.
                over_marks = -(-balance.over_g // net_g) if net_g > 0 else 0
                raise Conflict(
                    over_cap_detail(balance, batch.number, net_g, marks),
                    code="over_grain_cap",
                    members={
                        "raw_grain_kg": kg(balance.raw_grain_g),
                        "milling_yield": str(balance.milling_yield),
                        "capacity_kg": kg(balance.capacity_g),
                        "marked_kg": kg(balance.marked_rice_g),
                        "over_kg": kg(balance.over_g),
                        "over_marks": over_marks,
                        "batch_marks": marks,
                        "marks_allowed": max(0, marks - over_marks),
                    },
                )

        self._announce_codes([c for _, c, _ in codes])  # before they are saved
        with self._projecting():
            _batch_id, result = self.registry.upsert_batch(
                batch.model_dump(exclude={"codes", "purchases"}),
                codes,
                org_id,
                check,
                cap=cap,
                purchases=batch.purchases,
            )
            self._changed("codes", "status", codes=[c for _, c, _ in codes])
        return {"number": batch.number, **result.as_dict()}

    def activate_batch(self, number: str, scope: Scope) -> dict[str, Any]:
        if not access.may_activate_batches(scope):
            # Activation follows the inspection; the regulator does it (DOMAIN.md), never the producer.
            raise Forbidden("BQ batches are activated by the regulator")
        owner = self.registry.batch_owner(number)
        if owner is None or not access.may_read(scope, owner):
            raise NotFound(f"no batch {number}", code="batch_not_found")

        def check(report: Mapping[str, Any] | None, balance: GrainBalance | None) -> None:
            # Seed 002: activated only after the inspection passed (检验合格) and the raw
            # grain was checked against the marks (核对系统原粮数量).
            if report is None:
                raise Conflict(
                    f"batch {number} has no inspection report; upload it first",
                    code="inspection_required",
                )
            if report["result"] != "pass":
                raise Conflict(
                    f"batch {number}'s inspection report {report['report_number']} did not pass",
                    code="inspection_failed",
                )
            if balance is not None and balance.over_g:
                raise Conflict(
                    f"batch {number}: the company's marks go on {kg(balance.marked_rice_g)} kg of milled "
                    f"rice, its raw-grain ledger allows {kg(balance.capacity_g)} kg "
                    f"({kg(balance.raw_grain_g)} kg × {balance.milling_yield}): "
                    f"over by {kg(balance.over_g)} kg",
                    code="grain_balance_failed",
                    members={
                        "capacity_kg": kg(balance.capacity_g),
                        "marked_kg": kg(balance.marked_rice_g),
                        "over_kg": kg(balance.over_g),
                    },
                )

        state = self.registry.activate_batch(number, check)
        self._changed("status")
        return {
            "number": state.number,
            "activated_at": state.activated_at.isoformat() if state.activated_at else None,
        }


def chunked(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    chunk: list[Any] = []
    for item in items:
        chunk.append(item)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
