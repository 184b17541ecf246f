"""The access policy over a Scope (domain.access): what the regulator, a certification body
and an organization may read and write, asked of owners as the repositories report them."""

from __future__ import annotations

import pytest

from domain import access
from domain.access import Owner
from domain.bulk import Scope

ALL = Scope("all", None, None, "regulator")
BODY_A = Scope("body", 1, 10, "body A")
ORG_X = Scope("organization", 7, 11, "brand X")

A_FOR_X = Owner(body_id=1, organization_id=7)  # certified by body A, held by X
B_FOR_Y = Owner(body_id=2, organization_id=8)
BATCH_X = Owner(organization_id=7)
UNOWNED_BATCH = Owner()


@pytest.mark.parametrize(
    ("scope", "owner", "expected"),
    [
        (ALL, B_FOR_Y, True),
        (ALL, UNOWNED_BATCH, True),
        (BODY_A, A_FOR_X, True),
        (BODY_A, B_FOR_Y, False),
        (BODY_A, BATCH_X, False),  # a batch has no body: no body reads it
        (ORG_X, A_FOR_X, True),
        (ORG_X, B_FOR_Y, False),
        (ORG_X, BATCH_X, True),
        (ORG_X, UNOWNED_BATCH, False),
    ],
)
def test_a_scope_reads_what_its_body_certified_or_its_organization_holds(
    scope: Scope, owner: Owner, expected: bool
) -> None:
    assert access.may_read(scope, owner) is expected


@pytest.mark.parametrize(
    ("scope", "owner", "expected"),
    [
        (ALL, B_FOR_Y, True),
        (BODY_A, A_FOR_X, True),
        (BODY_A, B_FOR_Y, False),
        (BODY_A, Owner(body_id=None, organization_id=7), False),
        (ORG_X, A_FOR_X, False),  # the holder reads its certificate's codes, never writes them
    ],
)
def test_only_the_certifying_body_or_the_regulator_writes_certificates_codes_and_orders(
    scope: Scope, owner: Owner, expected: bool
) -> None:
    assert access.may_certify(scope, owner) is expected


def test_lists_are_filtered_to_the_scopes_own_body_or_organization() -> None:
    assert access.visible_to(ALL) is None
    assert access.visible_to(BODY_A) == Owner(body_id=1)
    assert access.visible_to(ORG_X) == Owner(organization_id=7)


def test_batches_are_their_organizations_until_the_regulator_activates_them() -> None:
    assert not access.may_write_batches(BODY_A)
    assert access.may_write_batches(ORG_X) and access.may_write_batches(ALL)
    assert access.may_change_batch(ORG_X, BATCH_X)
    assert not access.may_change_batch(ORG_X, Owner(organization_id=8))
    assert not access.may_change_batch(ORG_X, UNOWNED_BATCH)
    assert access.may_change_batch(ALL, UNOWNED_BATCH)
    assert not access.may_change_activated_batch(ORG_X)
    assert access.may_change_activated_batch(ALL)
    assert [access.may_activate_batches(s) for s in (ALL, BODY_A, ORG_X)] == [True, False, False]


def test_bodies_and_replacing_file_loads_are_the_regulators_alone() -> None:
    assert [access.may_manage_bodies(s) for s in (ALL, BODY_A, ORG_X)] == [True, False, False]
    assert [access.may_load_files(s) for s in (ALL, BODY_A, ORG_X)] == [True, False, False]


def test_a_body_scopes_code_writes_are_guarded_to_its_body() -> None:
    assert access.code_guard(BODY_A) == 1
    assert access.code_guard(ALL) is None
