"""The registry's tables (SQLAlchemy Core), one schema for MariaDB/MySQL and SQLite.

Organic codes are BIGINT primary keys (domain.codes.organic_key), not strings: 8 bytes
instead of 18+, and InnoDB clusters them. What every code of an order line shares
(certificate, product, package, label spec, order) lives once in `label_groups`.
BQ tokens use a binary collation on MySQL, whose default collation would make
`aB3x` equal `AB3X` (SQLite compares bytes already).
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects import mysql

metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

# A case-sensitive ASCII token column on MySQL/MariaDB; plain on SQLite.
Token = sa.String(32).with_variant(
    mysql.VARCHAR(32, charset="ascii", collation="ascii_bin"), "mysql", "mariadb"
)
Text = sa.Text().with_variant(mysql.MEDIUMTEXT(), "mysql", "mariadb")
Id = sa.Integer
BigKey = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

bodies = sa.Table(
    "bodies",
    metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("code", sa.String(4), nullable=False, unique=True),
    sa.Column("legacy_code", sa.String(3), nullable=True, unique=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("approval_number", sa.String(40), nullable=True),
    sa.Column("updated_at", sa.DateTime, nullable=False),
)

organizations = sa.Table(
    "organizations",
    metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(200), nullable=False, unique=True),
    # Wuchang (issue 17): the paddy-to-milled-rice yield its marks are capped with (None:
    # domain.grain.DEFAULT_MILLING_YIELD); set by the regulator.
    sa.Column("milling_yield", sa.Numeric(5, 4), nullable=True),
)

certificates = sa.Table(
    "certificates",
    metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("number", sa.String(24), nullable=False, unique=True),
    sa.Column("body_id", Id, sa.ForeignKey("bodies.id"), nullable=False),
    sa.Column("organization_id", Id, sa.ForeignKey("organizations.id"), nullable=False),
    sa.Column("holder", sa.String(200), nullable=False),
    sa.Column("producer", sa.String(200), nullable=True),
    sa.Column("kind", sa.String(12), nullable=False),
    sa.Column("category", sa.String(40), nullable=True),
    sa.Column("valid_from", sa.Date, nullable=False),
    sa.Column("valid_until", sa.Date, nullable=False),
    sa.Column("status", sa.String(12), nullable=False),
    sa.Column("status_since", sa.Date, nullable=True),
    sa.Column("status_reason", sa.String(500), nullable=True),
    sa.Column("updated_at", sa.DateTime, nullable=False),
    sa.Index("ix_certificates_body_id", "body_id"),
    sa.Index("ix_certificates_organization_id", "organization_id"),
)

certificate_status_history = sa.Table(
    "certificate_status_history",
    metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("certificate_id", Id, sa.ForeignKey("certificates.id"), nullable=False, index=True),
    sa.Column("status", sa.String(12), nullable=False),
    sa.Column("reason", sa.String(500), nullable=True),
    sa.Column("effective_on", sa.Date, nullable=True),
    sa.Column("changed_at", sa.DateTime, nullable=False),
    sa.Column("changed_by", sa.String(80), nullable=True),
)

certificate_products = sa.Table(
    "certificate_products",
    metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("certificate_id", Id, sa.ForeignKey("certificates.id"), nullable=False),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("description", sa.String(1000), nullable=True),
    sa.Column("certified_tonnes", sa.Numeric(14, 3), nullable=True),
    # Declared sales region: province or city names, comma-separated (NULL: none declared).
    sa.Column("sales_regions", sa.String(1000), nullable=True),
    # Grams consumed by submitted orders (quantity x package weight); see order_lines.
    sa.Column("used_g", BigKey, nullable=False, server_default="0"),
    sa.UniqueConstraint("certificate_id", "name"),
)

orders = sa.Table(
    "orders",
    metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("number", sa.String(32), nullable=False, unique=True),
    sa.Column("certificate_id", Id, sa.ForeignKey("certificates.id"), nullable=False, index=True),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("voided_at", sa.DateTime, nullable=True),
    sa.Column("void_reason", sa.String(500), nullable=True),
    sa.Column("created_at", sa.DateTime, nullable=False),
    # Orders placed through the issuance API (issue 17); NULL on orders made by a code import.
    sa.Column("organization_id", Id, nullable=True, index=True),
    sa.Column("applicant_code", sa.String(40), nullable=True),
    sa.Column("address", sa.String(300), nullable=True),
    sa.Column("postcode", sa.String(12), nullable=True),
    sa.Column("contact", sa.String(100), nullable=True),
    sa.Column("phone", sa.String(40), nullable=True),
    sa.Column("application", sa.String(8), nullable=True),  # affix | print (加贴 / 印制)
    sa.Column("submitted_at", sa.DateTime, nullable=True),
    sa.Column("allocated_at", sa.DateTime, nullable=True),
)

# order_id 0 means "no order": a unique key over a nullable column would let duplicates in.
label_groups = sa.Table(
    "label_groups",
    metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("certificate_id", Id, sa.ForeignKey("certificates.id"), nullable=False),
    sa.Column("product_id", Id, sa.ForeignKey("certificate_products.id"), nullable=False),
    sa.Column("order_id", Id, nullable=False, server_default="0"),
    sa.Column("package", sa.String(100), nullable=False, server_default=""),
    sa.Column("label_spec", sa.String(100), nullable=False, server_default=""),
    sa.UniqueConstraint("certificate_id", "product_id", "order_id", "package", "label_spec"),
)

organic_codes = sa.Table(
    "organic_codes",
    metadata,
    sa.Column("code", BigKey, primary_key=True, autoincrement=False),
    sa.Column("group_id", Id, nullable=False),
    sa.Column("issued_on", sa.Date, nullable=True),
    sa.Column("identity_code", sa.String(24), nullable=True),
    # Identity codes are found by value for printer imports, losses and use records (issue 17).
    sa.Index("ix_organic_codes_identity_code", "identity_code"),
    # A scope's codes, certificate by certificate (the flag queue's owner-first plan).
    sa.Index("ix_organic_codes_group_id", "group_id"),
)

batches = sa.Table(
    "batches",
    metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("number", sa.String(40), nullable=False, unique=True),
    sa.Column("organization_id", Id, sa.ForeignKey("organizations.id"), nullable=True, index=True),
    sa.Column("producer", sa.String(200), nullable=False),
    sa.Column("product", sa.String(200), nullable=False),
    sa.Column("net_content_kg", sa.Numeric(10, 3), nullable=True),
    sa.Column("trace", Text, nullable=True),
    sa.Column("activated_at", sa.DateTime, nullable=True),
    sa.Column("created_at", sa.DateTime, nullable=False),
)

bq_codes = sa.Table(
    "bq_codes",
    metadata,
    sa.Column("token", Token, primary_key=True),
    sa.Column("batch_id", Id, sa.ForeignKey("batches.id"), nullable=False, index=True),
    sa.Column("role", sa.String(1), nullable=False),
)

api_tokens = sa.Table(
    "api_tokens",
    metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("name", sa.String(100), nullable=False),
    sa.Column("scope_kind", sa.String(12), nullable=False),  # all | body | organization
    sa.Column("scope_id", Id, nullable=True),
    sa.Column("created_at", sa.DateTime, nullable=False),
    sa.Column("revoked_at", sa.DateTime, nullable=True),
    # NULL: never expires (only tokens created before expiry existed, or on request).
    sa.Column("expires_at", sa.DateTime, nullable=True),
    # Written at most once a minute per token, not on every request.
    sa.Column("last_used_at", sa.DateTime, nullable=True),
)

# Change counters for the embedded default, where no Redis carries them between processes.
generations = sa.Table(
    "generations",
    metadata,
    sa.Column("name", sa.String(20), primary_key=True),
    sa.Column("value", BigKey, nullable=False),
)

# -- scan intelligence (filled by the stream worker; see anomaly/) --------------------------

scan_events = sa.Table(
    "scan_events",
    metadata,
    sa.Column("event_id", sa.String(40), primary_key=True),
    sa.Column("code", Token, nullable=False),
    sa.Column("at", sa.DateTime, nullable=False),
    sa.Column("channel", sa.String(12), nullable=False),
    sa.Column("verdict", sa.String(24), nullable=False),
    sa.Column("client_hash", sa.String(40), nullable=True),
    sa.Column("ip_hash", sa.String(40), nullable=True),
    sa.Column("lat", sa.Float, nullable=True),
    sa.Column("lng", sa.Float, nullable=True),
    sa.Column("city", sa.String(40), nullable=True),
    sa.Column("province", sa.String(40), nullable=True),
    sa.Index("ix_scan_events_code_at", "code", "at"),
    sa.Index("ix_scan_events_at", "at"),
    sa.Index("ix_scan_events_client_hash", "client_hash"),
)

# Daily per-code counts kept after raw events (with their hashed personal data) are deleted.
scan_rollups = sa.Table(
    "scan_rollups",
    metadata,
    sa.Column("day", sa.Date, primary_key=True),
    sa.Column("code", Token, primary_key=True),
    sa.Column("scans", sa.Integer, nullable=False),
    sa.Column("scanners", sa.Integer, nullable=False),
    sa.Column("cities", sa.Integer, nullable=False),
)

flags = sa.Table(
    "flags",
    metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    # One row per (code, rule): a rule raised again updates its evidence and severity.
    sa.Column("code", Token, nullable=False),
    sa.Column("rule", sa.String(32), nullable=False),
    sa.Column("severity", sa.String(12), nullable=False),
    sa.Column("status", sa.String(12), nullable=False),
    sa.Column("raised_at", sa.DateTime, nullable=False),
    sa.Column("updated_at", sa.DateTime, nullable=False),
    sa.Column("evidence", Text, nullable=True),
    sa.Column("note", sa.String(1000), nullable=True),
    sa.Column("certificate_id", Id, nullable=True),
    sa.Column("body_id", Id, nullable=True),
    sa.Column("organization_id", Id, nullable=True),
    sa.UniqueConstraint("code", "rule"),
    sa.Index("ix_flags_raised_at", "raised_at"),
    # A rule's flags of one status, newest first (the flag queue's and exports' usual filter).
    sa.Index("ix_flags_rule_status_raised_at", "rule", "status", "raised_at"),
    sa.Index("ix_flags_body_id", "body_id"),
    sa.Index("ix_flags_organization_id", "organization_id"),
)

reports = sa.Table(
    "reports",
    metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("code", Token, nullable=False, index=True),
    sa.Column("client_hash", sa.String(40), nullable=True),
    sa.Column("text", sa.String(2000), nullable=True),
    sa.Column("shop", sa.String(200), nullable=True),
    sa.Column("photo", sa.LargeBinary().with_variant(mysql.MEDIUMBLOB(), "mysql", "mariadb"), nullable=True),
    sa.Column("photo_type", sa.String(40), nullable=True),
    sa.Column("city", sa.String(40), nullable=True),
    sa.Column("province", sa.String(40), nullable=True),
    sa.Column("created_at", sa.DateTime, nullable=False),
)

# Right to erasure: a shopper who deleted their history. Events of that scanner older than
# the erasure that reach the worker late (still in the stream) are dropped, not stored.
erasures = sa.Table(
    "erasures",
    metadata,
    sa.Column("client_hash", sa.String(40), primary_key=True),
    sa.Column("erased_at", sa.DateTime, nullable=False),
)

# -- the dashboard's aggregates (kept current by the scan worker; registry/aggregates.py) ------
# Each row counts for one scope: scope_kind "a" (everything; scope_id 0), "b" (a certification
# body) or "o" (an organization), the owner of the scanned or flagged code when it was
# written. `day` is China's calendar day. The dashboard reads these, never raw events.

_SCOPE = ("scope_kind", "scope_id", "day")


def _scoped(name: str, *columns: sa.Column[object], key: tuple[str, ...]) -> sa.Table:
    return sa.Table(
        name,
        metadata,
        sa.Column("scope_kind", sa.String(1), nullable=False),
        sa.Column("scope_id", Id, nullable=False, autoincrement=False),
        sa.Column("day", sa.Date, nullable=False),
        *columns,
        sa.PrimaryKeyConstraint(*_SCOPE, *key),
    )


agg_scans = _scoped(
    "agg_scans",
    sa.Column("verdict", sa.String(24), nullable=False),
    sa.Column("scans", sa.Integer, nullable=False),
    key=("verdict",),
)


# Scans with a place only; `suspicious` counts those answered `suspicious`. Kept per day
# and per month (`day` the month's first day): a year is 12 monthly rows per city, not 365.
def _places(name: str) -> sa.Table:
    return _scoped(
        name,
        sa.Column("province", sa.String(40), nullable=False),
        sa.Column("city", sa.String(40), nullable=False),
        sa.Column("scans", sa.Integer, nullable=False),
        sa.Column("suspicious", sa.Integer, nullable=False),
        key=("province", "city"),
    )


agg_places = _places("agg_places")
agg_places_month = _places("agg_places_month")

# Flags opened (a (code, rule) flag's first raising), by rule.
agg_flags = _scoped(
    "agg_flags",
    sa.Column("rule", sa.String(32), nullable=False),
    sa.Column("flags", sa.Integer, nullable=False),
    key=("rule",),
)


# Flags opened by what they are about: a certificate product (organic codes) or a batch (BQ
# codes); 0 where none. Per day and per month, as places are.
def _flag_targets(name: str) -> sa.Table:
    return _scoped(
        name,
        sa.Column("certificate_id", Id, nullable=False, autoincrement=False),
        sa.Column("product_id", Id, nullable=False, autoincrement=False),
        sa.Column("batch_id", Id, nullable=False, autoincrement=False),
        sa.Column("flags", sa.Integer, nullable=False),
        key=("certificate_id", "product_id", "batch_id"),
    )


agg_flag_targets = _flag_targets("agg_flag_targets")
agg_flag_targets_month = _flag_targets("agg_flag_targets_month")

# Organic codes seen in a genuine scan (the over-quantity gauge counts each once), and per
# certificate product their count and weight: `kg` sums the package weight of the
# `weighed_codes` whose package names one (domain.records.parse_package_kg).
seen_codes = sa.Table(
    "seen_codes",
    metadata,
    sa.Column("code", BigKey, primary_key=True, autoincrement=False),
    sa.Column("group_id", Id, nullable=False),
    sa.Column("first_at", sa.DateTime, nullable=False),
)

agg_product_seen = sa.Table(
    "agg_product_seen",
    metadata,
    sa.Column("product_id", Id, primary_key=True, autoincrement=False),
    sa.Column("codes", sa.Integer, nullable=False),
    sa.Column("weighed_codes", sa.Integer, nullable=False),
    sa.Column("kg", sa.Float, nullable=False),
)

# -- webhook alerts (domain/alerts.py; registry/alerts.py) ----------------------------------

webhooks = sa.Table(
    "webhooks",
    metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("organization_id", Id, sa.ForeignKey("organizations.id"), nullable=False, index=True),
    sa.Column("url", sa.String(2000), nullable=False),
    # Kept to sign each body (HMAC needs the key itself); shown to its owner once.
    sa.Column("secret", sa.String(255), nullable=False),
    # Flag rules, comma-separated; empty: every rule.
    sa.Column("rules", sa.String(400), nullable=False, server_default=""),
    sa.Column("min_severity", sa.String(12), nullable=False),
    sa.Column("active", sa.Boolean, nullable=False, server_default=sa.true()),
    sa.Column("description", sa.String(200), nullable=False, server_default=""),
    sa.Column("created_at", sa.DateTime, nullable=False),
    sa.Column("updated_at", sa.DateTime, nullable=False),
)

# The outbox: one row per (event, webhook), written in the transaction that writes the
# flag, so an alert is never lost nor sent for a flag that was rolled back. The worker
# delivers rows whose next_attempt_at has come; the body is stored as sent (every retry
# sends the same bytes, signature and idempotency key).
webhook_outbox = sa.Table(
    "webhook_outbox",
    metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("event_id", sa.String(36), nullable=False, unique=True),
    sa.Column("webhook_id", Id, sa.ForeignKey("webhooks.id"), nullable=False, index=True),
    sa.Column("flag_id", Id, nullable=False),
    sa.Column("event", sa.String(20), nullable=False),
    sa.Column("body", Text, nullable=False),
    sa.Column("status", sa.String(12), nullable=False),  # pending | delivered | failed
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("next_attempt_at", sa.DateTime, nullable=False),
    sa.Column("created_at", sa.DateTime, nullable=False),
    sa.Column("delivered_at", sa.DateTime, nullable=True),
    sa.Column("last_status", sa.Integer, nullable=True),
    sa.Column("last_error", sa.String(300), nullable=True),
    sa.Index("ix_webhook_outbox_status_next", "status", "next_attempt_at"),
)

# The delivery log: every try of every outbox row, with the receiver's answer.
webhook_attempts = sa.Table(
    "webhook_attempts",
    metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("outbox_id", Id, sa.ForeignKey("webhook_outbox.id"), nullable=False, index=True),
    sa.Column("webhook_id", Id, nullable=False),
    sa.Column("attempt", sa.Integer, nullable=False),
    sa.Column("at", sa.DateTime, nullable=False),
    sa.Column("status_code", sa.Integer, nullable=True),
    sa.Column("error", sa.String(300), nullable=True),
    sa.Column("duration_ms", sa.Integer, nullable=False),
    sa.Index("ix_webhook_attempts_webhook_id_at", "webhook_id", "at"),
)

# -- dashboard people (issue 16) ------------------------------------------------------------

# People who sign in to the dashboard: one role and one scope each, the scopes of admin
# tokens (all | body | organization + scope_id). `login` is an email address or a phone
# number, stored lower-cased. An invited account has no password until its invitee sets
# one through the invite link (only the link's hash is kept, with its expiry).
users = sa.Table(
    "users",
    metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("login", sa.String(254), nullable=False, unique=True),
    sa.Column("name", sa.String(100), nullable=False, server_default=""),
    sa.Column("password_hash", sa.String(255), nullable=True),
    sa.Column("role", sa.String(12), nullable=False),  # viewer | analyst | admin
    sa.Column("scope_kind", sa.String(12), nullable=False),  # all | body | organization
    sa.Column("scope_id", Id, nullable=True),
    sa.Column("created_at", sa.DateTime, nullable=False),
    sa.Column("created_by", Id, nullable=True),
    sa.Column("disabled_at", sa.DateTime, nullable=True),
    sa.Column("invite_hash", sa.String(64), nullable=True, unique=True),
    sa.Column("invite_expires_at", sa.DateTime, nullable=True),
    sa.Column("last_sign_in_at", sa.DateTime, nullable=True),
    sa.Index("ix_users_scope_kind_scope_id", "scope_kind", "scope_id"),
)

# Every review and settings change: who (a user, a token or the CLI), when, what (action and
# target), the state before and after (JSON), and whose data it touched (body and
# organization of the target, so each scope reads the entries about its own data).
audit_log = sa.Table(
    "audit_log",
    metadata,
    sa.Column("id", BigKey, primary_key=True, autoincrement=True),
    sa.Column("at", sa.DateTime, nullable=False),
    sa.Column("actor_kind", sa.String(8), nullable=False),  # user | token | cli
    sa.Column("actor_id", Id, nullable=True),
    sa.Column("actor_name", sa.String(254), nullable=False),
    sa.Column("scope_kind", sa.String(12), nullable=False),
    sa.Column("scope_id", Id, nullable=True),
    sa.Column("action", sa.String(40), nullable=False),
    sa.Column("target", sa.String(80), nullable=False),
    sa.Column("before", Text, nullable=True),
    sa.Column("after", Text, nullable=True),
    sa.Column("body_id", Id, nullable=True),
    sa.Column("organization_id", Id, nullable=True),
    sa.Index("ix_audit_log_at", "at"),
    sa.Index("ix_audit_log_body_id_at", "body_id", "at"),
    sa.Index("ix_audit_log_organization_id_at", "organization_id", "at"),
)

# -- issuance: product specs, label orders, their lines and history (issue 17) -------------
# Quantities are kept in grams (integers): a line consumes quantity x package weight, and
# `certificate_products.used_g` is compared with `certified_tonnes` x 1,000,000 inside one
# conditional UPDATE, which is what makes concurrent submissions unable to overdraw.

product_specs = sa.Table(
    "product_specs",
    metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("organization_id", Id, sa.ForeignKey("organizations.id"), nullable=False, index=True),
    sa.Column("product_id", Id, sa.ForeignKey("certificate_products.id"), nullable=False),
    sa.Column("trade_name", sa.String(200), nullable=False),
    sa.Column("package_spec", sa.String(100), nullable=False),
    sa.Column("weight_kg", sa.Numeric(10, 3), nullable=False),
    sa.Column("label_spec", sa.String(100), nullable=False),
    sa.Column("updated_at", sa.DateTime, nullable=False),
    sa.UniqueConstraint("product_id", "trade_name", "package_spec", "label_spec"),
)

spec_photos = sa.Table(
    "spec_photos",
    metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("spec_id", Id, sa.ForeignKey("product_specs.id"), nullable=False),
    sa.Column("content_type", sa.String(40), nullable=False),
    sa.Column("sha256", sa.String(64), nullable=False),
    sa.Column("data", sa.LargeBinary().with_variant(mysql.MEDIUMBLOB(), "mysql", "mariadb"), nullable=False),
    sa.Column("created_at", sa.DateTime, nullable=False),
    sa.UniqueConstraint("spec_id", "sha256"),
)

order_lines = sa.Table(
    "order_lines",
    metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("order_id", Id, sa.ForeignKey("orders.id"), nullable=False),
    sa.Column("n", sa.Integer, nullable=False),
    sa.Column("spec_id", Id, sa.ForeignKey("product_specs.id"), nullable=False),
    sa.Column("product_id", Id, sa.ForeignKey("certificate_products.id"), nullable=False),
    sa.Column("label_spec", sa.String(100), nullable=False),
    sa.Column("quantity", sa.Integer, nullable=False),
    sa.Column("unit_price", sa.Numeric(12, 4), nullable=False),
    sa.Column("weight_g", BigKey, nullable=False),
    # After allocation: the label group its codes are in and its identity-code segment,
    # unique per body (`body_id`): a segment is never handed out twice.
    sa.Column("group_id", Id, nullable=True, index=True),
    sa.Column("body_id", Id, nullable=True),
    sa.Column("identity_start", BigKey, nullable=True),
    sa.Column("identity_end", BigKey, nullable=True),
    sa.Column("codes_from", sa.String(12), nullable=True),  # generated | printer
    # Generated codes written so far, from identity_start on: an interrupted generation
    # resumes there (no scan of organic_codes to find what is missing).
    sa.Column("codes_written", sa.Integer, nullable=False, server_default="0"),
    sa.UniqueConstraint("order_id", "n"),
    sa.UniqueConstraint("body_id", "identity_start"),
)

order_history = sa.Table(
    "order_history",
    metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("order_id", Id, sa.ForeignKey("orders.id"), nullable=False, index=True),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("reason", sa.String(1000), nullable=True),
    sa.Column("details", Text, nullable=True),
    sa.Column("changed_at", sa.DateTime, nullable=False),
    sa.Column("changed_by", sa.String(80), nullable=True),
)

order_attachments = sa.Table(
    "order_attachments",
    metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("order_id", Id, sa.ForeignKey("orders.id"), nullable=False),
    sa.Column("kind", sa.String(20), nullable=False),
    sa.Column("content_type", sa.String(40), nullable=False),
    sa.Column("sha256", sa.String(64), nullable=False),
    sa.Column("data", sa.LargeBinary().with_variant(mysql.MEDIUMBLOB(), "mysql", "mariadb"), nullable=False),
    sa.Column("created_at", sa.DateTime, nullable=False),
    sa.UniqueConstraint("order_id", "sha256"),
)

# Identity codes lost in printing (印制损耗): their organic codes are moved to the order's
# loss group (a voided order `<number>-L`), so they verify `voided`.
printing_losses = sa.Table(
    "printing_losses",
    metadata,
    sa.Column("order_id", Id, sa.ForeignKey("orders.id"), primary_key=True, autoincrement=False),
    sa.Column("identity", BigKey, primary_key=True, autoincrement=False),
    sa.Column("recorded_at", sa.DateTime, nullable=False),
)

# Labels taken into use (领用) from an allocated order line: a contiguous identity range,
# with the batch, who took them and when. Rolling back (回退) deletes the record, and the
# labels are in stock again.
label_uses = sa.Table(
    "label_uses",
    metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("order_id", Id, sa.ForeignKey("orders.id"), nullable=False, index=True),
    sa.Column("line_id", Id, sa.ForeignKey("order_lines.id"), nullable=False),
    sa.Column("first_identity", BigKey, nullable=False),
    sa.Column("last_identity", BigKey, nullable=False),
    sa.Column("batch", sa.String(60), nullable=False),
    sa.Column("person", sa.String(60), nullable=False),
    sa.Column("used_on", sa.Date, nullable=False),
    sa.Column("created_at", sa.DateTime, nullable=False),
    sa.Column("created_by", sa.String(80), nullable=True),
)

# Wuchang rice (seed 002, issue 17): a company's raw-grain purchase ledger (企业原粮收购台账),
# one row per purchase, idempotent by the company's own reference. Its total, times the
# milling yield, caps the rice its BQ marks may go on (total-quantity control).
grain_purchases = sa.Table(
    "grain_purchases",
    metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("organization_id", Id, sa.ForeignKey("organizations.id"), nullable=False),
    sa.Column("reference", sa.String(60), nullable=False),
    sa.Column("purchased_on", sa.Date, nullable=False),
    sa.Column("supplier", sa.String(200), nullable=False),
    sa.Column("quantity_g", BigKey, nullable=False),
    sa.Column("updated_at", sa.DateTime, nullable=False),
    sa.Column("updated_by", sa.String(80), nullable=True),
    sa.UniqueConstraint("organization_id", "reference"),
)

# The purchases a batch's grain came from: the first link of the traceability chain.
batch_purchases = sa.Table(
    "batch_purchases",
    metadata,
    sa.Column("batch_id", Id, sa.ForeignKey("batches.id"), primary_key=True, autoincrement=False),
    sa.Column("purchase_id", Id, sa.ForeignKey("grain_purchases.id"), primary_key=True, autoincrement=False),
)

# A batch's inspection report (检验报告), uploaded before the regulator may activate it;
# one per batch (a new upload replaces it).
batch_inspections = sa.Table(
    "batch_inspections",
    metadata,
    sa.Column("batch_id", Id, sa.ForeignKey("batches.id"), primary_key=True, autoincrement=False),
    sa.Column("report_number", sa.String(60), nullable=False),
    sa.Column("laboratory", sa.String(200), nullable=False),
    sa.Column("result", sa.String(8), nullable=False),  # pass | fail
    sa.Column("inspected_on", sa.Date, nullable=False),
    sa.Column("content_type", sa.String(40), nullable=False),
    sa.Column("sha256", sa.String(64), nullable=False),
    sa.Column("data", sa.LargeBinary().with_variant(mysql.MEDIUMBLOB(), "mysql", "mariadb"), nullable=False),
    sa.Column("uploaded_at", sa.DateTime, nullable=False),
    sa.Column("uploaded_by", sa.String(80), nullable=True),
)
