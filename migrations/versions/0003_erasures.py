"""erasures

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23 05:18:10.324894
"""

from alembic import op
import sqlalchemy as sa


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('erasures',
    sa.Column('client_hash', sa.String(length=40), nullable=False),
    sa.Column('erased_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('client_hash', name=op.f('pk_erasures'))
    )


def downgrade() -> None:
    op.drop_table('erasures')
