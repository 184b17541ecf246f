"""The entrypoints' one way to their use cases: `services()`, the typed object the
composition root (webapp) keeps in `current_app.extensions`. Blueprints never import
the root (that was an import cycle: the root imports the blueprints to register them)."""

from __future__ import annotations

from typing import cast

from flask import current_app

from services.catalog import EXTENSION, Services


def services() -> Services:
    return cast(Services, current_app.extensions[EXTENSION])
