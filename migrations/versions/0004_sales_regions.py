"""sales regions of certificate products

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23 10:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Provinces or cities where the product is declared to be sold, comma-separated; NULL
    # when none is declared (then no scan is ever off-market).
    with op.batch_alter_table("certificate_products") as batch:
        batch.add_column(sa.Column("sales_regions", sa.String(length=1000), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("certificate_products") as batch:
        batch.drop_column("sales_regions")
