"""The OpenAPI document (verify_api/openapi.yaml, kept by hand beside the code it
describes) served as JSON, and Swagger UI 5 from verify_api/static/swagger-ui (vendored
from the npm registry's swagger-ui-dist; see SOURCE.txt there): no CDN. The page starts
Swagger UI from verify_api/static/docs.js, not an inline script, as the
Content-Security-Policy allows scripts from this server only."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import yaml
from flask import Blueprint, Response, jsonify, request, send_from_directory

bp = Blueprint("docs", __name__)
_SPEC = Path(__file__).with_name("openapi.yaml")
_ASSETS = Path(__file__).with_name("static") / "swagger-ui"

_PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Organic code verify API</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="stylesheet" href="/docs/assets/swagger-ui.css"></head><body><div id="ui"></div>
<script src="/docs/assets/swagger-ui-bundle.js"></script>
<script src="/static/docs.js"></script></body></html>"""


@functools.cache
def spec() -> dict[str, Any]:
    return yaml.safe_load(_SPEC.read_text(encoding="utf-8"))


@bp.get("/openapi.json")
def openapi() -> Response:
    # "Try it out" calls the server the reader is on, whatever its host, port or scheme
    # (PORT, a proxy with PROXY_COUNT), not the document's placeholder.
    return jsonify({**spec(), "servers": [{"url": request.host_url.rstrip("/")}]})


@bp.get("/docs")
def docs() -> Response:
    return Response(_PAGE, mimetype="text/html")


@bp.get("/docs/assets/<path:name>")
def assets(name: str) -> Response:
    return send_from_directory(_ASSETS, name, max_age=86400)
