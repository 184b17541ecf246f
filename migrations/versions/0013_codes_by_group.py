"""organic codes by label group

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-03 09:20:00

The dashboard's flag queue for a narrow scope (one organization, one certification body)
starts from the scope's certificates and reads their codes by label group
(registry.scans.SqlScanArchive.list_flags): without this index every such read would scan
the whole code table. InnoDB builds it in place, without blocking writes.
"""

from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_organic_codes_group_id", "organic_codes", ["group_id"])


def downgrade() -> None:
    op.drop_index("ix_organic_codes_group_id", table_name="organic_codes")
