"""Admin use cases for certification bodies, brands and regulators: bodies, certificates,
codes, orders, BQ batches, tokens. Every change ends by telling the caches (generations),
so it shows in every verify answer within a second.
"""

from __future__ import annotations

import csv
import hashlib
import io
import logging
import os
import secrets
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import date
from decimal import Decimal
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError, field_validator, model_validator

from domain.bulk import BulkResult, Scope
from domain.certificates import (
    CertificateStatus,
    body_codes_from_approval,
    check_body_codes,
    parse_certificate_number,
)
from domain.codes import CodeKind, organic_key, parse_stored_code
from domain.errors import BadInput, DomainError, Forbidden, NotFound, Unavailable
from domain.ports import FilterStore, Generations
from services.records import RecordResolver

if TYPE_CHECKING:
    from registry.store import SqlRegistry

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


class CodeIn(_Row):
    code: str
    identity_code: Annotated[str, StringConstraints(max_length=24)] | None = None
    certificate: str
    product: Str200
    issued_on: date | None = None
    order: Annotated[str, StringConstraints(max_length=32)] | None = None
    package: Opt100 = ""
    label_spec: Opt100 = ""

    @field_validator("code", mode="before")
    @classmethod
    def _code(cls, value: Any) -> str:
        text = str(value).strip()
        if text.startswith("number-cell:"):
            raise ValueError("the code is stored as a number in the sheet, which keeps only 15 digits; "
                             "store codes as text")
        parsed = parse_stored_code(text)
        if parsed.kind is CodeKind.BQ:
            raise ValueError("BQ codes are loaded with their batch (POST /api/v1/admin/batches)")
        return parsed.code

    @field_validator("identity_code", "order", "issued_on", mode="before")
    @classmethod
    def _blank_is_none(cls, value: Any) -> Any:
        return None if value == "" else value

    @field_validator("certificate")
    @classmethod
    def _certificate(cls, value: str) -> str:
        return parse_certificate_number(value).text


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


class StatusChangeIn(_Row):
    status: Literal["valid", "suspended", "revoked", "cancelled"]
    reason: Annotated[str, StringConstraints(max_length=500)] | None = None
    effective_on: date | None = None


def _errors(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors()[:3]:
        where = ".".join(str(p) for p in err["loc"]) or "row"
        parts.append(f"{where}: {err['msg']}")
    return "; ".join(parts)


def _validated(rows: Iterable[Any], model: type[BaseModel], key: str, result: BulkResult
               ) -> list[tuple[int, Any]]:
    good: list[tuple[int, Any]] = []
    for i, row in enumerate(rows):
        if not isinstance(row, Mapping):
            result.reject(i, "", "invalid_row", "each row must be an object")
            continue
        try:
            good.append((i, model.model_validate(row)))
        except ValidationError as exc:
            result.reject(i, row.get(key, ""), "invalid_row", _errors(exc))
        except DomainError as exc:
            result.reject(i, row.get(key, ""), exc.code, exc.detail)
    return good


def hash_token(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


class AdminService:
    def __init__(self, registry: SqlRegistry, resolver: RecordResolver, generations: Generations,
                 filters: FilterStore | None, bootstrap_token: str | None) -> None:
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
        return self.registry.find_token(digest)

    def create_token(self, name: str, scope_kind: str, target: str | None) -> str:
        if scope_kind not in ("all", "body", "organization"):
            raise BadInput("scope must be all, body or organization", code="invalid_scope")
        scope_id = None if scope_kind == "all" else self.registry.scope_target_id(scope_kind, target or "")
        raw = "ovk_" + secrets.token_urlsafe(32)
        self.registry.create_token(hash_token(raw), name, scope_kind, scope_id)
        return raw

    # -- change propagation ----------------------------------------------------------------

    def _changed(self, *names: str, codes: Sequence[str] = ()) -> None:
        try:
            if codes:
                if self.filters is not None:
                    self.filters.add(list(codes))
                self.resolver.forget_codes(list(codes))
            self.generations.bump(*names)
        except Exception as exc:
            # The write is in the database; only the propagation failed. Retrying the
            # (idempotent) call propagates it.
            log.exception("change saved but not propagated")
            raise Unavailable("the change is saved but could not be propagated to the caches; retry the call",
                              code="cache_unavailable") from exc
        self.resolver.refresh(force=True)

    # -- bodies and certificates -----------------------------------------------------------

    def upsert_bodies(self, rows: Sequence[Any], scope: Scope) -> BulkResult:
        if not scope.is_all:
            raise Forbidden("only a regulator token may register certification bodies")
        result = BulkResult()
        good = _validated(rows, BodyIn, "code", result)
        result.merge(self.registry.upsert_bodies([(i, m.model_dump()) for i, m in good]))
        self._changed("status")
        return result

    def upsert_certificates(self, rows: Sequence[Any], scope: Scope) -> BulkResult:
        result = BulkResult()
        good = _validated(rows, CertificateIn, "number", result)
        payload = [(i, {**m.model_dump(), "products": [p.model_dump() for p in m.products]}) for i, m in good]
        result.merge(self.registry.upsert_certificates(payload, scope))
        self._changed("status")
        return result

    def change_certificate_status(self, number: str, body: Any, scope: Scope) -> dict[str, Any]:
        try:
            change = StatusChangeIn.model_validate(body)
        except ValidationError as exc:
            raise BadInput(_errors(exc), code="invalid_body") from exc
        number = parse_certificate_number(number).text
        state = self.registry.change_certificate_status(
            number, CertificateStatus(change.status), change.reason, change.effective_on, scope)
        self._changed("status")
        return {"number": state.number, "status": state.status.value,
                "status_since": state.status_since.isoformat() if state.status_since else None,
                "history": [{**h, "effective_on": h["effective_on"].isoformat() if h["effective_on"] else None,
                             "changed_at": h["changed_at"].isoformat()}
                            for h in self.registry.certificate_history(number)]}

    # -- codes ------------------------------------------------------------------------------

    def import_codes(self, rows: Iterable[Any], scope: Scope, *, chunk: int = 5000,
                     progress: Callable[[int, int], None] | None = None, bulk_file: bool = False
                     ) -> BulkResult:
        """Upsert organic codes; each bad row is reported, the good ones land.

        Rows stream in chunks (bounded memory for millions of rows). With `bulk_file` on
        MySQL each chunk goes through LOAD DATA LOCAL INFILE instead of executemany.
        """
        result = BulkResult()
        certs = self.registry.certificate_refs()
        products = self.registry.product_ids()
        groups: dict[tuple[Any, ...], int] = {}
        orders: dict[str, tuple[int, int]] = {}
        use_file = bulk_file and self.registry.dialect in ("mysql", "mariadb")
        seen = 0
        for block in chunked(enumerate(rows), chunk):
            good = _validated((r for _, r in block), CodeIn, "code", sub := BulkResult())
            for err in sub.rejected:
                result.reject(block[err.row][0], err.key, err.code, err.detail)
            out: list[dict[str, Any]] = []
            codes: list[str] = []
            with self.registry.engine.begin() as conn:
                for local_i, m in good:
                    i = block[local_i][0]
                    ref = certs.get(m.certificate)
                    if ref is None:
                        result.reject(i, m.code, "unknown_certificate", f"no certificate {m.certificate}")
                        continue
                    cert_id, body_id, _org = ref
                    if not scope.may_write_body(body_id):
                        result.reject(i, m.code, "forbidden", "the certificate belongs to another body")
                        continue
                    product_id = products.get((cert_id, m.product))
                    if product_id is None:
                        result.reject(i, m.code, "unknown_product",
                                      f"certificate {m.certificate} lists no product {m.product!r}")
                        continue
                    order_id = 0
                    if m.order:
                        if m.order not in orders:
                            orders[m.order] = self.registry.ensure_order(conn, m.order, cert_id)
                        order_id, order_cert = orders[m.order]
                        if order_cert != cert_id:
                            result.reject(i, m.code, "order_certificate_mismatch",
                                          f"order {m.order} belongs to another certificate")
                            continue
                    gkey = (cert_id, product_id, order_id, m.package, m.label_spec)
                    if gkey not in groups:
                        groups[gkey] = self.registry.ensure_group(conn, *gkey)
                    out.append({"code": organic_key(m.code), "group_id": groups[gkey], "issued_on": m.issued_on,
                                "identity_code": m.identity_code})
                    codes.append(m.code)
                if use_file:
                    self._load_file(conn, out)
                else:
                    self.registry.write_codes(conn, out)
            result.accepted += len(out)
            seen += len(block)
            if codes:
                self._propagate_codes(codes)
            if progress is not None:
                progress(seen, result.accepted)
        self._changed("codes", "status")
        return result

    def _propagate_codes(self, codes: list[str]) -> None:
        try:
            if self.filters is not None:
                self.filters.add(codes)
            self.resolver.forget_codes(codes)
        except Exception as exc:
            raise Unavailable("codes saved but the cache could not be told; retry the import",
                              code="cache_unavailable") from exc

    def _load_file(self, conn: Any, rows: list[dict[str, Any]]) -> None:
        rows.sort(key=lambda r: r["code"])  # InnoDB loads sorted keys ~1.6x faster (NOTES.md)
        fd, path = tempfile.mkstemp(suffix=".tsv")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                for r in rows:
                    issued = r["issued_on"].isoformat() if r["issued_on"] else ""
                    identity = (r["identity_code"] or "").replace("\t", " ")
                    fh.write(f"{r['code']}\t{r['group_id']}\t{issued}\t{identity}\n")
            self.registry.load_codes_file(conn, path)
        finally:
            os.unlink(path)

    def void_order(self, number: str, reason: str | None, scope: Scope) -> dict[str, Any]:
        state = self.registry.void_order(number, reason, scope)
        self._changed("status")
        return {"number": state.number, "status": "voided",
                "voided_at": state.voided_at.isoformat() if state.voided_at else None}

    # -- BQ batches -------------------------------------------------------------------------

    def upsert_batch(self, body: Any, scope: Scope) -> dict[str, Any]:
        try:
            batch = BatchIn.model_validate(body)
        except ValidationError as exc:
            raise BadInput(_errors(exc), code="invalid_body") from exc
        org_id = None
        if scope.kind == "organization":
            org_id = scope.id
        elif batch.organization:
            org_id = self.registry.scope_target_id("organization", batch.organization)
        existing = self.registry.batch_ref(batch.number)
        if existing is not None and not scope.is_all and scope.kind == "organization" and existing[1] != scope.id:
            raise NotFound(f"no batch {batch.number}", code="batch_not_found")
        codes: list[tuple[int, str, str]] = []
        for i, pair in enumerate(batch.codes):
            codes.append((i, pair.a_code, "a"))
            codes.append((i, pair.b_code, "b"))
        _batch_id, result = self.registry.upsert_batch(batch.model_dump(exclude={"codes"}), codes, org_id)
        self._changed("codes", "status", codes=[c for _, c, _ in codes])
        return {"number": batch.number, **result.as_dict()}

    def activate_batch(self, number: str, scope: Scope) -> dict[str, Any]:
        ref = self.registry.batch_ref(number)
        if ref is None or (scope.kind == "organization" and ref[1] != scope.id):
            raise NotFound(f"no batch {number}", code="batch_not_found")
        state = self.registry.activate_batch(number)
        self._changed("status")
        return {"number": state.number, "activated_at": state.activated_at.isoformat() if state.activated_at else None}


# -- file formats ------------------------------------------------------------------------

def rows_from_csv(stream: io.TextIOBase | Iterator[str]) -> Iterator[dict[str, Any]]:
    reader = csv.DictReader(stream)
    if reader.fieldnames is None or "code" not in [f.strip() for f in reader.fieldnames]:
        raise BadInput("the CSV needs a header row with at least a 'code' column", code="invalid_file")
    for row in reader:
        yield {k.strip(): (v.strip() if isinstance(v, str) else v) for k, v in row.items() if k is not None}


def rows_from_xlsx(data: bytes) -> Iterator[dict[str, Any]]:
    from openpyxl import load_workbook

    try:
        book = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises many types for a non-workbook
        raise BadInput("not a readable XLSX workbook", code="invalid_file") from exc
    sheet = book.worksheets[0]
    rows = sheet.iter_rows(values_only=True)
    header = next(rows, None)
    if header is None or "code" not in [str(h).strip() for h in header if h is not None]:
        raise BadInput("the sheet needs a header row with at least a 'code' column", code="invalid_file")
    names = [str(h).strip() if h is not None else "" for h in header]
    for values in rows:
        if values is None or all(v is None for v in values):
            continue
        row: dict[str, Any] = {}
        for name, value in zip(names, values, strict=False):
            if not name or value is None:
                continue
            if hasattr(value, "date") and callable(value.date):
                value = value.date()
            elif isinstance(value, float) and value.is_integer():
                value = int(value)
            row[name] = value if isinstance(value, (date, int)) else str(value).strip()
        if isinstance(row.get("code"), int):
            # Excel keeps 15 significant digits and drops leading zeros: a code stored as a
            # number is already damaged, so say so instead of guessing its digits.
            row["code"] = f"number-cell:{row['code']}"
        yield row


def chunked(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    chunk: list[Any] = []
    for item in items:
        chunk.append(item)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


class Progress:
    """Prints rows/s to stderr at most twice a second (for long CLI imports)."""

    def __init__(self, out: Any, total: int | None = None) -> None:
        self.out = out
        self.total = total
        self.start = time.monotonic()
        self.last = 0.0

    def __call__(self, seen: int, accepted: int) -> None:
        now = time.monotonic()
        if now - self.last < 0.5:
            return
        self.last = now
        rate = seen / max(now - self.start, 1e-9)
        total = f"/{self.total:,}" if self.total else ""
        self.out.write(f"\r{seen:,}{total} rows read, {accepted:,} accepted, {rate:,.0f} rows/s")
        self.out.flush()
