"""label uses (领用) of allocated order lines

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-03 07:05:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

BigKey = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "label_uses",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("order_id", sa.Integer(), nullable=False),
        sa.Column("line_id", sa.Integer(), nullable=False),
        sa.Column("first_identity", BigKey, nullable=False),
        sa.Column("last_identity", BigKey, nullable=False),
        sa.Column("batch", sa.String(60), nullable=False),
        sa.Column("person", sa.String(60), nullable=False),
        sa.Column("used_on", sa.Date(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("created_by", sa.String(80), nullable=True),
        sa.ForeignKeyConstraint(["order_id"], ["orders.id"], name="fk_label_uses_order_id_orders"),
        sa.ForeignKeyConstraint(["line_id"], ["order_lines.id"], name="fk_label_uses_line_id_order_lines"),
        sa.PrimaryKeyConstraint("id", name="pk_label_uses"),
    )
    op.create_index("ix_label_uses_order_id", "label_uses", ["order_id"])


def downgrade() -> None:
    op.drop_table("label_uses")  # its index goes with it (MariaDB needs it for the key)
