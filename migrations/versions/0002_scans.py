"""scan events, rollups, flags, reports

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 04:40:21.655071
"""

from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import mysql

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('flags',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('code', sa.String(length=32).with_variant(mysql.VARCHAR(charset='ascii', collation='ascii_bin', length=32), 'mariadb').with_variant(mysql.VARCHAR(charset='ascii', collation='ascii_bin', length=32), 'mysql'), nullable=False),
    sa.Column('rule', sa.String(length=32), nullable=False),
    sa.Column('severity', sa.String(length=12), nullable=False),
    sa.Column('status', sa.String(length=12), nullable=False),
    sa.Column('raised_at', sa.DateTime(), nullable=False),
    sa.Column('updated_at', sa.DateTime(), nullable=False),
    sa.Column('evidence', sa.Text().with_variant(mysql.MEDIUMTEXT(), 'mariadb').with_variant(mysql.MEDIUMTEXT(), 'mysql'), nullable=True),
    sa.Column('note', sa.String(length=1000), nullable=True),
    sa.Column('certificate_id', sa.Integer(), nullable=True),
    sa.Column('body_id', sa.Integer(), nullable=True),
    sa.Column('organization_id', sa.Integer(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_flags')),
    sa.UniqueConstraint('code', 'rule', name=op.f('uq_flags_code_rule'))
    )
    with op.batch_alter_table('flags', schema=None) as batch_op:
        batch_op.create_index('ix_flags_body_id', ['body_id'], unique=False)
        batch_op.create_index('ix_flags_organization_id', ['organization_id'], unique=False)
        batch_op.create_index('ix_flags_raised_at', ['raised_at'], unique=False)

    op.create_table('reports',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('code', sa.String(length=32).with_variant(mysql.VARCHAR(charset='ascii', collation='ascii_bin', length=32), 'mariadb').with_variant(mysql.VARCHAR(charset='ascii', collation='ascii_bin', length=32), 'mysql'), nullable=False),
    sa.Column('client_hash', sa.String(length=40), nullable=True),
    sa.Column('text', sa.String(length=2000), nullable=True),
    sa.Column('shop', sa.String(length=200), nullable=True),
    sa.Column('photo', sa.LargeBinary().with_variant(mysql.MEDIUMBLOB(), 'mariadb').with_variant(mysql.MEDIUMBLOB(), 'mysql'), nullable=True),
    sa.Column('photo_type', sa.String(length=40), nullable=True),
    sa.Column('city', sa.String(length=40), nullable=True),
    sa.Column('province', sa.String(length=40), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_reports'))
    )
    with op.batch_alter_table('reports', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_reports_code'), ['code'], unique=False)

    op.create_table('scan_events',
    sa.Column('event_id', sa.String(length=40), nullable=False),
    sa.Column('code', sa.String(length=32).with_variant(mysql.VARCHAR(charset='ascii', collation='ascii_bin', length=32), 'mariadb').with_variant(mysql.VARCHAR(charset='ascii', collation='ascii_bin', length=32), 'mysql'), nullable=False),
    sa.Column('at', sa.DateTime(), nullable=False),
    sa.Column('channel', sa.String(length=12), nullable=False),
    sa.Column('verdict', sa.String(length=24), nullable=False),
    sa.Column('client_hash', sa.String(length=40), nullable=True),
    sa.Column('ip_hash', sa.String(length=40), nullable=True),
    sa.Column('lat', sa.Float(), nullable=True),
    sa.Column('lng', sa.Float(), nullable=True),
    sa.Column('city', sa.String(length=40), nullable=True),
    sa.Column('province', sa.String(length=40), nullable=True),
    sa.PrimaryKeyConstraint('event_id', name=op.f('pk_scan_events'))
    )
    with op.batch_alter_table('scan_events', schema=None) as batch_op:
        batch_op.create_index('ix_scan_events_at', ['at'], unique=False)
        batch_op.create_index('ix_scan_events_client_hash', ['client_hash'], unique=False)
        batch_op.create_index('ix_scan_events_code_at', ['code', 'at'], unique=False)

    op.create_table('scan_rollups',
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('code', sa.String(length=32).with_variant(mysql.VARCHAR(charset='ascii', collation='ascii_bin', length=32), 'mariadb').with_variant(mysql.VARCHAR(charset='ascii', collation='ascii_bin', length=32), 'mysql'), nullable=False),
    sa.Column('scans', sa.Integer(), nullable=False),
    sa.Column('scanners', sa.Integer(), nullable=False),
    sa.Column('cities', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('day', 'code', name=op.f('pk_scan_rollups'))
    )


def downgrade() -> None:
    # Whole tables, which takes their indexes with them (see 0001).
    op.drop_table('scan_rollups')
    op.drop_table('scan_events')
    op.drop_table('reports')
    op.drop_table('flags')
