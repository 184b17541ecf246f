"""dashboard users and the audit log

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03 06:10:00
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

Text = sa.Text().with_variant(mysql.MEDIUMTEXT(), "mysql", "mariadb")
BigKey = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("login", sa.String(254), nullable=False),
        sa.Column("name", sa.String(100), nullable=False, server_default=""),
        sa.Column("password_hash", sa.String(255), nullable=True),
        sa.Column("role", sa.String(12), nullable=False),
        sa.Column("scope_kind", sa.String(12), nullable=False),
        sa.Column("scope_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("created_by", sa.Integer(), nullable=True),
        sa.Column("disabled_at", sa.DateTime(), nullable=True),
        sa.Column("invite_hash", sa.String(64), nullable=True),
        sa.Column("invite_expires_at", sa.DateTime(), nullable=True),
        sa.Column("last_sign_in_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_users"),
        sa.UniqueConstraint("login", name="uq_users_login"),
        sa.UniqueConstraint("invite_hash", name="uq_users_invite_hash"),
    )
    op.create_index("ix_users_scope_kind_scope_id", "users", ["scope_kind", "scope_id"])
    op.create_table(
        "audit_log",
        sa.Column("id", BigKey, primary_key=True, autoincrement=True),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.Column("actor_kind", sa.String(8), nullable=False),
        sa.Column("actor_id", sa.Integer(), nullable=True),
        sa.Column("actor_name", sa.String(254), nullable=False),
        sa.Column("scope_kind", sa.String(12), nullable=False),
        sa.Column("scope_id", sa.Integer(), nullable=True),
        sa.Column("action", sa.String(40), nullable=False),
        sa.Column("target", sa.String(80), nullable=False),
        sa.Column("before", Text, nullable=True),
        sa.Column("after", Text, nullable=True),
        sa.Column("body_id", sa.Integer(), nullable=True),
        sa.Column("organization_id", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_audit_log"),
    )
    op.create_index("ix_audit_log_at", "audit_log", ["at"])
    op.create_index("ix_audit_log_body_id_at", "audit_log", ["body_id", "at"])
    op.create_index("ix_audit_log_organization_id_at", "audit_log", ["organization_id", "at"])


def downgrade() -> None:
    op.drop_table("audit_log")
    op.drop_table("users")
