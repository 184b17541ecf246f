"""The dashboard's Chinese catalog is complete and compiled: every message the code and
templates use has Chinese in the .po, and the committed .mo is that .po compiled (so a
checkout serves Chinese with no build step; `make i18n` refreshes both)."""

from __future__ import annotations

import io
from pathlib import Path

from babel.messages.extract import extract_from_dir
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

ROOT = Path(__file__).resolve().parents[2]
CATALOG = ROOT / "dashboard/translations/zh/LC_MESSAGES"
METHODS = [("dashboard/**.py", "python"), ("dashboard/templates/**.html", "jinja2")]
KEYWORDS = {"_": None, "gettext": None, "ngettext": (1, 2), "_l": None, "lazy_gettext": None}


def _po() -> object:
    with (CATALOG / "messages.po").open("rb") as fh:
        return read_po(fh, locale="zh")


def test_every_message_of_the_dashboard_has_chinese() -> None:
    catalog = _po()
    used = {
        message if isinstance(message, str) else message[0]
        for _file, _line, message, _comments, _context in extract_from_dir(
            str(ROOT), METHODS, keywords=KEYWORDS
        )
    }
    assert used, "no messages found: the extraction is wrong"
    translated = {m.id: m.string for m in catalog if m.id}  # type: ignore[attr-defined]
    assert sorted(m for m in used if not translated.get(m)) == []


def test_the_committed_mo_is_the_po_compiled() -> None:
    compiled = io.BytesIO()
    write_mo(compiled, _po())  # type: ignore[arg-type]
    assert (CATALOG / "messages.mo").read_bytes() == compiled.getvalue(), "run `make i18n`"
