"""The shopper's pages in a real browser: Debian's chromium driven by Playwright (launched
by path; Playwright's own browser download cannot run here). The app is served by a real
HTTP server in a thread, on the embedded deployment with the demo data.

BROWSER_SHOTS=<dir> keeps a screenshot of every page for a person to look at.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
from flask import Flask
from werkzeug.serving import make_server

from services.demo import seed
from tests.conftest import _unavailable
from webapp import container

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
def browser() -> Iterator[object]:
    if not Path(CHROMIUM).exists():
        _unavailable("Debian's chromium", FileNotFoundError(CHROMIUM))
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        yield launched
        launched.close()


@pytest.fixture
def site(embedded_app: Flask) -> Iterator[tuple[str, dict[str, str]]]:
    codes = seed(container(embedded_app).admin, date.today())
    server = make_server("127.0.0.1", 0, embedded_app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}", codes
    finally:
        server.shutdown()
        thread.join(5)


@pytest.fixture
def page(browser, request: pytest.FixtureRequest):  # type: ignore[no-untyped-def]
    context = browser.new_context(locale="zh-CN", viewport={"width": 390, "height": 844})
    tab = context.new_page()
    tab.problems = []  # console errors and CSP violations: a finished page has none
    tab.on("console", lambda m: tab.problems.append(m.text) if m.type == "error" else None)
    tab.on("pageerror", lambda e: tab.problems.append(str(e)))
    yield tab
    shots = os.environ.get("BROWSER_SHOTS")
    if shots:
        Path(shots).mkdir(parents=True, exist_ok=True)
        tab.screenshot(path=str(Path(shots) / f"{request.node.name}.png"), full_page=True)
    context.close()


def test_a_shopper_types_a_code_and_sees_it_genuine_with_this_check_counted(page, site) -> None:  # type: ignore[no-untyped-def]
    base, codes = site
    page.goto(base + "/")
    page.fill("input[name=code]", codes["genuine"])
    page.click("button[type=submit]")
    page.wait_for_url(f"**/c/{codes['genuine']}")
    assert "真品" in page.inner_text(".badge")
    # The page's own script records the visit and rewrites the history line: it ran.
    page.wait_for_function("document.getElementById('scans').textContent.includes('1 次')")
    assert page.problems == []


def test_a_voided_code_reads_as_voided(page, site) -> None:  # type: ignore[no-untyped-def]
    base, codes = site
    page.goto(f"{base}/c/{codes['voided']}")
    assert "已作废" in page.inner_text(".badge")
    page.wait_for_function("document.getElementById('scans').textContent.includes('次')")
    assert page.problems == []


def test_the_api_docs_render_every_operation_from_local_assets(page, site) -> None:  # type: ignore[no-untyped-def]
    base, _ = site
    external: list[str] = []
    page.on("request", lambda r: None if r.url.startswith(base) else external.append(r.url))
    page.goto(base + "/docs")
    page.wait_for_selector(".opblock-summary-path")
    assert page.locator(".opblock").count() > 10
    assert external == []  # no CDN: nothing outside this server is fetched
    assert page.problems == []
