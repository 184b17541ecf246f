"""The mobile result page any phone camera opens from the label's QR: /c/<code>.

The page renders the answer without recording a scan (link previews and prefetchers
must not count as shoppers); its small inline script then records the scan with
POST /api/v1/verify and updates the history line, so only a real browser counts.
"""

from __future__ import annotations

from flask import Blueprint, Response, current_app, render_template, request, send_from_directory

from domain.codes import MAX_INPUT_CHARS
from domain.errors import BadInput
from services.verify import VerifyRequest
from verify_api.context import services

bp = Blueprint("web", __name__)

VERDICT_STYLE = {
    "genuine": ("ok", "✓ 真品"),
    "suspicious": ("warn", "⚠ 疑似复制"),
    "not_found": ("bad", "✗ 查无此码"),
    "invalid_format": ("bad", "✗ 编码无效"),
    "voided": ("bad", "✗ 已作废"),
    "not_activated": ("bad", "✗ 未激活"),
    "certificate_suspended": ("warn", "⚠ 证书暂停"),
    "certificate_revoked": ("bad", "✗ 证书撤销"),
    "certificate_cancelled": ("bad", "✗ 证书注销"),
    "certificate_expired": ("warn", "⚠ 证书过期"),
    "conversion_certificate": ("bad", "✗ 转换期产品"),
}


@bp.get("/favicon.ico")
def favicon() -> Response:
    # Browsers ask for it on every page, the API docs too: one small SVG answers them all
    # (a 404 on every page load is noise in every browser console and access log).
    assert current_app.static_folder is not None
    return send_from_directory(
        current_app.static_folder, "favicon.svg", mimetype="image/svg+xml", max_age=86400
    )


@bp.get("/")
def home() -> str:
    return render_template("home.html")


@bp.get("/c/<path:code>")
def result(code: str) -> str:
    if len(code) > MAX_INPUT_CHARS:
        raise BadInput("code too long", code="input_too_long")
    # A QR may carry the code in a query parameter: hand the whole URL to the normalizer.
    raw = request.full_path.rstrip("?") if request.args else code
    answer = services().verify.verify(
        # The IP: a never-issued code looked up here spends the enumeration budget.
        VerifyRequest(input=raw, channel="web", lang="zh", ip=request.remote_addr),
        record=False,
    )
    style, badge = VERDICT_STYLE.get(answer["verdict"], ("bad", answer["verdict"]))
    return render_template("result.html", a=answer, style=style, badge=badge, raw=raw)
