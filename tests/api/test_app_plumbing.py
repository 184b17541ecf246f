"""The root's per-request plumbing (webapp/app.py): what it remembers between requests."""

from __future__ import annotations

from flask import Flask
from flask.views import MethodView


def test_remembered_hooks_do_not_grow_with_requests_to_a_class_based_view(embedded_app: Flask) -> None:
    """`ensure_sync` is remembered per plain function; a class-based view's bound method is
    new on every request and must not be remembered (that would grow without end)."""

    class Ping(MethodView):
        def get(self) -> str:
            return "pong"

    embedded_app.add_url_rule("/test-ping", view_func=Ping.as_view("test_ping"))
    http = embedded_app.test_client()
    assert http.get("/test-ping").get_data(as_text=True) == "pong"
    remembered = len(embedded_app._sync)  # type: ignore[attr-defined]
    for _ in range(50):
        assert http.get("/test-ping").status_code == 200
    assert len(embedded_app._sync) == remembered  # type: ignore[attr-defined]
