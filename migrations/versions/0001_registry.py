"""registry: bodies, certificates, codes, orders, batches, tokens

Revision ID: 0001
Revises: 
Create Date: 2026-11-23 03:57:46.021788
"""

from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import mysql

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('api_tokens',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('scope_kind', sa.String(length=12), nullable=False),
    sa.Column('scope_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('revoked_at', sa.DateTime(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_api_tokens')),
    sa.UniqueConstraint('token_hash', name=op.f('uq_api_tokens_token_hash'))
    )
    op.create_table('bodies',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('code', sa.String(length=4), nullable=False),
    sa.Column('legacy_code', sa.String(length=3), nullable=True),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('approval_number', sa.String(length=40), nullable=True),
    sa.Column('updated_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_bodies')),
    sa.UniqueConstraint('code', name=op.f('uq_bodies_code')),
    sa.UniqueConstraint('legacy_code', name=op.f('uq_bodies_legacy_code'))
    )
    op.create_table('generations',
    sa.Column('name', sa.String(length=20), nullable=False),
    sa.Column('value', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_generations'))
    )
    op.create_table('organic_codes',
    sa.Column('code', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=False, nullable=False),
    sa.Column('group_id', sa.Integer(), nullable=False),
    sa.Column('issued_on', sa.Date(), nullable=True),
    sa.Column('identity_code', sa.String(length=24), nullable=True),
    sa.PrimaryKeyConstraint('code', name=op.f('pk_organic_codes'))
    )
    op.create_table('organizations',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_organizations')),
    sa.UniqueConstraint('name', name=op.f('uq_organizations_name'))
    )
    op.create_table('batches',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('number', sa.String(length=40), nullable=False),
    sa.Column('organization_id', sa.Integer(), nullable=True),
    sa.Column('producer', sa.String(length=200), nullable=False),
    sa.Column('product', sa.String(length=200), nullable=False),
    sa.Column('net_content_kg', sa.Numeric(precision=10, scale=3), nullable=True),
    sa.Column('trace', sa.Text().with_variant(mysql.MEDIUMTEXT(), 'mariadb').with_variant(mysql.MEDIUMTEXT(), 'mysql'), nullable=True),
    sa.Column('activated_at', sa.DateTime(), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['organization_id'], ['organizations.id'], name=op.f('fk_batches_organization_id_organizations')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_batches')),
    sa.UniqueConstraint('number', name=op.f('uq_batches_number'))
    )
    with op.batch_alter_table('batches', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_batches_organization_id'), ['organization_id'], unique=False)

    op.create_table('certificates',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('number', sa.String(length=24), nullable=False),
    sa.Column('body_id', sa.Integer(), nullable=False),
    sa.Column('organization_id', sa.Integer(), nullable=False),
    sa.Column('holder', sa.String(length=200), nullable=False),
    sa.Column('producer', sa.String(length=200), nullable=True),
    sa.Column('kind', sa.String(length=12), nullable=False),
    sa.Column('category', sa.String(length=40), nullable=True),
    sa.Column('valid_from', sa.Date(), nullable=False),
    sa.Column('valid_until', sa.Date(), nullable=False),
    sa.Column('status', sa.String(length=12), nullable=False),
    sa.Column('status_since', sa.Date(), nullable=True),
    sa.Column('status_reason', sa.String(length=500), nullable=True),
    sa.Column('updated_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['body_id'], ['bodies.id'], name=op.f('fk_certificates_body_id_bodies')),
    sa.ForeignKeyConstraint(['organization_id'], ['organizations.id'], name=op.f('fk_certificates_organization_id_organizations')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_certificates')),
    sa.UniqueConstraint('number', name=op.f('uq_certificates_number'))
    )
    with op.batch_alter_table('certificates', schema=None) as batch_op:
        batch_op.create_index('ix_certificates_body_id', ['body_id'], unique=False)
        batch_op.create_index('ix_certificates_organization_id', ['organization_id'], unique=False)

    op.create_table('bq_codes',
    sa.Column('token', sa.String(length=32).with_variant(mysql.VARCHAR(charset='ascii', collation='ascii_bin', length=32), 'mariadb').with_variant(mysql.VARCHAR(charset='ascii', collation='ascii_bin', length=32), 'mysql'), nullable=False),
    sa.Column('batch_id', sa.Integer(), nullable=False),
    sa.Column('role', sa.String(length=1), nullable=False),
    sa.ForeignKeyConstraint(['batch_id'], ['batches.id'], name=op.f('fk_bq_codes_batch_id_batches')),
    sa.PrimaryKeyConstraint('token', name=op.f('pk_bq_codes'))
    )
    with op.batch_alter_table('bq_codes', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_bq_codes_batch_id'), ['batch_id'], unique=False)

    op.create_table('certificate_products',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('certificate_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('description', sa.String(length=1000), nullable=True),
    sa.Column('certified_tonnes', sa.Numeric(precision=14, scale=3), nullable=True),
    sa.ForeignKeyConstraint(['certificate_id'], ['certificates.id'], name=op.f('fk_certificate_products_certificate_id_certificates')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_certificate_products')),
    sa.UniqueConstraint('certificate_id', 'name', name=op.f('uq_certificate_products_certificate_id_name'))
    )
    op.create_table('certificate_status_history',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('certificate_id', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=12), nullable=False),
    sa.Column('reason', sa.String(length=500), nullable=True),
    sa.Column('effective_on', sa.Date(), nullable=True),
    sa.Column('changed_at', sa.DateTime(), nullable=False),
    sa.Column('changed_by', sa.String(length=80), nullable=True),
    sa.ForeignKeyConstraint(['certificate_id'], ['certificates.id'], name=op.f('fk_certificate_status_history_certificate_id_certificates')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_certificate_status_history'))
    )
    with op.batch_alter_table('certificate_status_history', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_certificate_status_history_certificate_id'), ['certificate_id'], unique=False)

    op.create_table('orders',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('number', sa.String(length=32), nullable=False),
    sa.Column('certificate_id', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=12), nullable=False),
    sa.Column('voided_at', sa.DateTime(), nullable=True),
    sa.Column('void_reason', sa.String(length=500), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['certificate_id'], ['certificates.id'], name=op.f('fk_orders_certificate_id_certificates')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_orders')),
    sa.UniqueConstraint('number', name=op.f('uq_orders_number'))
    )
    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_orders_certificate_id'), ['certificate_id'], unique=False)

    op.create_table('label_groups',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('certificate_id', sa.Integer(), nullable=False),
    sa.Column('product_id', sa.Integer(), nullable=False),
    sa.Column('order_id', sa.Integer(), server_default='0', nullable=False),
    sa.Column('package', sa.String(length=100), server_default='', nullable=False),
    sa.Column('label_spec', sa.String(length=100), server_default='', nullable=False),
    sa.ForeignKeyConstraint(['certificate_id'], ['certificates.id'], name=op.f('fk_label_groups_certificate_id_certificates')),
    sa.ForeignKeyConstraint(['product_id'], ['certificate_products.id'], name=op.f('fk_label_groups_product_id_certificate_products')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_label_groups')),
    sa.UniqueConstraint('certificate_id', 'product_id', 'order_id', 'package', 'label_spec', name=op.f('uq_label_groups_certificate_id_product_id_order_id_package_label_spec'))
    )


def downgrade() -> None:
    # Dropping a table drops its indexes; dropping an index first fails on MySQL when a
    # foreign key needs it, so drop whole tables, dependents first.
    op.drop_table('label_groups')
    op.drop_table('orders')
    op.drop_table('certificate_status_history')
    op.drop_table('certificate_products')
    op.drop_table('bq_codes')
    op.drop_table('certificates')
    op.drop_table('batches')
    op.drop_table('organizations')
    op.drop_table('organic_codes')
    op.drop_table('generations')
    op.drop_table('bodies')
    op.drop_table('api_tokens')
