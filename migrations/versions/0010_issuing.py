"""issuance: product specs, label orders with lines, history, attachments, printing losses

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03 06:30:00
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

Blob = sa.LargeBinary().with_variant(mysql.MEDIUMBLOB(), "mysql", "mariadb")
Text = sa.Text().with_variant(mysql.MEDIUMTEXT(), "mysql", "mariadb")
BigKey = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_index("ix_organic_codes_identity_code", "organic_codes", ["identity_code"])
    with op.batch_alter_table("certificate_products") as batch:
        batch.add_column(sa.Column("used_g", BigKey, nullable=False, server_default="0"))
    with op.batch_alter_table("orders") as batch:
        batch.alter_column(
            "status", existing_type=sa.String(12), type_=sa.String(20), existing_nullable=False
        )
        batch.add_column(sa.Column("organization_id", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("applicant_code", sa.String(40), nullable=True))
        batch.add_column(sa.Column("address", sa.String(300), nullable=True))
        batch.add_column(sa.Column("postcode", sa.String(12), nullable=True))
        batch.add_column(sa.Column("contact", sa.String(100), nullable=True))
        batch.add_column(sa.Column("phone", sa.String(40), nullable=True))
        batch.add_column(sa.Column("application", sa.String(8), nullable=True))
        batch.add_column(sa.Column("submitted_at", sa.DateTime(), nullable=True))
        batch.add_column(sa.Column("allocated_at", sa.DateTime(), nullable=True))
        batch.create_index("ix_orders_organization_id", ["organization_id"])
    op.create_table(
        "product_specs",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("organization_id", sa.Integer(), nullable=False),
        sa.Column("product_id", sa.Integer(), nullable=False),
        sa.Column("trade_name", sa.String(200), nullable=False),
        sa.Column("package_spec", sa.String(100), nullable=False),
        sa.Column("weight_kg", sa.Numeric(10, 3), nullable=False),
        sa.Column("label_spec", sa.String(100), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["organization_id"], ["organizations.id"], name="fk_product_specs_organization_id_organizations"
        ),
        sa.ForeignKeyConstraint(
            ["product_id"],
            ["certificate_products.id"],
            name="fk_product_specs_product_id_certificate_products",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_product_specs"),
        sa.UniqueConstraint(
            "product_id",
            "trade_name",
            "package_spec",
            "label_spec",
            name="uq_product_specs_product_id_trade_name_package_spec_label_spec",
        ),
    )
    op.create_index("ix_product_specs_organization_id", "product_specs", ["organization_id"])
    op.create_table(
        "spec_photos",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("spec_id", sa.Integer(), nullable=False),
        sa.Column("content_type", sa.String(40), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("data", Blob, nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["spec_id"], ["product_specs.id"], name="fk_spec_photos_spec_id_product_specs"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_spec_photos"),
        sa.UniqueConstraint("spec_id", "sha256", name="uq_spec_photos_spec_id_sha256"),
    )
    op.create_table(
        "order_lines",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("order_id", sa.Integer(), nullable=False),
        sa.Column("n", sa.Integer(), nullable=False),
        sa.Column("spec_id", sa.Integer(), nullable=False),
        sa.Column("product_id", sa.Integer(), nullable=False),
        sa.Column("label_spec", sa.String(100), nullable=False),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.Column("unit_price", sa.Numeric(12, 4), nullable=False),
        sa.Column("weight_g", BigKey, nullable=False),
        sa.Column("group_id", sa.Integer(), nullable=True),
        sa.Column("body_id", sa.Integer(), nullable=True),
        sa.Column("identity_start", BigKey, nullable=True),
        sa.Column("identity_end", BigKey, nullable=True),
        sa.Column("codes_from", sa.String(12), nullable=True),
        sa.Column("codes_written", sa.Integer(), nullable=False, server_default="0"),
        sa.ForeignKeyConstraint(["order_id"], ["orders.id"], name="fk_order_lines_order_id_orders"),
        sa.ForeignKeyConstraint(
            ["spec_id"], ["product_specs.id"], name="fk_order_lines_spec_id_product_specs"
        ),
        sa.ForeignKeyConstraint(
            ["product_id"], ["certificate_products.id"], name="fk_order_lines_product_id_certificate_products"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_order_lines"),
        sa.UniqueConstraint("order_id", "n", name="uq_order_lines_order_id_n"),
        sa.UniqueConstraint("body_id", "identity_start", name="uq_order_lines_body_id_identity_start"),
    )
    op.create_table(
        "order_history",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("order_id", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("reason", sa.String(1000), nullable=True),
        sa.Column("details", Text, nullable=True),
        sa.Column("changed_at", sa.DateTime(), nullable=False),
        sa.Column("changed_by", sa.String(80), nullable=True),
        sa.ForeignKeyConstraint(["order_id"], ["orders.id"], name="fk_order_history_order_id_orders"),
        sa.PrimaryKeyConstraint("id", name="pk_order_history"),
    )
    op.create_index("ix_order_history_order_id", "order_history", ["order_id"])
    op.create_table(
        "order_attachments",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("order_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("content_type", sa.String(40), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("data", Blob, nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["order_id"], ["orders.id"], name="fk_order_attachments_order_id_orders"),
        sa.PrimaryKeyConstraint("id", name="pk_order_attachments"),
        sa.UniqueConstraint("order_id", "sha256", name="uq_order_attachments_order_id_sha256"),
    )
    op.create_table(
        "printing_losses",
        sa.Column("order_id", sa.Integer(), nullable=False, autoincrement=False),
        sa.Column("identity", BigKey, nullable=False, autoincrement=False),
        sa.Column("recorded_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["order_id"], ["orders.id"], name="fk_printing_losses_order_id_orders"),
        sa.PrimaryKeyConstraint("order_id", "identity", name="pk_printing_losses"),
    )


def downgrade() -> None:
    for table in ("printing_losses", "order_attachments", "order_history", "order_lines", "spec_photos"):
        op.drop_table(table)
    op.drop_table("product_specs")  # its index goes with it (MariaDB needs it for the key)
    with op.batch_alter_table("orders") as batch:
        batch.drop_index("ix_orders_organization_id")
        for column in (
            "allocated_at",
            "submitted_at",
            "application",
            "phone",
            "contact",
            "postcode",
            "address",
            "applicant_code",
            "organization_id",
        ):
            batch.drop_column(column)
        # Statuses longer than the old column (auto_approved, manually_rejected, ...) would
        # not fit: orders of the issuance workflow are gone with their lines above.
        batch.alter_column(
            "status", existing_type=sa.String(20), type_=sa.String(12), existing_nullable=False
        )
    with op.batch_alter_table("certificate_products") as batch:
        batch.drop_column("used_g")
    op.drop_index("ix_organic_codes_identity_code", table_name="organic_codes")
