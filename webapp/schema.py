"""The one place the schema is migrated (Alembic, migrations/). Run by gunicorn's master
before any worker starts (gunicorn.conf.py on_starting), by `flask --app wsgi db upgrade`,
and by `create_app(settings, migrate=True)` (tests, scripts); never by a worker or by
another CLI command."""

from __future__ import annotations

from typing import Any

from registry.engine import upgrade


def migrate(engine: Any, revision: str = "head") -> None:
    upgrade(engine, revision)
