"""Every Alembic migration goes up and down on MariaDB and SQLite, and head matches the models."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from registry.engine import downgrade, make_engine, upgrade
from registry.schema import metadata


@pytest.fixture(params=["sqlite", "mariadb"])
def engine(request: pytest.FixtureRequest) -> sa.Engine:
    url = request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "mysql_db")
    return make_engine(url)


def test_upgrade_downgrade_upgrade_round_trip(engine: sa.Engine) -> None:
    upgrade(engine)
    tables = set(sa.inspect(engine).get_table_names())
    assert {"organic_codes", "certificates", "bq_codes", "api_tokens"} <= tables
    downgrade(engine, "base")
    assert set(sa.inspect(engine).get_table_names()) <= {"alembic_version"}
    upgrade(engine)
    assert set(sa.inspect(engine).get_table_names()) == tables


def test_head_matches_the_schema_models(engine: sa.Engine) -> None:
    upgrade(engine)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    assert diff == []


def test_bq_tokens_compare_case_sensitively_on_every_backend(engine: sa.Engine) -> None:
    upgrade(engine)
    from registry import schema as t

    with engine.begin() as conn:
        conn.execute(t.organizations.insert().values(name="o"))
        conn.execute(
            t.batches.insert().values(number="B1", producer="p", product="r", created_at=sa.func.now())
        )
        batch_id = conn.execute(sa.select(t.batches.c.id)).scalar_one()
        conn.execute(
            t.bq_codes.insert(),
            [
                {"token": "aB3xYZ12", "batch_id": batch_id, "role": "a"},
                {"token": "AB3XYZ12", "batch_id": batch_id, "role": "b"},
            ],
        )
        found = conn.execute(sa.select(t.bq_codes.c.role).where(t.bq_codes.c.token == "AB3XYZ12")).all()
    assert [r.role for r in found] == ["b"]


def test_downgrading_token_expiry_revokes_the_tokens_already_expired(engine: sa.Engine) -> None:
    # Before 0005 nothing knew of expiry: an expired token kept would work again.
    upgrade(engine)
    from registry import schema as t

    now = datetime.now(UTC).replace(tzinfo=None, microsecond=0)
    common = {"scope_kind": "all", "created_at": now - timedelta(days=400)}
    with engine.begin() as conn:
        conn.execute(
            t.api_tokens.insert(),
            [
                {**common, "token_hash": "e" * 64, "name": "expired", "expires_at": now - timedelta(days=1)},
                {**common, "token_hash": "l" * 64, "name": "live", "expires_at": now + timedelta(days=30)},
                {**common, "token_hash": "n" * 64, "name": "never", "expires_at": None},
            ],
        )
    downgrade(engine, "0004")
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT name, revoked_at FROM api_tokens ORDER BY name")).all()
    assert {r.name: r.revoked_at is not None for r in rows} == {
        "expired": True,
        "live": False,
        "never": False,
    }
