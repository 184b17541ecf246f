"""Security headers on every answer (Content-Security-Policy, X-Frame-Options,
X-Content-Type-Options), pages whose own scripts and styles live in files the policy
allows, and an X-Request-Id echoed only when it looks like an id.

That the pages still work under the policy (scripts run, Swagger UI renders, no CSP
violation in the console) is tested in a real browser by tests/browser/test_pages.py;
here a browser also shows the policy refusing an inline script."""

from __future__ import annotations

import re
import threading
from datetime import date
from pathlib import Path

import pytest
from flask import Flask
from werkzeug.serving import make_server

from tests.conftest import _unavailable
from webapp import container
from webapp.demo import seed


def _pages(app: Flask) -> dict[str, str]:
    codes = seed(container(app).admin, date.today())
    return {"home": "/", "result": f"/c/{codes['genuine']}", "docs": "/docs"}


def test_every_answer_carries_the_security_headers(embedded_app: Flask) -> None:
    http = embedded_app.test_client()
    answers = [http.get(path) for path in _pages(embedded_app).values()]
    answers.append(http.post("/api/v1/verify", json={"input": "x"}))
    answers.append(http.get("/no-such-page"))
    for resp in answers:
        csp = resp.headers["Content-Security-Policy"]
        assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
        assert "unsafe-inline" not in csp
        assert resp.headers["X-Frame-Options"] == "DENY"
        assert resp.headers["X-Content-Type-Options"] == "nosniff"


def test_the_pages_have_no_inline_script_or_style_the_policy_would_refuse(embedded_app: Flask) -> None:
    http = embedded_app.test_client()
    for name, path in _pages(embedded_app).items():
        html = http.get(path).get_data(as_text=True)
        assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html), name  # inline scripts
        assert "<style" not in html and " style=" not in html, name
        assert not re.search(r"\son[a-z]+\s*=", html), name  # inline event handlers
        for asset in re.findall(r'(?:src|href)="(/[^"]+)"', html):
            resp = http.get(asset)
            resp.close()  # files are streamed: close them (warnings are errors here)
            assert resp.status_code == 200, (name, asset)


@pytest.mark.parametrize(
    ("given", "echoed"),
    [
        ("req-42.a_B", True),
        ("a" * 64, True),
        ("a" * 65, False),
        ("x" * 10_000, False),
        ("two words", False),
        ("id\u00e9", False),
        ("", False),
    ],
)
def test_a_request_id_is_echoed_only_when_it_looks_like_one(
    embedded_app: Flask, given: str, echoed: bool
) -> None:
    resp = embedded_app.test_client().get("/healthz", headers={"X-Request-Id": given})
    returned = resp.headers["X-Request-Id"]
    assert (returned == given) is echoed
    assert re.fullmatch(r"[A-Za-z0-9._-]{1,64}", returned)


def test_a_browser_refuses_an_inline_script_under_the_policy(embedded_app: Flask) -> None:
    chromium = "/usr/bin/chromium"
    if not Path(chromium).exists():
        _unavailable("Debian's chromium", FileNotFoundError(chromium))
    from playwright.sync_api import sync_playwright

    from tests.browser.conftest import FLAGS

    embedded_app.add_url_rule(
        "/inline-probe",
        "inline_probe",
        lambda: (
            "<title>before</title><script>document.title = 'ran'</script>"
            '<script src="/static/home.js"></script>'
        ),
    )
    server = make_server("127.0.0.1", 0, embedded_app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, args=FLAGS, headless=True)
            page = browser.new_page()
            errors: list[str] = []
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.goto(f"http://127.0.0.1:{server.server_port}/inline-probe")
            page.wait_for_load_state("load")
            assert page.title() == "before"
            assert any("Content Security Policy" in e for e in errors), errors
            browser.close()
    finally:
        server.shutdown()
        thread.join(5)
