"""Wuchang raw-grain ledger, milling yield, batch inspection reports, batch purchases;
an index for a label group's order lines (the not_in_use rule's group load)

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-03 09:20:00
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

Blob = sa.LargeBinary().with_variant(mysql.MEDIUMBLOB(), "mysql", "mariadb")
BigKey = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_index("ix_order_lines_group_id", "order_lines", ["group_id"])
    with op.batch_alter_table("organizations") as batch:
        batch.add_column(sa.Column("milling_yield", sa.Numeric(5, 4), nullable=True))
    op.create_table(
        "grain_purchases",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("organization_id", sa.Integer(), nullable=False),
        sa.Column("reference", sa.String(60), nullable=False),
        sa.Column("purchased_on", sa.Date(), nullable=False),
        sa.Column("supplier", sa.String(200), nullable=False),
        sa.Column("quantity_g", BigKey, nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.Column("updated_by", sa.String(80), nullable=True),
        sa.ForeignKeyConstraint(
            ["organization_id"], ["organizations.id"], name="fk_grain_purchases_organization_id_organizations"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_grain_purchases"),
        sa.UniqueConstraint(
            "organization_id", "reference", name="uq_grain_purchases_organization_id_reference"
        ),
    )
    op.create_table(
        "batch_purchases",
        sa.Column("batch_id", sa.Integer(), nullable=False, autoincrement=False),
        sa.Column("purchase_id", sa.Integer(), nullable=False, autoincrement=False),
        sa.ForeignKeyConstraint(["batch_id"], ["batches.id"], name="fk_batch_purchases_batch_id_batches"),
        sa.ForeignKeyConstraint(
            ["purchase_id"], ["grain_purchases.id"], name="fk_batch_purchases_purchase_id_grain_purchases"
        ),
        sa.PrimaryKeyConstraint("batch_id", "purchase_id", name="pk_batch_purchases"),
    )
    op.create_table(
        "batch_inspections",
        sa.Column("batch_id", sa.Integer(), nullable=False, autoincrement=False),
        sa.Column("report_number", sa.String(60), nullable=False),
        sa.Column("laboratory", sa.String(200), nullable=False),
        sa.Column("result", sa.String(8), nullable=False),
        sa.Column("inspected_on", sa.Date(), nullable=False),
        sa.Column("content_type", sa.String(40), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("data", Blob, nullable=False),
        sa.Column("uploaded_at", sa.DateTime(), nullable=False),
        sa.Column("uploaded_by", sa.String(80), nullable=True),
        sa.ForeignKeyConstraint(["batch_id"], ["batches.id"], name="fk_batch_inspections_batch_id_batches"),
        sa.PrimaryKeyConstraint("batch_id", name="pk_batch_inspections"),
    )


def downgrade() -> None:
    op.drop_table("batch_inspections")
    op.drop_table("batch_purchases")
    op.drop_table("grain_purchases")
    with op.batch_alter_table("organizations") as batch:
        batch.drop_column("milling_yield")
    op.drop_index("ix_order_lines_group_id", table_name="order_lines")
