"""the flag queue's indexes: organic codes by label group; flags by rule, status and time

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-03 09:20:00

The dashboard's flag queue for a narrow scope (one organization, one certification body)
starts from the scope's certificates and reads their codes by label group
(registry.scans.SqlScanArchive.list_flags): without ix_organic_codes_group_id every such
read would scan the whole code table. A queue or export filtered by rule and status walks
that rule's flags of that status newest first (ix_flags_rule_status_raised_at), not every
flag. InnoDB builds both in place, without blocking writes.
"""

from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_organic_codes_group_id", "organic_codes", ["group_id"])
    op.create_index("ix_flags_rule_status_raised_at", "flags", ["rule", "status", "raised_at"])


def downgrade() -> None:
    op.drop_index("ix_flags_rule_status_raised_at", table_name="flags")
    op.drop_index("ix_organic_codes_group_id", table_name="organic_codes")
