"""The composition root, alone: settings, create_app, the adapter builders, the CLI, the
bulk writer, the rate-limit storage and the logs. Everything below it is imported by it;
nothing imports it (import-linter's layers contract in pyproject.toml)."""

from webapp.app import create_app, warm
from webapp.settings import Settings, SettingsError
from webapp.wiring import container

__all__ = ["Settings", "SettingsError", "container", "create_app", "warm"]
