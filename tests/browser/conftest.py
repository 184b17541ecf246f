"""What every browser test shares: Debian's chromium driven by Playwright (launched by path;
Playwright's own browser download cannot run here), and for the dashboard a served demo
app with accounts of each role and scope, and a tab that signs in.

BROWSER_SHOTS=<dir> keeps a screenshot of every page a test ends on for a person to look at.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from werkzeug.serving import make_server

from tests.conftest import _unavailable
from webapp import container
from webapp.demo import seed

CHROMIUM = "/usr/bin/chromium"
# Quiet on a closed network: no background fetches, no first-run, no sandbox as root.
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        _unavailable("Debian's chromium", FileNotFoundError(CHROMIUM))
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        yield launched
        launched.close()


# The demo's organizations (certificate holders): the copied demo code is the first's.
DEMO_ORG = "黑龙江龙泉有机农业有限公司"
OTHER_ORG = "吉林松原绿野米业有限公司"
PASSWORD = "correct horse battery"


@dataclass
class Dashboard:
    """A served demo app: its base URL, the demo's codes, and one account per role/scope."""

    base: str
    codes: dict[str, str]
    app: Flask
    logins: dict[str, str] = field(default_factory=dict)


@pytest.fixture
def dashboard(embedded_app: Flask) -> Iterator[Dashboard]:
    """The demo (with the copied code's scan history, so it has a flag) and accounts:
    `admin` (everything), `analyst` and `viewer` of the demo organization, `other` an
    analyst of another organization, `body` an analyst of the demo's certification body."""
    c = container(embedded_app)
    codes = seed(c.admin, date.today(), c.scan_admin)
    logins = {
        "admin": ("admin@example.com", "admin", "all", None),
        "analyst": ("analyst@example.com", "analyst", "organization", DEMO_ORG),
        "viewer": ("viewer@example.com", "viewer", "organization", DEMO_ORG),
        "other": ("other@example.com", "analyst", "organization", OTHER_ORG),
        "body": ("13800138000", "analyst", "body", "0123"),
    }
    for login, role, kind, target in logins.values():
        c.accounts.create_user(login, PASSWORD, role, kind, target)
    server = make_server("127.0.0.1", 0, embedded_app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield Dashboard(
            f"http://127.0.0.1:{server.server_port}",
            codes,
            embedded_app,
            {k: v[0] for k, v in logins.items()},
        )
    finally:
        server.shutdown()
        thread.join(5)


@pytest.fixture
def tab(browser: Any, request: pytest.FixtureRequest) -> Iterator[Any]:
    """A laptop-sized tab in a Chinese browser that notes console errors and CSP violations
    in `tab.problems` (a finished page has none)."""
    context = browser.new_context(locale="zh-CN", viewport={"width": 1280, "height": 800})
    page = context.new_page()
    page.problems = []
    page.on("console", lambda m: page.problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: page.problems.append(str(e)))
    yield page
    shoot(page, request.node.name)
    context.close()


def shoot(page: Any, name: str) -> None:
    shots = os.environ.get("BROWSER_SHOTS")
    if shots:
        Path(shots).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(shots) / f"{name}.png"), full_page=True)


def sign_in(page: Any, site: Dashboard, who: str, password: str = PASSWORD) -> None:
    """Sign in through the sign-in page as one of the fixture's accounts."""
    page.goto(site.base + "/dashboard/login")
    page.fill("#login", site.logins.get(who, who))
    page.fill("#password", password)
    page.click("form button[type=submit]")
    page.wait_for_load_state()
