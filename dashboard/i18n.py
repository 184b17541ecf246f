"""Languages of the dashboard: Chinese by default, English on request (the switch in the
header keeps the choice in the session). Flask-Babel with gettext catalogs: the messages
are written in English in the templates and code, and dashboard/translations/zh holds
their Chinese. Both the .po (edited by hand: it is where the Chinese lives) and the compiled
.mo are committed, so a checkout serves Chinese with no build step; `make i18n`
re-extracts the messages into the .po and compiles it, and tests/unit/test_dashboard_i18n.py
fails when a message of the code has no Chinese or the .mo is not the .po compiled."""

from __future__ import annotations

from pathlib import Path

from flask import Flask, request, session
from flask_babel import Babel

LANGUAGES = {"zh": "中文", "en": "English"}
DEFAULT = "zh"
TRANSLATIONS = Path(__file__).resolve().parent / "translations"


def locale() -> str:
    if request.path.startswith("/dashboard"):
        chosen = session.get("lang")
        if chosen in LANGUAGES:
            return str(chosen)
    return DEFAULT


def init(app: Flask) -> None:
    Babel(
        app,
        locale_selector=locale,
        default_locale=DEFAULT,
        default_timezone="Asia/Shanghai",
        default_translation_directories=str(TRANSLATIONS),
    )
