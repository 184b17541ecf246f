"""admin token expiry and last use

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-24 10:00:00
"""

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Tokens created before this revision keep no expiry (NULL): nothing locks out a
    # running integration on upgrade; operators revoke or replace them.
    with op.batch_alter_table("api_tokens") as batch:
        batch.add_column(sa.Column("expires_at", sa.DateTime(), nullable=True))
        batch.add_column(sa.Column("last_used_at", sa.DateTime(), nullable=True))


def downgrade() -> None:
    # The schema before this revision knows no expiry: a token already expired would work
    # again once `expires_at` is gone, so it is revoked first (revoked_at predates 0005).
    # Tokens that would expire later become tokens without expiry: revoke them by hand.
    now = datetime.now(UTC).replace(tzinfo=None, microsecond=0)
    tokens = sa.table(
        "api_tokens", sa.column("revoked_at", sa.DateTime()), sa.column("expires_at", sa.DateTime())
    )
    op.execute(
        tokens.update()
        .where(tokens.c.revoked_at.is_(None), tokens.c.expires_at <= now)
        .values(revoked_at=tokens.c.expires_at)
    )
    with op.batch_alter_table("api_tokens") as batch:
        batch.drop_column("last_used_at")
        batch.drop_column("expires_at")
