"""the dashboard's aggregates: scans, places, flags, flag targets, seen codes

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03 06:10:00

Filled by the scan worker from here on (registry/aggregates.py); events and flags stored
before this revision are counted by `flask aggregates rebuild`.
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def _scope() -> list[sa.Column]:
    return [
        sa.Column("scope_kind", sa.String(length=1), nullable=False),
        sa.Column("scope_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
    ]


def _scoped(name: str, *columns: sa.Column, key: tuple[str, ...]) -> None:
    op.create_table(
        name,
        *_scope(),
        *columns,
        sa.PrimaryKeyConstraint("scope_kind", "scope_id", "day", *key, name=op.f(f"pk_{name}")),
    )


def upgrade() -> None:
    _scoped(
        "agg_scans",
        sa.Column("verdict", sa.String(length=24), nullable=False),
        sa.Column("scans", sa.Integer(), nullable=False),
        key=("verdict",),
    )
    _scoped(
        "agg_places",
        sa.Column("province", sa.String(length=40), nullable=False),
        sa.Column("city", sa.String(length=40), nullable=False),
        sa.Column("scans", sa.Integer(), nullable=False),
        sa.Column("suspicious", sa.Integer(), nullable=False),
        key=("province", "city"),
    )
    _scoped(
        "agg_flags",
        sa.Column("rule", sa.String(length=32), nullable=False),
        sa.Column("flags", sa.Integer(), nullable=False),
        key=("rule",),
    )
    _scoped(
        "agg_flag_targets",
        sa.Column("certificate_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("product_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("batch_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("flags", sa.Integer(), nullable=False),
        key=("certificate_id", "product_id", "batch_id"),
    )
    op.create_table(
        "seen_codes",
        sa.Column(
            "code", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=False, nullable=False
        ),
        sa.Column("group_id", sa.Integer(), nullable=False),
        sa.Column("first_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("code", name=op.f("pk_seen_codes")),
    )
    op.create_table(
        "agg_group_seen",
        sa.Column("group_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("codes", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("group_id", name=op.f("pk_agg_group_seen")),
    )


def downgrade() -> None:
    for name in ("agg_group_seen", "seen_codes", "agg_flag_targets", "agg_flags", "agg_places", "agg_scans"):
        op.drop_table(name)
