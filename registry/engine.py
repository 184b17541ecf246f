"""Building the SQLAlchemy engine and bringing the schema to head with Alembic."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import sqlalchemy as sa

if TYPE_CHECKING:
    from alembic.config import Config

_ROOT = Path(__file__).resolve().parent.parent


def make_lookup_engine(url: str) -> sa.Engine:
    """The verify path's pool for single-row lookups: autocommit, so nothing to roll back on
    return, and no ping before use (a dead connection is retried once by the caller)."""
    if url.startswith("sqlite"):
        return make_engine(url)
    return sa.create_engine(
        url,
        isolation_level="AUTOCOMMIT",
        pool_reset_on_return=None,
        pool_pre_ping=False,
        pool_recycle=1800,
        pool_size=5,
        max_overflow=5,
        pool_timeout=2,
        connect_args={"connect_timeout": 2, "read_timeout": 5, "write_timeout": 5, "charset": "utf8mb4"},
    )


def make_engine(url: str, *, statement_timeout_s: int = 10) -> sa.Engine:
    """An engine with bounded timeouts: a stuck database must not hold a worker for minutes.
    A batch job whose statements run for minutes (`flask aggregates rebuild`) asks for more."""
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(url, connect_args={"check_same_thread": False, "timeout": 5})

        @sa.event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn, _record) -> None:
            cur = dbapi_conn.cursor()
            # WAL lets readers in other worker processes proceed while an import writes.
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        return engine
    return sa.create_engine(
        url,
        pool_pre_ping=True,
        pool_recycle=1800,
        pool_size=5,
        max_overflow=5,
        pool_timeout=2,
        connect_args={
            "connect_timeout": 2,
            "read_timeout": statement_timeout_s,
            "write_timeout": statement_timeout_s,
            "charset": "utf8mb4",
            "local_infile": True,
        },
    )


def alembic_config(engine: sa.Engine) -> Config:
    # Alembic is imported where it runs: ~0.08 s of a start that only migrates once (the
    # master's), not in every worker and CLI command.
    from alembic.config import Config

    cfg = Config(str(_ROOT / "alembic.ini"))
    cfg.set_main_option("script_location", str(_ROOT / "migrations"))
    cfg.set_main_option("sqlalchemy.url", engine.url.render_as_string(hide_password=False).replace("%", "%%"))
    return cfg


def upgrade(engine: sa.Engine, revision: str = "head") -> None:
    """Migrate to `revision`; on MySQL under a named lock so workers starting together do not race."""
    cfg = alembic_config(engine)
    with engine.connect() as conn:
        locked = engine.dialect.name in ("mysql", "mariadb")
        # The lock is the database's own: test runs migrate many databases on one server at
        # once, and one server-wide name made them queue (and time out) behind each other.
        lock = f"verify_migrate:{engine.url.database}"[:64]
        if locked:
            conn.execute(sa.text("SELECT GET_LOCK(:name, 60)"), {"name": lock})
        try:
            cfg.attributes["connection"] = conn
            from alembic import command

            command.upgrade(cfg, revision)
            conn.commit()
        finally:
            if locked:
                conn.execute(sa.text("SELECT RELEASE_LOCK(:name)"), {"name": lock})


def downgrade(engine: sa.Engine, revision: str) -> None:
    cfg = alembic_config(engine)
    with engine.connect() as conn:
        cfg.attributes["connection"] = conn
        from alembic import command

        command.downgrade(cfg, revision)
        conn.commit()
