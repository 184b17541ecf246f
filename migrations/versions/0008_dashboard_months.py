"""the dashboard's monthly place and flag-target counts; codes seen per product

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03 06:25:00

A year's overview read 365 daily rows per city; monthly rows make it 12 (registry.overview
reads whole months from these, the days at either end from the daily tables). The gauge
reads one row per certificate product (codes seen, their weight) instead of summing label
groups and parsing package texts on every page. Counts made before this revision are
carried over: monthly rows summed from the daily ones, each product's codes from seen_codes.
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def _scope() -> list[sa.Column]:
    return [
        sa.Column("scope_kind", sa.String(length=1), nullable=False),
        sa.Column("scope_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
    ]


def upgrade() -> None:
    op.create_table(
        "agg_places_month",
        *_scope(),
        sa.Column("province", sa.String(length=40), nullable=False),
        sa.Column("city", sa.String(length=40), nullable=False),
        sa.Column("scans", sa.Integer(), nullable=False),
        sa.Column("suspicious", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint(
            "scope_kind", "scope_id", "day", "province", "city", name=op.f("pk_agg_places_month")
        ),
    )
    op.create_table(
        "agg_flag_targets_month",
        *_scope(),
        sa.Column("certificate_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("product_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("batch_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("flags", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint(
            "scope_kind",
            "scope_id",
            "day",
            "certificate_id",
            "product_id",
            "batch_id",
            name=op.f("pk_agg_flag_targets_month"),
        ),
    )
    op.create_table(
        "agg_product_seen",
        sa.Column("product_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("codes", sa.Integer(), nullable=False),
        sa.Column("weighed_codes", sa.Integer(), nullable=False),
        sa.Column("kg", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("product_id", name=op.f("pk_agg_product_seen")),
    )
    _carry_over()
    op.drop_table("agg_group_seen")


def _carry_over() -> None:
    from domain.records import parse_package_kg

    bind = op.get_bind()
    month = (
        "DATE_FORMAT(day, '%Y-%m-01')"
        if bind.dialect.name in ("mysql", "mariadb")
        else "date(day, 'start of month')"
    )
    op.execute(
        "INSERT INTO agg_places_month (scope_kind, scope_id, day, province, city, scans, suspicious) "
        f"SELECT scope_kind, scope_id, {month}, province, city, SUM(scans), SUM(suspicious) FROM agg_places "
        f"GROUP BY scope_kind, scope_id, {month}, province, city"
    )
    op.execute(
        "INSERT INTO agg_flag_targets_month (scope_kind, scope_id, day, certificate_id, product_id, batch_id, flags) "
        f"SELECT scope_kind, scope_id, {month}, certificate_id, product_id, batch_id, SUM(flags) FROM agg_flag_targets "
        f"GROUP BY scope_kind, scope_id, {month}, certificate_id, product_id, batch_id"
    )
    per_package = bind.execute(
        sa.text(
            "SELECT g.product_id, g.package, COUNT(*) FROM seen_codes s JOIN label_groups g ON g.id = s.group_id "
            "GROUP BY g.product_id, g.package"
        )
    ).all()
    products: dict[int, list[float]] = {}
    for product_id, package, codes in per_package:
        row = products.setdefault(product_id, [0, 0, 0.0])
        kg = parse_package_kg(package)
        row[0] += codes
        if kg:
            row[1] += codes
            row[2] += kg * codes
    if products:
        bind.execute(
            sa.text(
                "INSERT INTO agg_product_seen (product_id, codes, weighed_codes, kg) VALUES (:p, :c, :w, :k)"
            ),
            [{"p": p, "c": c, "w": w, "k": k} for p, (c, w, k) in products.items()],
        )


def downgrade() -> None:
    op.create_table(
        "agg_group_seen",
        sa.Column("group_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("codes", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("group_id", name=op.f("pk_agg_group_seen")),
    )
    # What the per-product counts cannot give back (the label group) is in seen_codes.
    op.execute(
        "INSERT INTO agg_group_seen (group_id, codes) SELECT group_id, COUNT(*) FROM seen_codes GROUP BY group_id"
    )
    op.drop_table("agg_product_seen")
    op.drop_table("agg_flag_targets_month")
    op.drop_table("agg_places_month")
