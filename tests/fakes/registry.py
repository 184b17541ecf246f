"""An in-memory registry: domain.ports.RegistryReader and AdminRegistry over dicts.

The same rules as registry.store.SqlRegistry, kept by hand: upserts are idempotent, the
service's access checks are asked of the same owners, a token in another batch is
rejected, a body's import never moves another body's code (the owner guard of
`write_codes`), voiding and activating keep their first time. Tests read its tables
directly to see what landed.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from domain.access import Owner
from domain.bulk import BulkResult, Scope
from domain.certificates import CertificateKind, CertificateStatus, check_status_change
from domain.codes import CodeKind, organic_code_from_key, organic_key
from domain.errors import NotFound
from domain.ports import CodeRow
from domain.records import BatchGroup, BatchState, CertificateState, CodeRecord, LabelGroup, OrderState


def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


@dataclass
class _Certificate:
    id: int
    number: str
    body_id: int
    organization_id: int
    values: dict[str, Any]
    status_since: date | None = None
    history: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class _Order:
    id: int
    number: str
    certificate_id: int
    voided_at: datetime | None = None
    void_reason: str | None = None


@dataclass
class _Batch:
    id: int
    number: str
    organization_id: int | None
    values: dict[str, Any]
    activated_at: datetime | None = None


class FakeRegistry:
    def __init__(self) -> None:
        self._ids = itertools.count(1)
        self.bodies: dict[str, dict[str, Any]] = {}  # code -> row with "id"
        self.organizations: dict[str, int] = {}
        self.certificates: dict[str, _Certificate] = {}
        self.products: dict[tuple[int, str], dict[str, Any]] = {}  # (cert id, name) -> row with "id"
        self.orders: dict[str, _Order] = {}
        self.groups: dict[tuple[int, int, int, str, str], int] = {}
        self.codes: dict[int, tuple[int, date | None, str | None]] = {}  # key -> group, issued, identity
        self.batches: dict[str, _Batch] = {}
        self.bq: dict[str, tuple[int, str]] = {}  # token -> batch id, role
        # Batch number -> its inspection report's facts. The fake keeps no raw-grain ledger:
        # the cap and the balance are tested on the real databases (tests/api).
        self.inspections: dict[str, dict[str, Any]] = {}
        self.tokens: dict[int, dict[str, Any]] = {}
        self.bulk_file_supported = False
        self.bulk_file_loads = 0  # chunks saved through a "file"

    # -- verify path reads (RegistryReader) --------------------------------------------------

    def find_code(self, code: str, kind: CodeKind) -> CodeRecord | None:
        if kind is CodeKind.BQ:
            found = self.bq.get(code)
            return None if found is None else CodeRecord(code, kind, found[0], None, None, found[1])
        row = self.codes.get(organic_key(code))
        return None if row is None else CodeRecord(code, kind, row[0], row[1], row[2])

    def _group(self, group_id: int) -> tuple[int, int, int, str, str] | None:
        return next((key for key, gid in self.groups.items() if gid == group_id), None)

    def label_group(self, group_id: int) -> LabelGroup | None:
        key = self._group(group_id)
        if key is None:
            return None
        cert_id, product_id, order_id, package, label_spec = key
        cert = next(c for c in self.certificates.values() if c.id == cert_id)
        product = next(p for p in self.products.values() if p["id"] == product_id)
        order = next((o.number for o in self.orders.values() if o.id == order_id), None)
        tonnes = product.get("certified_tonnes")
        return LabelGroup(
            group_id,
            cert.number,
            product["name"],
            product.get("description"),
            package or None,
            label_spec or None,
            order,
            product_id,
            float(tonnes) if tonnes is not None else None,
            ",".join(product.get("sales_regions") or []) or None,
        )

    def batch_group(self, batch_id: int) -> BatchGroup | None:
        batch = next((b for b in self.batches.values() if b.id == batch_id), None)
        if batch is None:
            return None
        kg = batch.values.get("net_content_kg")
        return BatchGroup(
            batch.id,
            batch.number,
            batch.values["producer"],
            batch.values["product"],
            float(kg) if kg is not None else None,
            dict(batch.values.get("trace") or {}),
        )

    def certificate(self, number: str) -> CertificateState | None:
        cert = self.certificates.get(number)
        if cert is None:
            return None
        body = next(b for b in self.bodies.values() if b["id"] == cert.body_id)
        v = cert.values
        return CertificateState(
            cert.number,
            v["holder"],
            v.get("producer"),
            CertificateKind(v["kind"]),
            v.get("category"),
            v["valid_from"],
            v["valid_until"],
            CertificateStatus(v["status"]),
            cert.status_since,
            body["code"],
            body["name"],
        )

    def order(self, number: str) -> OrderState | None:
        found = self.orders.get(number)
        if found is None:
            return None
        return OrderState(found.number, found.voided_at)

    def batch_state(self, number: str) -> BatchState | None:
        batch = self.batches.get(number)
        return None if batch is None else BatchState(batch.number, batch.activated_at)

    def body_codes(self) -> frozenset[str]:
        codes = {b["code"] for b in self.bodies.values()}
        return frozenset(codes | {b["legacy_code"] for b in self.bodies.values() if b.get("legacy_code")})

    def iter_codes(self, batch: int = 50_000) -> Iterator[str]:
        for key in sorted(self.codes):
            yield organic_code_from_key(key)
        yield from self.bq

    # -- tokens -----------------------------------------------------------------------------

    def create_token(
        self,
        token_hash: str,
        name: str,
        scope_kind: str,
        scope_id: int | None,
        expires_at: datetime | None = None,
    ) -> int:
        token_id = next(self._ids)
        self.tokens[token_id] = {
            "hash": token_hash,
            "name": name,
            "scope": scope_kind,
            "scope_id": scope_id,
            "created_at": _now(),
            "expires_at": expires_at,
            "last_used_at": None,
            "revoked_at": None,
        }
        return token_id

    def find_token(self, token_hash: str) -> tuple[Scope, datetime | None] | None:
        for token_id, tok in self.tokens.items():
            live = tok["revoked_at"] is None and (tok["expires_at"] is None or tok["expires_at"] > _now())
            if tok["hash"] == token_hash and live:
                return Scope(tok["scope"], tok["scope_id"], token_id, tok["name"]), tok["last_used_at"]
        return None

    def touch_token(self, token_id: int, at: datetime, not_since: datetime) -> None:
        tok = self.tokens.get(token_id)
        if tok is not None and (tok["last_used_at"] is None or tok["last_used_at"] < not_since):
            tok["last_used_at"] = at

    def _visible(self, owned_by: Owner | None) -> list[int]:
        if owned_by is None:
            return list(self.tokens)
        kind, owner_id = (
            ("body", owned_by.body_id)
            if owned_by.body_id is not None
            else ("organization", owned_by.organization_id)
        )
        return [i for i, tok in self.tokens.items() if tok["scope"] == kind and tok["scope_id"] == owner_id]

    def list_tokens(self, owned_by: Owner | None) -> list[dict[str, Any]]:
        return [
            {"id": i, **{k: v for k, v in self.tokens[i].items() if k != "hash"}}
            for i in self._visible(owned_by)
        ]

    def revoke_token(self, token_id: int, owned_by: Owner | None) -> dict[str, Any]:
        if token_id not in self._visible(owned_by):
            raise NotFound(f"no token {token_id}", code="token_not_found")
        tok = self.tokens[token_id]
        tok["revoked_at"] = tok["revoked_at"] or _now()
        return next(i for i in self.list_tokens(owned_by) if i["id"] == token_id)

    def scope_target_id(self, scope_kind: str, name: str) -> int:
        found = self.bodies[name]["id"] if scope_kind == "body" and name in self.bodies else None
        if scope_kind != "body":
            found = self.organizations.get(name)
        if found is None:
            raise NotFound(f"no {scope_kind} {name!r}", code=f"{scope_kind}_not_found")
        return int(found)

    # -- bodies and certificates ------------------------------------------------------------

    def upsert_bodies(self, rows: Sequence[tuple[int, Mapping[str, Any]]]) -> BulkResult:
        result = BulkResult()
        for i, row in rows:
            legacy = row.get("legacy_code")
            if legacy and any(
                b["legacy_code"] == legacy and code != row["code"] for code, b in self.bodies.items()
            ):
                result.reject(i, row["code"], "conflict", "legacy_code already belongs to another body")
                continue
            body_id = self.bodies[row["code"]]["id"] if row["code"] in self.bodies else next(self._ids)
            self.bodies[row["code"]] = {**row, "id": body_id}
            result.accepted += 1
        return result

    def _organization_id(self, name: str) -> int:
        return self.organizations.setdefault(name, next(self._ids))

    def upsert_certificates(
        self,
        rows: Sequence[tuple[int, Mapping[str, Any]]],
        allowed: Callable[[Owner], bool],
        changed_by: str,
    ) -> BulkResult:
        result = BulkResult()
        for i, row in rows:
            body = self.bodies.get(row["body_code"])
            if body is None:
                result.reject(i, row["number"], "unknown_body", f"no body with code {row['body_code']}")
                continue
            existing = self.certificates.get(row["number"])
            if not allowed(Owner(body_id=body["id"])) or (
                existing is not None and not allowed(Owner(existing.body_id, existing.organization_id))
            ):
                result.reject(i, row["number"], "forbidden", "the certificate belongs to another body")
                continue
            values = {k: v for k, v in row.items() if k not in ("products", "number", "body_code")}
            if existing is None:
                cert = _Certificate(
                    next(self._ids),
                    row["number"],
                    body["id"],
                    self._organization_id(row["holder"]),
                    values,
                    None if row["status"] == "valid" else row["valid_from"],
                )
                cert.history.append({"status": row["status"], "reason": "created", "changed_by": changed_by})
                self.certificates[cert.number] = cert
            else:
                cert = existing
                if cert.values["status"] != row["status"]:
                    try:
                        check_status_change(
                            CertificateStatus(cert.values["status"]), CertificateStatus(row["status"])
                        )
                    except Exception as exc:
                        result.reject(i, row["number"], "status_final", str(exc))
                        continue
                    cert.status_since = date.today()
                    cert.history.append(
                        {"status": row["status"], "reason": "import", "changed_by": changed_by}
                    )
                cert.body_id, cert.organization_id = body["id"], self._organization_id(row["holder"])
                cert.values = values
            for product in row.get("products") or []:
                key = (cert.id, product["name"])
                product_id = self.products[key]["id"] if key in self.products else next(self._ids)
                self.products[key] = {**product, "id": product_id}
            result.accepted += 1
        return result

    def change_certificate_status(
        self,
        number: str,
        status: CertificateStatus,
        reason: str | None,
        effective_on: date | None,
        allowed: Callable[[Owner], bool],
        changed_by: str,
    ) -> CertificateState:
        cert = self.certificates.get(number)
        if cert is None or not allowed(Owner(cert.body_id, cert.organization_id)):
            raise NotFound(f"no certificate {number}", code="certificate_not_found")
        check_status_change(CertificateStatus(cert.values["status"]), status)
        since = effective_on or date.today()
        cert.values["status"] = status.value
        cert.status_since = None if status is CertificateStatus.VALID else since
        cert.history.append(
            {"status": status.value, "reason": reason, "effective_on": since, "changed_by": changed_by}
        )
        state = self.certificate(number)
        assert state is not None
        return state

    def certificate_history(self, number: str) -> list[dict[str, Any]]:
        cert = self.certificates.get(number)
        return [{"effective_on": None, "changed_at": _now(), **h} for h in (cert.history if cert else [])]

    # -- codes and orders -------------------------------------------------------------------

    def certificate_refs(self) -> dict[str, tuple[int, int, int]]:
        return {c.number: (c.id, c.body_id, c.organization_id) for c in self.certificates.values()}

    def product_ids(self) -> dict[tuple[int, str], int]:
        return {key: int(p["id"]) for key, p in self.products.items()}

    def body_numbering(self) -> dict[int, tuple[str, str | None]]:
        return {b["id"]: (b["code"], b.get("legacy_code")) for b in self.bodies.values()}

    def _owner_of_group(self, group_id: int) -> Owner:
        key = self._group(group_id)
        assert key is not None
        return self._owner_of_certificate(key[0])

    def _owner_of_certificate(self, certificate_id: int) -> Owner:
        cert = next(c for c in self.certificates.values() if c.id == certificate_id)
        return Owner(cert.body_id, cert.organization_id)

    def code_owners(self, keys: Sequence[int]) -> dict[int, Owner]:
        return {key: self._owner_of_group(self.codes[key][0]) for key in keys if key in self.codes}

    def bq_owners(self, tokens: Sequence[str]) -> dict[str, Owner]:
        by_id = {b.id: b for b in self.batches.values()}
        return {
            t: Owner(organization_id=by_id[self.bq[t][0]].organization_id) for t in tokens if t in self.bq
        }

    def find_order(self, number: str) -> tuple[int, int] | None:
        order = self.orders.get(number)
        return None if order is None else (order.id, order.certificate_id)

    def label_group_for(
        self,
        certificate_id: int,
        product_id: int,
        package: str,
        label_spec: str,
        order: str | None = None,
    ) -> tuple[int | None, tuple[int, int] | None]:
        order_ref = None
        if order:
            made = self.orders.setdefault(order, _Order(next(self._ids), order, certificate_id))
            order_ref = (made.id, made.certificate_id)
            if made.certificate_id != certificate_id:
                return None, order_ref
        key = (certificate_id, product_id, order_ref[0] if order_ref else 0, package, label_spec)
        return self.groups.setdefault(key, next(self._ids)), order_ref

    def save_codes(
        self, rows: list[CodeRow], *, body_id: int | None = None, bulk_file: bool = False
    ) -> list[int]:
        if bulk_file:
            assert self.bulk_file_supported, "a bulk file where the registry cannot load one"
            self.bulk_file_loads += 1
        skipped = []
        for key, group_id, issued, identity in rows:
            current = self.codes.get(key)
            # The owner guard: a body's write never moves another body's code.
            owner = self._owner_of_group(current[0]) if current is not None else None
            if body_id is not None and owner is not None and owner.body_id != body_id:
                skipped.append(key)
                continue
            self.codes[key] = (group_id, issued, identity)
        return skipped

    def order_owner(self, number: str) -> Owner | None:
        order = self.orders.get(number)
        return None if order is None else self._owner_of_certificate(order.certificate_id)

    def void_order(self, number: str, reason: str | None, changed_by: str | None = None) -> OrderState:
        order = self.orders.get(number)
        if order is None:
            raise NotFound(f"no order {number}", code="order_not_found")
        if order.voided_at is None:  # voiding twice keeps the first time
            order.voided_at, order.void_reason = _now(), reason
        state = self.order(number)
        assert state is not None
        return state

    # -- BQ batches -------------------------------------------------------------------------

    def upsert_batch(
        self,
        batch: Mapping[str, Any],
        codes: Sequence[tuple[int, str, str]],
        organization_id: int | None,
        check: Callable[[Owner, bool], None] | None = None,
        cap: Callable[[Any, int, int], None] | None = None,
        purchases: Sequence[str] = (),
    ) -> tuple[int, BulkResult]:
        del cap, purchases  # no ledger here (see __init__)
        existing = self.batches.get(batch["number"])
        if existing is not None and check is not None:
            check(Owner(organization_id=existing.organization_id), existing.activated_at is not None)
        values = {k: v for k, v in batch.items() if k not in ("number", "organization")}
        if existing is None:
            existing = _Batch(next(self._ids), batch["number"], organization_id, values)
            self.batches[existing.number] = existing
        else:
            existing.values = values
            if organization_id is not None:
                existing.organization_id = organization_id
        result = BulkResult()
        for i, token, role in codes:
            owner = self.bq.get(token)
            if owner is not None and owner[0] != existing.id:
                result.reject(i, token, "code_in_other_batch", "this code is already linked to another batch")
                continue
            self.bq.setdefault(token, (existing.id, role))
            result.accepted += 1
        return existing.id, result

    def batch_owner(self, number: str) -> Owner | None:
        batch = self.batches.get(number)
        return None if batch is None else Owner(organization_id=batch.organization_id)

    def activate_batch(self, number: str, check: Callable[[Any, Any], None] | None = None) -> BatchState:
        batch = self.batches.get(number)
        if batch is None:
            raise NotFound(f"no batch {number}", code="batch_not_found")
        if check is not None:
            check(self.inspections.get(number), None)
        batch.activated_at = batch.activated_at or _now()
        return BatchState(batch.number, batch.activated_at)
