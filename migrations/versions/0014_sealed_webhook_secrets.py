"""room for sealed webhook secrets

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-03 13:10:00

A webhook's secret is now stored sealed (registry/sealing.py: `f1:` and a Fernet token,
187 characters for a 64-character secret) instead of in clear (64). The column widens to
255; secrets already stored are sealed by the worker as it starts (they need SECRET_KEY,
which a migration does not have), and read as they are until then. SQLite alters the
table in a batch (a copy); MariaDB widens a VARCHAR in place.
"""

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("webhooks") as batch:
        batch.alter_column("secret", existing_type=sa.String(80), type_=sa.String(255), existing_nullable=False)


def downgrade() -> None:
    # Sealed secrets do not fit 80 characters and an older release cannot open them: the
    # downgrade refuses rather than cut them.
    bind = op.get_bind()
    longest = bind.execute(sa.text("SELECT MAX(LENGTH(secret)) FROM webhooks")).scalar()
    if longest is not None and longest > 80:
        raise RuntimeError("webhook secrets are sealed; rotate them under the older release instead")
    with op.batch_alter_table("webhooks") as batch:
        batch.alter_column("secret", existing_type=sa.String(255), type_=sa.String(80), existing_nullable=False)
