"""Label issuance for certification bodies and the organizations they certify (issue 17):
product specs (商品规格), label orders under quantity control, allocation of identity-code
segments with generated or printer-supplied organic codes, printing losses, and what is
exported (the order sheet, the printer's code file, the CNCA filing record).

Who may do what is domain.access's: the organization holding the certificate writes specs
and orders and submits them (`may_order`); the certifying body reviews, allocates, records
losses and files (`may_certify`); both read them (`may_read`); what a scope may not read is
not found. Codes are saved through the admin service's import frame (filter first, cached
absences dropped, generations moved), so a new code verifies within a second.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Annotated, Any, Literal, Protocol

import numpy as np
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    model_validator,
)

from domain import access
from domain.access import Owner
from domain.accounts import Actor
from domain.bulk import BulkResult, RowProblem, Scope
from domain.certificates import CERTIFICATE_PATTERN, parse_certificate_number
from domain.china_time import china_today, iso_utc
from domain.codes import organic_code_from_key, organic_key
from domain.errors import BadInput, Conflict, Forbidden, NotFound, PayloadTooLarge, UnsupportedMedia
from domain.issuing import (
    ALLOCATABLE,
    EDITABLE,
    REVIEWABLE,
    OrderStatus,
    grams,
    identity_text,
    label_number,
    organic_code,
    parse_identity,
    require,
    tonnes,
)
from domain.media import LABEL_PHOTO_TYPES, SCAN_TYPES, sniff
from domain.ports import IssuingRegistry
from services.audit import AuditService, token_actor

# Photos of the smallest sales package with its label (seed 000, 2.3: JPG, GIF, BMP, PNG)
# and an order's attachments (the certificate scan, the signed mark-use agreement).
PHOTO_MAX_BYTES = 5 * 1024 * 1024
PHOTOS_PER_SPEC = 6
ATTACHMENT_MAX_BYTES = 10 * 1024 * 1024
ATTACHMENTS_PER_ORDER = 10
MAX_LINES = 200
MAX_QUANTITY = 5_000_000  # labels of one line
GENERATE_CHUNK = 20_000
ANNOUNCE_CODES = 100_000  # codes drawn and told to the filter at once (a multiple of the chunk)


class _Skipped(Exception):
    """A chunk queued behind a load that failed: not loaded."""


class _In(BaseModel):
    # No whitespace stripping in validation: the OpenAPI document's patterns say exactly
    # what is accepted (a text field needs a non-space character), and values are stripped
    # when stored.
    model_config = ConfigDict(extra="forbid")


def _decimal(places: int, whole: int, *, positive: bool) -> Any:
    """A JSON number, or a decimal as text (`12.5`), rounded to `places` decimals: money and
    weights are never floats once read."""
    text = re.compile(rf"^[0-9]{{1,{whole}}}(\.[0-9]{{1,{places}}})?$")
    most = Decimal(10**whole) - Decimal(1).scaleb(-places)

    def convert(value: Any) -> Decimal:
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise ValueError("a number, or a decimal as text like 12.5")
        if isinstance(value, str) and not text.match(value):
            raise ValueError(f"a decimal with at most {whole} digits and {places} decimals, like 12.5")
        number = Decimal(str(value))
        if not number.is_finite() or number < 0 or number > most:
            raise ValueError(f"must be at least 0 and at most {most}")
        number = number.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)
        if number > most or (positive and number == 0):
            raise ValueError(f"must be {'above' if positive else 'at least'} 0 and at most {most}")
        return number

    return Annotated[Decimal, BeforeValidator(convert)]


Text = Annotated[str, StringConstraints(min_length=1, pattern=r"\S")]
Text200 = Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=r"\S")]
Text100 = Annotated[str, StringConstraints(min_length=1, max_length=100, pattern=r"\S")]


def _whole(value: Any) -> int:
    """A JSON integer: 7 or 7.0 (JSON Schema's integers), never "7" or true."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError("a whole number")
    if isinstance(value, float) and not value.is_integer():
        raise ValueError("a whole number")
    return int(value)


Count = Annotated[int, BeforeValidator(_whole), Field(ge=1, le=MAX_QUANTITY)]
RowId = Annotated[int, BeforeValidator(_whole), Field(ge=1, le=2**31 - 1)]
CertificateNumber = Annotated[str, StringConstraints(pattern=CERTIFICATE_PATTERN)]


class SpecIn(_In):
    certificate: CertificateNumber
    product: Text200
    trade_name: Text200
    package_spec: Text100
    weight_kg: _decimal(3, 5, positive=True)  # type: ignore[valid-type]
    label_spec: Text100


class LineIn(_In):
    spec_id: RowId
    label_spec: Text100 | None = None  # the spec's when not given
    quantity: Count
    unit_price: _decimal(4, 5, positive=False)  # type: ignore[valid-type]


class OrderFieldsIn(_In):
    applicant_code: Annotated[str, StringConstraints(max_length=40)] | None = None
    address: Annotated[str, StringConstraints(min_length=1, max_length=300, pattern=r"\S")]
    postcode: Annotated[str, StringConstraints(pattern=r"^[0-9]{4,10}$")] | None = None
    contact: Text100
    phone: Annotated[str, StringConstraints(pattern=r"^[0-9+\-() ]{3,40}$")]
    application: Literal["affix", "print"] = "affix"
    lines: list[LineIn] = Field(min_length=1, max_length=MAX_LINES)


class OrderIn(OrderFieldsIn):
    certificate: CertificateNumber


class ReviewIn(_In):
    decision: Literal["approve", "reject"]
    reason: Annotated[str, StringConstraints(max_length=1000)] | None = None

    @model_validator(mode="after")
    def _reason(self) -> ReviewIn:
        if self.decision == "reject" and not (self.reason or "").strip():
            raise ValueError("a rejection needs a reason (the organization reads it in the history)")
        return self


class AllocateIn(_In):
    codes: Literal["generated", "printer"] = "generated"


class LossesIn(_In):
    identity_codes: list[Annotated[str, StringConstraints(pattern=r"^[0-9]{9}$")]] = Field(
        min_length=1, max_length=100_000
    )


Identity = Annotated[str, StringConstraints(pattern=r"^[0-9]{9}$")]
Text60 = Annotated[str, StringConstraints(min_length=1, max_length=60, pattern=r"\S")]


class UseIn(_In):
    """Labels of one order line taken into use (领用): automatically, a `quantity` (the lowest
    identities in stock), or manually, an identity range."""

    line: Annotated[int, BeforeValidator(_whole), Field(ge=1, le=MAX_LINES)]
    quantity: Count | None = None
    first_identity: Identity | None = None
    last_identity: Identity | None = None
    batch: Text60
    person: Text60
    used_on: Annotated[str, StringConstraints(pattern=r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")] | None = None

    @model_validator(mode="after")
    def _span(self) -> UseIn:
        manual = self.first_identity is not None or self.last_identity is not None
        if (self.quantity is None) == (not manual):
            raise ValueError("give either quantity, or first_identity and last_identity")
        if manual and (
            self.first_identity is None
            or self.last_identity is None
            or self.first_identity > self.last_identity
        ):
            raise ValueError("first_identity and last_identity make a range, first <= last")
        return self


def _model(model: type[_In], body: Any) -> Any:
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        parts = []
        for err in exc.errors(include_url=False)[:3]:
            where = ".".join(str(p) for p in err["loc"]) or "body"
            parts.append(f"{where}: {err['msg']}")
        raise BadInput("; ".join(parts), code="invalid_body") from exc


def _iso(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return iso_utc(value)
    return str(value.isoformat())


def _money(value: Decimal) -> str:
    return str(value.quantize(Decimal("0.01")))


def _kg(value: Any) -> str:
    return str(Decimal(str(value)).quantize(Decimal("0.001")))


# The organic rows (key, group, issued on, identity) a chunk saved.
_Saved = list[tuple[int, int, date | None, str | None]]


def _unique(pending: dict[str, int], draw: Callable[[int], list[int]]) -> dict[str, int]:
    """identity -> key with every key drawn once in the chunk (a draw twice is drawn again)."""
    while len(set(pending.values())) < len(pending):
        seen: set[int] = set()
        for ident, key in list(pending.items()):
            if key in seen:
                pending[ident] = draw(1)[0]
            seen.add(pending[ident])
    return pending


_LIMIT = np.uint64((2**64 // 10**12) * 10**12)  # the largest multiple of 10^12 in 64 bits


def _random12(n: int) -> list[int]:
    """n uniform draws of 12 random digits from the OS's CSPRNG (rejection sampling: no bias).
    The words are filtered and reduced in numpy: a Python loop over a million words cost
    ~1.3 s of the generation's one core, a million codes' draw now ~0.05 s."""
    out = np.empty(0, dtype=np.uint64)
    while len(out) < n:
        words = np.frombuffer(secrets.token_bytes(8 * (n - len(out))), dtype="<u8")
        out = np.concatenate((out, words[words < _LIMIT] % np.uint64(10**12)))
    drawn: list[int] = out.tolist()
    return drawn


class CodeWriter(Protocol):
    """What issuance needs of the admin service's code path (services.admin.AdminService)."""

    def code_writes(self) -> Any: ...
    def still_writing(self, mark: Any) -> None: ...
    def before_saving(self, codes: list[str], keys: list[int]) -> None: ...
    def after_saving(
        self, codes: list[str], rows: Sequence[tuple[int, int, date | None, str | None]] | None = None
    ) -> None: ...
    def write_chunk(
        self,
        out: list[tuple[int, int, date | None, str | None]],
        codes: list[str],
        use_file: bool,
        body_id: int | None = None,
    ) -> list[int]: ...
    def changed(self, *names: str, codes: Sequence[str] = ()) -> None: ...
    def void_order(self, number: str, reason: str | None, scope: Scope) -> dict[str, Any]: ...
    def projecting(self) -> Any: ...


class IssuingService:
    def __init__(
        self,
        registry: IssuingRegistry,
        codes: CodeWriter,
        body_numbering: Callable[[], dict[int, tuple[str, str | None]]],
        certificate_status: Callable[[str], Any],
        audit: AuditService | None = None,
    ) -> None:
        self.registry = registry
        self.codes = codes
        self.body_numbering = body_numbering
        self.certificate_status = certificate_status
        self.audit = audit

    def _audit(
        self,
        scope: Scope,
        actor: Actor | None,
        action: str,
        target: str,
        before: dict[str, Any] | None,
        after: dict[str, Any] | None,
        owner: Owner | None,
    ) -> None:
        """Every issuance change in the audit log, as the dashboard account's or the admin
        token's (the order's history keeps the steps; the log says who did what, for the
        scopes that read it)."""
        if self.audit is not None:
            self.audit.record(
                actor or token_actor(scope),
                action,
                target,
                before,
                after,
                owner=(owner.body_id, owner.organization_id) if owner is not None else (None, None),
            )

    @staticmethod
    def _noting(check: Callable[[Owner, str], None], seen: dict[str, Any]) -> Callable[[Owner, str], None]:
        """`check`, keeping the locked order's owner and status it was asked about (what the
        audit log's entry says the order was before)."""

        def noted(owner: Owner, status: str) -> None:
            check(owner, status)
            seen.update(owner=owner, status=status)

        return noted

    # -- checks --------------------------------------------------------------------------------

    @staticmethod
    def _check(
        scope: Scope,
        number: str,
        rule: Callable[[Scope, Owner], bool],
        statuses: frozenset[OrderStatus] | None,
        action: str,
    ) -> Callable[[Owner, str], None]:
        def check(owner: Owner, status: str) -> None:
            if not access.may_read(scope, owner):
                raise NotFound(f"no order {number}", code="order_not_found")
            if not rule(scope, owner):
                raise Forbidden(f"this token may not {action} order {number}")
            if statuses is not None:
                require(status, statuses, action, number)

        return check

    def _readable_order(self, number: str, scope: Scope) -> dict[str, Any]:
        order = self.registry.order(number)
        if (
            order is None
            or order["status"] == OrderStatus.LOSSES
            or not access.may_read(scope, order["owner"])
        ):
            raise NotFound(f"no order {number}", code="order_not_found")
        return order

    # -- certificate quantities -------------------------------------------------------------------

    def quantities(self, number: str, scope: Scope) -> dict[str, Any]:
        number = parse_certificate_number(number).text
        products = self.registry.certificate_products(number)
        if products is None or (products and not access.may_read(scope, products[0]["owner"])):
            raise NotFound(f"no certificate {number}", code="certificate_not_found")
        if not products:
            ref = self.registry.certificate_ref(number)
            if ref is None or not access.may_read(scope, ref[1]):
                raise NotFound(f"no certificate {number}", code="certificate_not_found")
        items = []
        for p in products:
            certified = p["certified_g"]
            items.append(
                {
                    "product": p["name"],
                    "description": p["description"],
                    "certified_tonnes": None if certified is None else str(tonnes(certified)),
                    "used_tonnes": str(tonnes(p["used_g"])),
                    "available_tonnes": None if certified is None else str(tonnes(certified - p["used_g"])),
                }
            )
        return {"certificate": number, "products": items}

    def certificates(self, scope: Scope) -> list[dict[str, Any]]:
        """The certificates of the scope (held or certified), each with its products'
        certified, used and available tonnes: the quantities page, and what a spec or an
        order may name."""
        out = []
        for cert in self.registry.scope_certificate_products(access.visible_to(scope)):
            products = []
            for p in cert["products"]:
                certified = p["certified_g"]
                products.append(
                    {
                        "product": p["name"],
                        "description": p["description"],
                        "certified_tonnes": None if certified is None else str(tonnes(certified)),
                        "used_tonnes": str(tonnes(p["used_g"])),
                        "available_tonnes": None
                        if certified is None
                        else str(tonnes(certified - p["used_g"])),
                    }
                )
            out.append(
                {
                    "certificate": cert["number"],
                    "holder": cert["holder"],
                    "kind": cert["kind"],
                    "status": cert["status"],
                    "valid_until": cert["valid_until"].isoformat(),
                    "may_order": access.may_order(scope, cert["owner"]),
                    "products": products,
                }
            )
        return out

    # -- product specs -----------------------------------------------------------------------------

    def upsert_specs(self, rows: Sequence[Any], scope: Scope, actor: Actor | None = None) -> dict[str, Any]:
        result = BulkResult()
        good: list[tuple[int, SpecIn]] = []
        for i, row in enumerate(rows):
            if isinstance(row, RowProblem):
                result.reject(i, row.key, row.code, row.detail)
                continue
            try:
                good.append((i, SpecIn.model_validate(row)))
            except ValidationError as exc:
                err = exc.errors(include_url=False)[0]
                field = ".".join(str(p) for p in err["loc"]) or "row"
                key = row.get("trade_name", "") if isinstance(row, Mapping) else ""
                result.reject(i, key, "invalid_row", f"{field}: {err['msg']}")
        refs = self.registry.product_refs([(m.certificate, m.product.strip()) for _, m in good])
        save: list[dict[str, Any]] = []
        where: list[int] = []
        for i, m in good:
            ref = refs.get((m.certificate, m.product.strip()))
            if ref is None or not access.may_read(scope, ref[1]):
                result.reject(
                    i,
                    m.trade_name,
                    "unknown_product",
                    f"certificate {m.certificate} lists no product {m.product!r}",
                )
                continue
            if not access.may_order(scope, ref[1]) or ref[1].organization_id is None:
                result.reject(
                    i, m.trade_name, "forbidden", "product specs are written by the certificate's holder"
                )
                continue
            save.append(
                {
                    "organization_id": ref[1].organization_id,
                    "product_id": ref[0],
                    "trade_name": m.trade_name.strip(),
                    "package_spec": m.package_spec.strip(),
                    "weight_kg": m.weight_kg,
                    "label_spec": m.label_spec.strip(),
                }
            )
            where.append(i)
        ids = self.registry.save_specs(save) if save else []
        result.accepted = len(ids)
        for row, spec_id in zip(save, ids, strict=True):
            after = {k: str(v) for k, v in row.items() if k not in ("organization_id", "product_id")}
            self._audit(
                scope, actor, "spec.save", f"spec:{spec_id}", None, after, Owner(None, row["organization_id"])
            )
        result.rejected.sort(key=lambda e: e.row)
        return {
            **result.as_dict(),
            "items": [{"row": i, "id": spec_id} for i, spec_id in zip(where, ids, strict=True)],
        }

    def _spec_json(self, spec: Mapping[str, Any], photos: Sequence[int]) -> dict[str, Any]:
        out = {k: v for k, v in spec.items() if k not in ("owner", "product_id", "certificate_id")}
        out["photos"] = [f"/api/v1/admin/product-specs/{spec['id']}/photos/{p}" for p in photos]
        return out

    def list_specs(self, scope: Scope) -> dict[str, Any]:
        specs = self.registry.list_specs(access.visible_to(scope))
        photos = self.registry.photo_ids([s["id"] for s in specs]) if specs else {}
        return {"items": [self._spec_json(s, photos.get(s["id"], [])) for s in specs]}

    def _spec(self, spec_id: int, scope: Scope) -> dict[str, Any]:
        spec = self.registry.specs([spec_id]).get(spec_id)
        if spec is None or not access.may_read(scope, spec["owner"]):
            raise NotFound(f"no product spec {spec_id}", code="spec_not_found")
        return spec

    def add_spec_photo(
        self, spec_id: int, data: bytes, scope: Scope, actor: Actor | None = None
    ) -> dict[str, Any]:
        spec = self._spec(spec_id, scope)
        if not access.may_order(scope, spec["owner"]):
            raise Forbidden("photos of a product spec are added by the certificate's holder")
        if len(data) > PHOTO_MAX_BYTES:
            raise PayloadTooLarge(
                f"a photo is at most {PHOTO_MAX_BYTES // 2**20} MiB", code="photo_too_large"
            )
        kind = sniff(data)
        if kind not in LABEL_PHOTO_TYPES:
            raise UnsupportedMedia("a photo must be a JPG, GIF, BMP or PNG image", code="unsupported_photo")
        photo_id = self.registry.add_photo(
            spec_id, kind, hashlib.sha256(data).hexdigest(), data, PHOTOS_PER_SPEC
        )
        after = {"photo": photo_id, "content_type": kind, "bytes": len(data)}
        self._audit(scope, actor, "spec.photo", f"spec:{spec_id}", None, after, spec["owner"])
        return {
            "id": photo_id,
            "content_type": kind,
            "url": f"/api/v1/admin/product-specs/{spec_id}/photos/{photo_id}",
        }

    def spec_photo(self, spec_id: int, photo_id: int, scope: Scope) -> tuple[str, bytes]:
        self._spec(spec_id, scope)
        found = self.registry.photo(spec_id, photo_id)
        if found is None:
            raise NotFound(f"no photo {photo_id} of product spec {spec_id}", code="photo_not_found")
        return found

    # -- orders ------------------------------------------------------------------------------------

    def _lines(self, lines: Sequence[LineIn], certificate_id: int, scope: Scope) -> list[dict[str, Any]]:
        specs = self.registry.specs(sorted({line.spec_id for line in lines}))
        out = []
        for n, line in enumerate(lines, start=1):
            spec = specs.get(line.spec_id)
            if spec is None or not access.may_read(scope, spec["owner"]):
                raise NotFound(f"lines.{n - 1}: no product spec {line.spec_id}", code="spec_not_found")
            if spec["certificate_id"] != certificate_id:
                raise Conflict(
                    f"lines.{n - 1}: product spec {line.spec_id} is of certificate {spec['certificate']}; "
                    "an order covers one certificate",
                    code="spec_certificate_mismatch",
                )
            out.append(
                {
                    "spec_id": line.spec_id,
                    "product_id": spec["product_id"],
                    "label_spec": (line.label_spec or spec["label_spec"]).strip(),
                    "quantity": line.quantity,
                    "unit_price": line.unit_price,
                    "weight_g": grams(Decimal(spec["weight_kg"])),
                }
            )
        return out

    @staticmethod
    def _fields(m: OrderFieldsIn) -> dict[str, Any]:
        return {
            "applicant_code": (m.applicant_code or "").strip() or None,
            "address": m.address.strip(),
            "postcode": m.postcode,
            "contact": m.contact.strip(),
            "phone": m.phone.strip(),
            "application": m.application,
        }

    def create_order(self, body: Any, scope: Scope, actor: Actor | None = None) -> dict[str, Any]:
        m = _model(OrderIn, body)
        ref = self.registry.certificate_ref(m.certificate)
        if ref is None or not access.may_read(scope, ref[1]):
            raise NotFound(f"no certificate {m.certificate}", code="certificate_not_found")
        if not access.may_order(scope, ref[1]) or ref[1].organization_id is None:
            raise Forbidden("label orders are placed by the certificate's holder")
        lines = self._lines(m.lines, ref[0], scope)
        number = self.registry.create_order(
            china_today(datetime.now(UTC)),
            ref[0],
            ref[1].organization_id,
            self._fields(m),
            lines,
            scope.actor,
        )
        after = {"status": "new", "lines": [[x["spec_id"], x["quantity"]] for x in lines]}
        self._audit(scope, actor, "order.create", f"order:{number}", None, after, ref[1])
        return self.order(number, scope)

    def update_order(
        self, number: str, body: Any, scope: Scope, actor: Actor | None = None
    ) -> dict[str, Any]:
        m = _model(OrderFieldsIn, body)
        order = self._readable_order(number, scope)
        lines = self._lines(m.lines, order["certificate_id"], scope)
        check = self._check(scope, number, access.may_order, EDITABLE, "edited")
        self.registry.update_order(number, self._fields(m), lines, check, scope.actor)
        before = {"status": order["status"], "lines": [[x["spec_id"], x["quantity"]] for x in order["lines"]]}
        after = {"lines": [[x["spec_id"], x["quantity"]] for x in lines]}
        self._audit(scope, actor, "order.edit", f"order:{number}", before, after, order["owner"])
        return self.order(number, scope)

    def _usable(self, cert: Any) -> str | None:
        """Why the order's certificate cannot carry marks now, or None."""
        if cert.kind != "organic":
            return f"certificate {cert.number} is a conversion certificate: no organic mark may be used"
        if cert.status != "valid":
            return f"certificate {cert.number} is {cert.status}"
        if cert.valid_until < china_today(datetime.now(UTC)):
            return f"certificate {cert.number} expired on {cert.valid_until.isoformat()}"
        return None

    def submit(self, number: str, scope: Scope, actor: Actor | None = None) -> dict[str, Any]:
        seen: dict[str, Any] = {}
        check = self._noting(self._check(scope, number, access.may_order, EDITABLE, "submitted"), seen)
        status, shortfalls, reason = self.registry.submit(number, check, self._usable, scope.actor)
        after = {"status": status, "reason": reason, "shortfalls": [s.as_dict() for s in shortfalls]}
        before = {"status": seen["status"]}
        self._audit(scope, actor, "order.submit", f"order:{number}", before, after, seen["owner"])
        return {
            **self.order(number, scope),
            "shortfalls": [s.as_dict() for s in shortfalls],
            "reason": reason,
        }

    def review(self, number: str, body: Any, scope: Scope, actor: Actor | None = None) -> dict[str, Any]:
        m = _model(ReviewIn, body)
        seen: dict[str, Any] = {}
        check = self._noting(self._check(scope, number, access.may_certify, REVIEWABLE, "reviewed"), seen)
        reason = (m.reason or "").strip() or None
        status = self.registry.review(number, m.decision == "approve", reason, check, scope.actor)
        after = {"status": status, "reason": reason}
        self._audit(
            scope, actor, "order.review", f"order:{number}", {"status": seen["status"]}, after, seen["owner"]
        )
        return self.order(number, scope)

    def order(self, number: str, scope: Scope) -> dict[str, Any]:
        o = self._readable_order(number, scope)
        lines = []
        total = Decimal(0)
        for line in o["lines"]:
            price = Decimal(str(line["unit_price"]))
            line_total = price * line["quantity"]
            total += line_total
            lines.append(
                {
                    "label_number": label_number(number, line["n"]),
                    "spec_id": line["spec_id"],
                    "product": line["product"],
                    "description": line["description"],
                    "trade_name": line["trade_name"],
                    "package_spec": line["package_spec"],
                    "weight_kg": str(Decimal(str(line["weight_kg"])).quantize(Decimal("0.001"))),
                    "label_spec": line["label_spec"],
                    "quantity": line["quantity"],
                    "ordered_kg": str(
                        (Decimal(line["weight_g"] * line["quantity"]) / 1000).quantize(Decimal("0.001"))
                    ),
                    "unit_price": str(price.quantize(Decimal("0.0001"))),
                    "total_price": _money(line_total),
                    "identity_start": identity_text(line["identity_start"])
                    if line["identity_start"]
                    else None,
                    "identity_end": identity_text(line["identity_end"]) if line["identity_end"] else None,
                    "codes_from": line["codes_from"],
                }
            )
        return {
            "number": number,
            "status": o["status"],
            "certificate": o["certificate"],
            "organization": o["organization"],
            "applicant_code": o["applicant_code"],
            "address": o["address"],
            "postcode": o["postcode"],
            "contact": o["contact"],
            "phone": o["phone"],
            "application": o["application"],
            "total_price": _money(total),
            "created_at": _iso(o["created_at"]),
            "submitted_at": _iso(o["submitted_at"]),
            "allocated_at": _iso(o["allocated_at"]),
            "voided_at": _iso(o["voided_at"]),
            "lines": lines,
            "history": [
                {
                    "status": h["status"],
                    "reason": h["reason"],
                    "details": h["details"],
                    "changed_at": _iso(h["changed_at"]),
                    "changed_by": h["changed_by"],
                }
                for h in o["history"]
            ],
            "attachments": [
                {
                    "id": a["id"],
                    "kind": a["kind"],
                    "content_type": a["content_type"],
                    "url": f"/api/v1/admin/orders/{number}/attachments/{a['id']}",
                }
                for a in o["attachments"]
            ],
        }

    def list_orders(self, scope: Scope, status: str | None) -> dict[str, Any]:
        if status is not None and status not in {s.value for s in OrderStatus if s is not OrderStatus.LOSSES}:
            raise BadInput(f"no order status {status!r}", code="invalid_status")
        rows = self.registry.list_orders(access.visible_to(scope), status)
        return {
            "items": [
                {
                    "number": r["number"],
                    "status": r["status"],
                    "certificate": r["certificate"],
                    "organization": r["organization"],
                    "total_price": _money(Decimal(str(r["total"]))),
                    "created_at": _iso(r["created_at"]),
                    "submitted_at": _iso(r["submitted_at"]),
                }
                for r in rows
            ]
        }

    def add_attachment(
        self, number: str, kind: str, data: bytes, scope: Scope, actor: Actor | None = None
    ) -> dict[str, Any]:
        if kind not in ("certificate", "agreement", "other"):
            raise BadInput("kind is certificate, agreement or other", code="invalid_kind")
        if len(data) > ATTACHMENT_MAX_BYTES:
            raise PayloadTooLarge(
                f"an attachment is at most {ATTACHMENT_MAX_BYTES // 2**20} MiB", code="attachment_too_large"
            )
        order = self._readable_order(number, scope)
        if not access.may_order(scope, order["owner"]):
            raise Forbidden(f"attachments of order {number} are added by the certificate's holder")
        media = sniff(data)
        if media not in SCAN_TYPES:
            raise UnsupportedMedia(
                "an attachment is a PDF, JPG, GIF, BMP or PNG scan", code="unsupported_attachment"
            )
        check = self._check(scope, number, access.may_order, EDITABLE, "given attachments")
        att_id = self.registry.add_attachment(
            number, kind, media, hashlib.sha256(data).hexdigest(), data, check, ATTACHMENTS_PER_ORDER
        )
        after = {"attachment": att_id, "kind": kind, "content_type": media, "bytes": len(data)}
        self._audit(scope, actor, "order.attachment", f"order:{number}", None, after, order["owner"])
        return {
            "id": att_id,
            "kind": kind,
            "content_type": media,
            "url": f"/api/v1/admin/orders/{number}/attachments/{att_id}",
        }

    def attachment(self, number: str, attachment_id: int, scope: Scope) -> tuple[str, bytes]:
        self._readable_order(number, scope)
        found = self.registry.attachment(number, attachment_id)
        if found is None:
            raise NotFound(f"no attachment {attachment_id} of order {number}", code="attachment_not_found")
        return found

    # -- allocation and codes ----------------------------------------------------------------------

    def allocate(self, number: str, body: Any, scope: Scope, actor: Actor | None = None) -> dict[str, Any]:
        """Give the order's lines their identity segments; with generated codes, generate
        them (an allocated order asked again completes a generation that stopped)."""
        m = _model(AllocateIn, body)
        order = self._readable_order(number, scope)
        if not access.may_certify(scope, order["owner"]):
            raise Forbidden(f"this token may not allocate order {number}")
        if order["status"] != OrderStatus.ALLOCATED:
            check = self._check(scope, number, access.may_certify, ALLOCATABLE, "allocated")
            self.registry.allocate(number, m.codes, check, scope.actor)
            after = {"status": OrderStatus.ALLOCATED.value, "codes": m.codes}
            before = {"status": order["status"]}
            self._audit(scope, actor, "order.allocate", f"order:{number}", before, after, order["owner"])
            # A group may predate the order's lines (codes imported under the same order
            # and product): its cached copy must learn their segments.
            self.codes.changed("status")
        lines = self.registry.order_lines(number)
        if any(line["codes_from"] == "generated" for line in lines):
            body_code = self.body_numbering().get(order["body_id"], ("", None))[0]
            self._generate(lines, body_code)
        return self.order(number, scope)

    def _generate(self, lines: Sequence[Mapping[str, Any]], body_code: str) -> None:
        """Draw, save and project the codes of the generated lines, chunk by chunk.

        Three stages overlap: while the database loads chunk k (in one worker thread, so
        chunks commit in order and a line's progress only moves forward), this thread draws
        and projects (the database and Redis wait on their own cores; a chunk's stages
        alone, one after another, were about 35 k codes/s at 1 M). Codes are drawn and told
        to the filter ANNOUNCE_CODES at a time: the filter's read-merge-write moves its
        whole bitmap, so once per 100 k codes rather than per 20 k chunk. The loader holds
        one chunk queued behind the one it loads, so it does not wait while this thread
        announces a batch."""
        # China's calendar day: the year part of the code and the day it was issued agree.
        today = china_today(datetime.now(UTC))
        todo = [
            line
            for line in lines
            if line["codes_written"] < line["quantity"] and line["codes_from"] == "generated"
        ]
        if not todo:
            return
        # A code's key is the integer its digits spell (domain.codes.organic_key): the body's
        # and the year's digits, then the 12 drawn, so a draw's key is base + draw.
        base = organic_key(organic_code(body_code, today.year, 0))

        def draw(n: int) -> list[int]:
            return [base + r for r in _random12(n)]

        # Set by a load that failed, before its error reaches this thread: a chunk queued
        # behind it must not load (its line's progress would skip the failed chunk's codes).
        # Set too when a projection fails: nothing more is saved that would not be projected.
        stopped = threading.Event()

        def project(saved: _Saved) -> None:
            # The rows saved, as saved: projected without reading them back.
            try:
                self.codes.after_saving([organic_code_from_key(k) for k, *_ in saved], saved)
            except BaseException:
                stopped.set()
                raise

        def save(line: Mapping[str, Any], progress: tuple[int, int], pending: dict[str, int]) -> _Saved:
            if stopped.is_set():
                raise _Skipped
            try:
                # A chunk commits whole with its progress or not at all (the registry rolls it
                # back when a key is taken), so nothing of it is saved until it returns.
                for _attempt in range(10):
                    rows = [(k, line["group_id"], i) for i, k in pending.items()]
                    try:
                        taken = set(self.registry.insert_new_codes(line["id"], progress, rows, today))
                    except BaseException:
                        # The commit may have landed with its reply lost: what the registry
                        # holds of these codes is projected (read back) before the failure
                        # is reported; if that read fails too, the projection goes off.
                        self.codes.after_saving([organic_code_from_key(k) for k in pending.values()])
                        raise
                    if not taken:
                        return [(k, g, today, i) for k, g, i in rows]
                    # Codes someone else holds (another label keeps its record): draw those
                    # identities again and send the whole chunk again.
                    told = set(pending.values())
                    pending = _unique({i: draw(1)[0] if k in taken else k for i, k in pending.items()}, draw)
                    keys = [k for k in pending.values() if k not in told]
                    self.codes.before_saving([organic_code_from_key(k) for k in keys], keys)
                raise Conflict("could not draw unique codes; retry", code="code_conflict")
            except BaseException:
                stopped.set()
                raise

        with (
            self.codes.code_writes() as mark,
            ThreadPoolExecutor(1, thread_name_prefix="codes-load") as loader,
        ):
            inflight: deque[Future[_Saved]] = deque()
            try:
                for line in todo:
                    written = line["codes_written"]
                    while written < line["quantity"]:
                        # A generation of millions outlasts the frame's minute-long mark.
                        self.codes.still_writing(mark)
                        n = min(ANNOUNCE_CODES, line["quantity"] - written)
                        first = line["identity_start"] + written
                        identities = [identity_text(first + k) for k in range(n)]
                        batch = list(_unique(dict(zip(identities, draw(n), strict=True)), draw).items())
                        keys = [k for _i, k in batch]
                        self.codes.before_saving([organic_code_from_key(k) for k in keys], keys)
                        for start in range(0, n, GENERATE_CHUNK):
                            pending = dict(batch[start : start + GENERATE_CHUNK])
                            progress = (written, written + len(pending))
                            inflight.append(loader.submit(save, line, progress, pending))
                            written += len(pending)
                            # Project what committed; wait only with two chunks ahead.
                            while len(inflight) > 2 or (len(inflight) > 1 and inflight[0].done()):
                                project(inflight.popleft().result())
            finally:
                # The chunks in flight are waited for and projected whatever failed meanwhile:
                # every committed chunk is projected, or the failure says it was not. The
                # first load that failed is the error (the ones queued behind it skipped).
                failed: BaseException | None = None
                while inflight:
                    try:
                        saved = inflight.popleft().result()
                    except _Skipped:
                        continue
                    except BaseException as exc:
                        failed = failed or exc
                        continue
                    project(saved)
                if failed is not None:
                    raise failed

    def import_printer_codes(
        self, number: str, rows: Iterable[Any], scope: Scope, actor: Actor | None = None
    ) -> BulkResult:
        """The printer's database for an order allocated with printer codes: identity ↔ code
        one to one, every identity inside one of the order's segments. Duplicates (an identity
        or a code twice), strays (an identity outside every segment), codes of another body's
        numbering or already on another label are rejected per row; the same file twice is
        idempotent."""
        order = self._readable_order(number, scope)
        if not access.may_certify(scope, order["owner"]):
            raise Forbidden(f"this token may not load codes of order {number}")
        require(order["status"], frozenset({OrderStatus.ALLOCATED}), "given printer codes", number)
        lines = [line for line in self.registry.order_lines(number) if line["codes_from"] == "printer"]
        if not lines:
            raise Conflict(f"order {number} was allocated with generated codes", code="order_state")
        body_code, legacy = self.body_numbering().get(order["body_id"], ("", None))
        result = BulkResult()
        seen_ids: set[str] = set()
        seen_codes: set[str] = set()
        good: list[tuple[int, str, str, int, Mapping[str, Any]]] = []
        for i, row in enumerate(rows):
            if isinstance(row, RowProblem) or not isinstance(row, Mapping):
                detail = row.detail if isinstance(row, RowProblem) else "each row is an object"
                result.reject(i, "", "invalid_row", detail)
                continue
            ident_raw, code = row.get("identity_code"), row.get("code")
            if not isinstance(ident_raw, str) or not isinstance(code, str):
                result.reject(i, "", "invalid_row", "identity_code and code are text")
                continue
            ident_raw, code = ident_raw.strip(), code.strip()
            extra = set(row) - {"identity_code", "code"}
            ident = parse_identity(ident_raw)
            if extra:
                result.reject(i, code, "invalid_row", f"unknown fields {sorted(extra)}")
            elif ident is None:
                result.reject(i, ident_raw, "invalid_identity", "identity_code: not a 9-digit identity code")
            elif len(code) not in (17, 18) or not code.isascii() or not code.isdigit():
                result.reject(i, code, "invalid_code", "code: not a 17/18-digit organic code")
            elif (code[:4] != body_code) if len(code) == 18 else (code[:3] != legacy):
                result.reject(
                    i, code, "code_body_mismatch", "the code's body prefix is not the certifying body's"
                )
            elif ident_raw in seen_ids:
                result.reject(i, ident_raw, "duplicate_identity", "this identity code is in the file twice")
            elif code in seen_codes:
                result.reject(i, code, "duplicate_code", "this code is in the file twice")
            else:
                line = next((x for x in lines if x["identity_start"] <= ident <= x["identity_end"]), None)
                if line is None:
                    result.reject(
                        i,
                        ident_raw,
                        "stray_identity",
                        f"identity {ident_raw} is in no segment of order {number}",
                    )
                    continue
                seen_ids.add(ident_raw)
                seen_codes.add(code)
                good.append((i, ident_raw, code, organic_key(code), line))
        existing = self.registry.existing_codes([key for _, _, _, key, _ in good])
        groups = [line["group_id"] for line in lines]
        bound = self.registry.codes_of_identities(groups, [ident for _, ident, _, _, _ in good])
        out: list[tuple[int, int, date | None, str | None]] = []
        codes: list[str] = []
        today = china_today(datetime.now(UTC))
        for i, ident_text, code, key, target in good:
            found = existing.get(key)
            if found is not None and (found[0] != target["group_id"] or found[1] != ident_text):
                result.reject(i, code, "code_taken", "this code is already issued on another label")
            elif bound.get(ident_text, key) != key:
                result.reject(
                    i, ident_text, "identity_taken", f"identity {ident_text} already has another code"
                )
            else:
                out.append((key, target["group_id"], today, ident_text))
                codes.append(code)
        with self.codes.code_writes() as mark:
            for start in range(0, len(out), 5000):
                self.codes.still_writing(mark)  # a printer's file of millions outlasts the mark
                skipped = self.codes.write_chunk(
                    out[start : start + 5000], codes[start : start + 5000], False, access.code_guard(scope)
                )
                result.accepted += min(5000, len(out) - start) - len(skipped)
        result.rejected.sort(key=lambda e: e.row)
        after = {"accepted": result.accepted, "rejected": len(result.rejected)}
        self._audit(scope, actor, "order.printer_codes", f"order:{number}", None, after, order["owner"])
        return result

    def record_losses(
        self, number: str, body: Any, scope: Scope, actor: Actor | None = None
    ) -> dict[str, Any]:
        m = _model(LossesIn, body)
        seen: dict[str, Any] = {}
        check = self._check(
            scope, number, access.may_certify, frozenset({OrderStatus.ALLOCATED}), "given printing losses"
        )
        check = self._noting(check, seen)
        identities = sorted({int(x) for x in m.identity_codes})
        lines = self.registry.order_lines(number)
        outside = [
            x
            for x in identities
            if not any(
                line["identity_start"] and line["identity_start"] <= x <= line["identity_end"]
                for line in lines
            )
        ]
        if not any(line["identity_start"] for line in lines):
            self._readable_order(number, scope)  # not found before anything else
            raise Conflict(f"order {number} has no identity segments", code="order_state")
        if outside:
            raise BadInput(
                "identity codes outside the order's segments: "
                + ", ".join(identity_text(x) for x in outside[:5]),
                code="stray_identity",
            )
        # The moved codes' records change group (voided): projected inside a mark.
        with self.codes.projecting():
            moved = self.registry.record_losses(number, identities, check, scope.actor)
            self.codes.changed("codes", "status", codes=[organic_code_from_key(k) for k in moved])
        after = {"losses": [identity_text(x) for x in identities[:100]], "voided_codes": len(moved)}
        self._audit(scope, actor, "order.losses", f"order:{number}", None, after, seen.get("owner"))
        return {
            "number": number,
            "losses": [identity_text(x) for x in self.registry.losses(number)],
            "voided_codes": len(moved),
        }

    def losses(self, number: str, scope: Scope) -> list[str]:
        """The identity codes of the order's printing losses (their codes verify `voided`)."""
        self._readable_order(number, scope)
        return [identity_text(x) for x in self.registry.losses(number)]

    # -- use records (领用) ----------------------------------------------------------------------

    def uses(self, number: str, scope: Scope) -> dict[str, Any]:
        """The order's use records, and per line what is in use and in stock."""
        order = self._readable_order(number, scope)
        uses = self.registry.uses(number)
        in_use: dict[int, int] = {}
        for u in uses:
            in_use[u["n"]] = in_use.get(u["n"], 0) + u["last_identity"] - u["first_identity"] + 1
        return {
            "items": [
                {
                    "id": u["id"],
                    "label_number": label_number(number, u["n"]),
                    "first_identity": identity_text(u["first_identity"]),
                    "last_identity": identity_text(u["last_identity"]),
                    "quantity": u["last_identity"] - u["first_identity"] + 1,
                    "batch": u["batch"],
                    "person": u["person"],
                    "used_on": u["used_on"].isoformat(),
                    "recorded_by": u["created_by"],
                }
                for u in uses
            ],
            "stock": [
                {
                    "label_number": label_number(number, line["n"]),
                    "quantity": line["quantity"],
                    "in_use": in_use.get(line["n"], 0),
                    "in_stock": line["quantity"] - in_use.get(line["n"], 0),
                }
                for line in order["lines"]
                if line["identity_start"]
            ],
        }

    def take_into_use(
        self, number: str, body: Any, scope: Scope, actor: Actor | None = None
    ) -> dict[str, Any]:
        """Take labels into use: by the organization (or the all scope), on an allocated order."""
        order = self._readable_order(number, scope)
        if not any(line["identity_start"] for line in order["lines"]):
            raise Conflict(f"order {number} has no identity segments", code="order_state")
        m = _model(UseIn, body)
        try:
            used_on = date.fromisoformat(m.used_on) if m.used_on else china_today(datetime.now(UTC))
        except ValueError as exc:
            raise BadInput("used_on: not a date", code="invalid_body") from exc
        span: tuple[int, int] | int = (
            m.quantity if m.quantity is not None else (int(m.first_identity or 0), int(m.last_identity or 0))
        )
        check = self._check(
            scope, number, access.may_order, frozenset({OrderStatus.ALLOCATED}), "taken into use"
        )
        record = {
            "batch": m.batch.strip(),
            "person": m.person.strip(),
            "used_on": used_on,
            "created_by": scope.actor,
        }
        use_id = self.registry.take_into_use(number, m.line, span, record, check)
        # The label group carries its use records to the verify path (not_in_use): the
        # status generation drops every worker's copy within a second.
        self.codes.changed("status")
        use: dict[str, Any] = next(u for u in self.uses(number, scope)["items"] if u["id"] == use_id)
        self._audit(scope, actor, "order.use", f"order:{number}", None, use, order["owner"])
        return use

    def roll_back_use(
        self, number: str, use_id: int, scope: Scope, actor: Actor | None = None
    ) -> dict[str, Any]:
        """回退: delete the record; its labels are in stock again."""
        seen: dict[str, Any] = {}
        check = self._check(
            scope, number, access.may_order, frozenset({OrderStatus.ALLOCATED}), "rolled back"
        )
        before = next((u for u in self.registry.uses(number) if u["id"] == use_id), None)
        self.registry.roll_back_use(number, use_id, self._noting(check, seen))
        self.codes.changed("status")  # the verify path's not_in_use (see take_into_use)
        was = None
        if before is not None:
            was = {
                "id": use_id,
                "label_number": label_number(number, before["n"]),
                "first_identity": identity_text(before["first_identity"]),
                "last_identity": identity_text(before["last_identity"]),
                "batch": before["batch"],
            }
        self._audit(scope, actor, "order.use_rollback", f"order:{number}", was, None, seen.get("owner"))
        return self.uses(number, scope)

    def void_order(
        self, number: str, reason: str | None, scope: Scope, actor: Actor | None = None
    ) -> dict[str, Any]:
        """退订 (the admin service's void: codes verify `voided`, the quantity comes back),
        in the audit log."""
        found = self.registry.order(number)
        state = self.codes.void_order(number, reason, scope)
        before = {"status": found["status"]} if found is not None else None
        after = {"status": "voided", "reason": reason}
        owner = found["owner"] if found is not None else None
        self._audit(scope, actor, "order.void", f"order:{number}", before, after, owner)
        return state

    # -- exports ---------------------------------------------------------------------------------------

    def order_sheet(self, number: str, scope: Scope) -> dict[str, Any]:
        """The order sheet (seed 000, figure 14/19): the order's head and its lines with their
        identity segments, as the entrypoint lays them out."""
        return self.order(number, scope)

    def printer_codes(
        self, number: str, scope: Scope, actor: Actor | None = None, *, handed_out: bool = True
    ) -> Iterator[tuple[str, str, str]]:
        """(label number, identity code, organic code) of every code of the order, for the
        printer; the certifying body's only. Each hand-out is in the audit log: the file is
        every scratch-off code of the order, what a copier would want most (`handed_out`:
        False for a HEAD, which sends no code)."""
        order = self._readable_order(number, scope)
        if not access.may_certify(scope, order["owner"]):
            raise Forbidden("the printer's code file is the certifying body's")
        lines = [line for line in self.registry.order_lines(number) if line["identity_start"]]
        # The labels of the segments the file covers (a printer-coded line's codes_written
        # stays 0: its codes came in the printer's file).
        labels = sum(line["identity_end"] - line["identity_start"] + 1 for line in lines)
        after = {"lines": len(lines), "labels": labels}
        if handed_out:
            self._audit(scope, actor, "order.printer_file", f"order:{number}", None, after, order["owner"])

        def rows() -> Iterator[tuple[str, str, str]]:
            for line in lines:
                for ident, key in self.registry.iter_order_codes(
                    [line["group_id"]], line["identity_start"], line["identity_end"]
                ):
                    yield label_number(number, line["n"]), ident, organic_code_from_key(key)

        return rows()

    FILING_FIELDS = (
        ("applicant_code", "认证委托人机构代码"),
        ("applicant", "认证委托人名称"),
        ("certificate", "认证证书编号"),
        ("certificate_validity", "认证证书有效期"),
        ("product", "获证产品名称和商品名"),
        ("certified_tonnes", "获证产品核算总量(吨)"),
        ("marks_issued", "本次认证标志发放数量"),
        ("codes", "本次发放认证标志编码信息"),
        ("package", "使用产品包装规格(实际规格; 千克)"),
        ("marks_issued_so_far", "认证标志已发放数量"),
        ("application", "认证标志使用方式"),
        ("issued_on", "本次认证标志发放日期"),
        ("photos", "认证标志加贴(印制)产品包装样本照片"),
        ("other", "其他信息"),
    )

    def filing(self, number: str, scope: Scope) -> list[dict[str, Any]]:
        """The CNCA filing record of an allocated order (seed 003, annex 2): one row per
        line, the 14 fields in order."""
        order = self._readable_order(number, scope)
        if not access.may_certify(scope, order["owner"]):
            raise Forbidden("the CNCA filing record is the certifying body's")
        require(order["status"], frozenset({OrderStatus.ALLOCATED}), "filed", number)
        so_far = self.registry.issued_so_far([line["product_id"] for line in order["lines"]])
        photos = self.registry.photo_ids([line["spec_id"] for line in order["lines"]])
        out = []
        for line in order["lines"]:
            certified = line["certified_tonnes"]
            out.append(
                {
                    "applicant_code": order["applicant_code"] or "",
                    "applicant": order["organization"],
                    "certificate": order["certificate"],
                    "certificate_validity": f"{order['valid_from']} ~ {order['valid_until']}",
                    "product": f"{line['product']} / {line['trade_name']}",
                    "certified_tonnes": ""
                    if certified is None
                    else str(Decimal(str(certified)).quantize(Decimal("0.001"))),
                    "marks_issued": line["quantity"],
                    "codes": "身份码 "
                    + f"{identity_text(line['identity_start'])}-{identity_text(line['identity_end'])}",
                    "package": f"{line['package_spec']}; {_kg(line['weight_kg'])} 千克",
                    "marks_issued_so_far": so_far.get(line["product_id"], 0),
                    "application": "印制" if order["application"] == "print" else "加贴",
                    "issued_on": (order["allocated_at"] or order["created_at"]).date().isoformat(),
                    "photos": " ".join(
                        f"/api/v1/admin/product-specs/{line['spec_id']}/photos/{p}"
                        for p in photos.get(line["spec_id"], [])
                    ),
                    "other": f"订单 {number}; 标签 {label_number(number, line['n'])}; {line['label_spec']}",
                }
            )
        return out


__all__ = ["IssuingService"]
