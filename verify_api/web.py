"""The shopper's web pages: the home form, the result page any phone camera opens from the
label's QR (/c/<code>), and the report of a suspected fake.

How a code arrived is the scan's channel: `/c/<code>` is a label's printed URL (`qr`);
the home form submits to `/search?code=…` (`web`). Either page is rendered by the server
with the answer of one verify (verdict, badge, counts), so nothing on it changes after it
loads; it carries no script.

Which page views are scans: the server records one only for a GET that is a top-level
navigation (`Sec-Fetch-Mode: navigate`, `Sec-Fetch-Dest: document`) and not a prefetch
or prerender (`Sec-Purpose`/`Purpose: prefetch`). Link previewers, chat unfurlers, HEAD
requests and speculative loads get the same page without a scan. A browser that sends no
Fetch Metadata (Safari before 16.4, 2023) sees the answer without being counted: an
undercount we accept rather than counting every bot.

Who is asking: a first-party random visitor id in an HttpOnly, SameSite=Lax cookie (Secure
over https), no fingerprinting. It is the scan's client (as `web:<id>`, kept only as a keyed
hash by the scan store), so "you checked this 3 times" works as in the mini-program, and a
reload by the same visitor of the same code within ten minutes is the same check, not a
new scan (cache/recent_visits.py).

Every bad input on these paths answers a friendly page (Chinese, English when the browser
prefers it) with the problem's status: the JSON problem documents of the API are turned
into HTML here, in one place (`_friendly_errors`).

Reports: a same-origin multipart POST from the result page's own form. No cookie sessions
exist in this app (so no Flask-WTF CSRF token, which needs one); a cross-site POST is
refused by its `Origin` (every current browser sends it on a POST; `Referer` when it does
not), and the visitor cookie is SameSite=Lax, so another site's form carries none.
"""

from __future__ import annotations

import re
import secrets
from typing import Annotated
from urllib.parse import quote, urlsplit

import orjson
from flask import (
    Blueprint,
    Response,
    current_app,
    make_response,
    redirect,
    render_template,
    request,
    send_from_directory,
)
from pydantic import BaseModel, ConfigDict, StringConstraints
from werkzeug.wrappers import Response as BaseResponse

from domain.codes import MAX_INPUT_CHARS, normalize, normalize_identity
from domain.errors import BadInput, Forbidden, Unprocessable
from domain.ports import RecentVisits
from verify_api.context import services
from verify_api.presenter import answer_json, page_view
from verify_api.request_input import photo_upload, request_lang, validated, verify_request

bp = Blueprint("web", __name__)

VISITOR_COOKIE = "vid"
_VISITOR = re.compile(r"[A-Za-z0-9_-]{22}")  # secrets.token_urlsafe(16)
VISITOR_MAX_AGE_S = 365 * 86_400


# An identity code typed with spaces or dashes stays well under this; longer is not one.
MAX_IDENTITY_CHARS = 64

# -- texts ------------------------------------------------------------------------------------

TEXTS: dict[str, dict[str, str]] = {
    "zh": {
        "html_lang": "zh-CN",
        "site": "有机码 / 溯源码查询",
        "heading": "有机码 / 五常大米溯源码查询",
        "label": "标志上的编码",
        "placeholder": "18位有机码或溯源码",
        "formats": "有机码：标志上“有机码”后的18位数字（旧版17位）。"
        "五常大米溯源码：8–32位字母或数字，区分大小写。",
        "submit": "查询",
        "identity_label": "身份码（选填）",
        "identity_hint": "标签上另印有9位身份码时，一并填写可核对两个码是否属于同一枚标志。",
        "err_identity": "身份码是标签上印的9位数字。",
        "or_scan": "也可以用手机相机或微信扫一扫标志上的二维码。",
        "err_empty": "请输入标志上的编码。",
        "err_long": f"输入太长了（最多 {MAX_INPUT_CHARS} 个字符）。"
        "有机码为18位数字，溯源码为8–32位字母或数字。",
        "result_title": "查询结果",
        "product": "产品",
        "name": "名称",
        "description": "说明",
        "package": "包装",
        "label_spec": "标志规格",
        "issued_on": "发放日期",
        "certificate": "认证证书",
        "cert_number": "证书编号",
        "holder": "获证组织",
        "cert_kind": "证书类型",
        "kind_conversion": "有机转换",
        "kind_organic": "有机产品",
        "status": "状态",
        "since": "自 {since} 起",
        "validity": "有效期",
        "to": "至",
        "body": "认证机构",
        "trace": "溯源信息",
        "batch": "批次",
        "producer": "生产企业",
        "plot": "地块",
        "seed": "品种",
        "inputs": "投入品",
        "inspection": "检验",
        "inspection_passed": "检验合格",
        "inspection_failed": "检验不合格",
        "purchases": "原粮收购",
        "activated": "激活",
        "not_activated": "未激活",
        "scans": "该码已被查询 {count} 次",
        "first": "，首次查询于 {first}",
        "first_city": "，{city}",
        "only_you": "这是该码的第一次查询，就是您这次（{first}{city}）。",
        "you_all": "，都是您本人查询。",
        "you_some": "。其中 {you} 次是您本人查询，您首次查询于 {you_first}。",
        "end": "。",
        "case_hint": "溯源码区分大小写：请逐个核对字母的大小写后再查。",
        "time_note": "时间均为北京时间。",
        "again": "查询其他编码",
        "report": "举报疑似假冒",
        "report_intro": "觉得手里的产品可疑？告诉品牌方和认证机构。",
        "report_text": "情况说明",
        "report_shop": "购买的店铺",
        "report_place": "购买地点（城市、区县）",
        "report_photo": "标签照片（可选，最大 8 MB）",
        "report_send": "提交举报",
        "report_empty": "请填写情况说明、店铺、地点或附上照片中的至少一项。",
        "reported": "举报已提交",
        "reported_body": "谢谢！您的举报已转交该码的品牌方和认证机构核查。",
        "back": "返回查询结果",
        "error_title": "无法完成查询",
        "home": "返回首页",
    },
    "en": {
        "html_lang": "en",
        "site": "Organic code / BQ code check",
        "heading": "Check an organic code or a Wuchang rice BQ code",
        "label": "The code on the label",
        "placeholder": "18-digit organic code, or a BQ code",
        "formats": "Organic code: the 18 digits after “有机码” on the label (17 on older labels). "
        "Wuchang rice BQ code: 8–32 letters or digits, case-sensitive.",
        "submit": "Check",
        "identity_label": "Identity code (optional)",
        "identity_hint": "If the label also carries a 9-digit identity code, enter it to check that "
        "both codes belong to the same label.",
        "err_identity": "The identity code is the 9 digits printed on the label.",
        "or_scan": "Or scan the label's QR code with your phone camera or WeChat.",
        "err_empty": "Enter the code printed on the label.",
        "err_long": f"That is too long (at most {MAX_INPUT_CHARS} characters). "
        "An organic code has 18 digits, a BQ code 8–32 letters or digits.",
        "result_title": "Result",
        "product": "Product",
        "name": "Name",
        "description": "Description",
        "package": "Package",
        "label_spec": "Label",
        "issued_on": "Issued on",
        "certificate": "Certificate",
        "cert_number": "Number",
        "holder": "Holder",
        "cert_kind": "Kind",
        "kind_conversion": "organic conversion",
        "kind_organic": "organic",
        "status": "Status",
        "since": "since {since}",
        "validity": "Valid",
        "to": "to",
        "body": "Certification body",
        "trace": "Traceability",
        "batch": "Batch",
        "producer": "Producer",
        "plot": "Plot",
        "seed": "Variety",
        "inputs": "Inputs",
        "inspection": "Inspection",
        "inspection_passed": "Passed",
        "inspection_failed": "Failed",
        "purchases": "Raw grain bought",
        "activated": "Activated",
        "not_activated": "not activated",
        "scans": "This code was checked {count} times",
        "first": ", first on {first}",
        "first_city": " in {city}",
        "only_you": "This is the first check of this code: yours ({first}{city}).",
        "you_all": "; all of them were you.",
        "you_some": ". {you} of them were you, first on {you_first}.",
        "end": ".",
        "case_hint": "BQ codes are case-sensitive: check each letter's upper and lower case.",
        "time_note": "Times are China time (UTC+8).",
        "again": "Check another code",
        "report": "Report a suspected fake",
        "report_intro": "Does this product look wrong? Tell the brand and the certification body.",
        "report_text": "What you noticed",
        "report_shop": "Shop",
        "report_place": "Where (city, district)",
        "report_photo": "Photo of the label (optional, up to 8 MB)",
        "report_send": "Send report",
        "report_empty": "Fill in at least one of: what you noticed, shop, place, or a photo.",
        "reported": "Report sent",
        "reported_body": "Thank you. Your report was passed to the code's brand and certification body.",
        "back": "Back to the result",
        "error_title": "We could not answer that",
        "home": "Home",
    },
}

# What each problem code means to a shopper: (zh, en). Unknown codes fall back by status.
FRIENDLY: dict[str, tuple[str, str]] = {
    "input_required": (TEXTS["zh"]["err_empty"], TEXTS["en"]["err_empty"]),
    "input_too_long": (TEXTS["zh"]["err_long"], TEXTS["en"]["err_long"]),
    "report_empty": (TEXTS["zh"]["report_empty"], TEXTS["en"]["report_empty"]),
    "invalid_code": (
        "举报需要标志上的有效编码，请先查询该编码。",
        "A report must name a valid code from the label: check the code first.",
    ),
    "invalid_body": (
        "提交的内容不完整或过长，请检查后重试。",
        "Part of the form is missing or too long; check it and try again.",
    ),
    "rate_limited": (
        "查询太频繁了，请稍等一会儿再试。",
        "Too many checks in a short time: wait a moment and try again.",
    ),
    "enumeration_throttled": (
        "您查询了太多不存在的编码，请一小时后再试。",
        "Too many codes that do not exist were checked from here: try again in an hour.",
    ),
    "image_too_large": (
        "照片太大了（最大 8 MB），请换一张或压缩后重试。",
        "The photo is too large (8 MB at most).",
    ),
    "request_entity_too_large": (
        "照片太大了（最大 8 MB），请换一张或压缩后重试。",
        "The photo is too large (8 MB at most).",
    ),
    "unsupported_media_type": (
        "照片格式不支持，请上传 JPEG、PNG、WebP、GIF 或 BMP 图片。",
        "That photo format is not supported: JPEG, PNG, WebP, GIF or BMP.",
    ),
    "content_rejected": ("照片未通过内容安全检查，请换一张。", "The photo did not pass the content check."),
    "cross_site_request": (
        "请在查询结果页面上提交举报。",
        "Please send the report from the result page itself.",
    ),
    "not_found": ("页面不存在。", "There is no such page."),
}
_BY_STATUS = {
    404: ("页面不存在。", "There is no such page."),
    405: ("不支持这种请求。", "That kind of request is not supported here."),
    429: FRIENDLY["rate_limited"],
    503: ("服务暂时繁忙，请稍后再试。", "The service is busy: please try again shortly."),
}
_DEFAULT = ("请求无法处理，请返回首页重新查询。", "That request could not be handled; go back and try again.")


# -- wiring -----------------------------------------------------------------------------------


def _visits() -> RecentVisits:
    # Built by the composition root beside the scan store (its Redis, or this process).
    return current_app.extensions["web_visits"]


def _visitor() -> tuple[str, bool]:
    """(the visitor id, whether it is new and must be set on the response)."""
    given = request.cookies.get(VISITOR_COOKIE, "")
    if _VISITOR.fullmatch(given):
        return given, False
    return secrets.token_urlsafe(16), True


def _page(html: str, status: int, visitor: str | None = None) -> Response:
    resp = make_response(html, status)
    # Per visitor (counts, "you"), per language: no shared cache may keep it.
    resp.headers["Cache-Control"] = "no-store"
    resp.headers["Vary"] = "Accept-Language, Cookie"
    if visitor is not None:
        _set_visitor(resp, visitor)
    return resp


def _set_visitor(resp: BaseResponse, visitor: str) -> None:
    # HttpOnly: no script reads it; Lax: another site's POST carries none; Secure over https.
    resp.set_cookie(
        VISITOR_COOKIE,
        visitor,
        max_age=VISITOR_MAX_AGE_S,
        path="/",
        secure=request.is_secure,
        httponly=True,
        samesite="Lax",
    )


def is_navigation() -> bool:
    """A person opening the page: a top-level GET navigation, not a prefetch/prerender."""
    if request.method != "GET":
        return False
    headers = request.headers
    purpose = " ".join(headers.get(n, "") for n in ("Sec-Purpose", "Purpose", "X-Purpose", "X-Moz")).lower()
    if "prefetch" in purpose or "preview" in purpose:
        return False
    return headers.get("Sec-Fetch-Mode") == "navigate" and headers.get("Sec-Fetch-Dest") == "document"


# -- pages ------------------------------------------------------------------------------------


@bp.get("/favicon.ico")
def favicon() -> Response:
    # Browsers ask for it on every page, the API docs too: one small SVG answers them all
    # (a 404 on every page load is noise in every browser console and access log).
    assert current_app.static_folder is not None
    return send_from_directory(
        current_app.static_folder, "favicon.svg", mimetype="image/svg+xml", max_age=86400
    )


def _home(error: str | None = None, value: str = "", status: int = 200, identity: str = "") -> Response:
    lang = request_lang()
    html = render_template(
        "home.html", t=TEXTS[lang], error=error, value=value, identity=identity, max_chars=MAX_INPUT_CHARS
    )
    return _page(html, status)


@bp.get("/")
def home() -> Response:
    return _home()


@bp.get("/search")
def search() -> Response:
    """The home form's target (GET, so it works without a script): a typed code, channel `web`,
    and the label's identity code when the shopper has it too (issue 17: another label's
    makes the answer `suspicious`)."""
    raw = request.args.get("code", "")
    identity = request.args.get("identity", "").strip()[:MAX_IDENTITY_CHARS]
    texts = TEXTS[request_lang()]
    if not raw.strip():
        return _home(texts["err_empty"], status=400, identity=identity)
    if len(raw) > MAX_INPUT_CHARS:
        return _home(texts["err_long"], status=400, identity=identity)
    if identity:
        try:
            identity = normalize_identity(identity)
        except BadInput:
            return _home(texts["err_identity"], value=raw, status=400, identity=identity)
    return _result(raw, "web", identity or None)


@bp.get("/c")
@bp.get("/c/")
def empty_code() -> Response:
    # A label URL carrying its code as a query parameter (?code=, ?c=, WeChat's ?q=) is a
    # label scan; otherwise nothing was asked.
    for key in ("code", "c", "q"):
        if key in request.args:
            # The parameter's value is the input (a code, or for WeChat's q the label's own
            # URL, decoded once here): the 2,048-character limit is the value's, as documented.
            raw = request.args[key]
            if len(raw) > MAX_INPUT_CHARS:
                raise BadInput(f"input is longer than {MAX_INPUT_CHARS} characters", code="input_too_long")
            return _result(raw, "qr")
    return _home(TEXTS[request_lang()]["err_empty"], status=400)


@bp.get("/c/<path:code>")
def result(code: str) -> Response:
    if len(code) > MAX_INPUT_CHARS:
        raise BadInput("code too long", code="input_too_long")
    # A QR may carry the code in a query parameter: hand the whole URL to the normalizer.
    raw = request.full_path.rstrip("?") if request.args else code
    return _result(raw, "qr")


def _result(raw: str, channel: str, identity: str | None = None) -> Response:
    lang = request_lang()
    visitor, new = _visitor()
    parsed = normalize(raw)  # pure; the verify normalizes again (cheap) and decides
    record = (
        parsed.invalid is None
        and is_navigation()
        and _visits().first_visit(visitor, parsed.code)  # a reload within the window is no new scan
    )
    answer = services().verify.verify(
        verify_request(raw, channel, client="web:" + visitor, identity_code=identity), record=record
    )
    html = render_template(
        "result.html",
        a=answer_json(answer, lang),
        v=page_view(answer, lang, TEXTS[lang]),
        t=TEXTS[lang],
        raw=raw,
        max_chars=MAX_INPUT_CHARS,
    )
    return _page(html, 200, visitor if new else None)


# -- reports ----------------------------------------------------------------------------------


class WebReportIn(BaseModel):
    # The mini-program's bounds (miniprogram_backend.blueprint.ReportIn), plus a place.
    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)
    code: Annotated[str, StringConstraints(min_length=1, max_length=MAX_INPUT_CHARS)]
    text: Annotated[str, StringConstraints(max_length=2000)] | None = None
    shop: Annotated[str, StringConstraints(max_length=200)] | None = None
    place: Annotated[str, StringConstraints(max_length=100)] | None = None


def _same_origin() -> bool:
    origin = request.headers.get("Origin")
    if origin is None:
        referer = request.headers.get("Referer")
        if not referer:
            return False
        parts = urlsplit(referer)
        origin = f"{parts.scheme}://{parts.netloc}"
    return origin == request.host_url.rstrip("/")


@bp.post("/report")
def report() -> BaseResponse:
    if not _same_origin():
        raise Forbidden("reports are sent from the result page of this site", code="cross_site_request")
    if request.mimetype != "multipart/form-data":
        raise BadInput("send the report form (multipart/form-data)", code="invalid_body")
    # Bounded before the body is read (the photo's limit plus the form's small fields).
    upload = photo_upload(("photo",), sniff=True)
    photo, photo_kind = upload if upload is not None else (None, None)
    data = validated(WebReportIn, {k: v for k, v in request.form.items() if v != ""})
    if not (data.text or data.shop or data.place or photo):
        raise BadInput("the report is empty", code="report_empty")
    if normalize(data.code).invalid is not None:
        raise BadInput("the report must name a code from the label", code="invalid_code")
    if photo is not None and photo_kind is not None:
        _check_photo(photo, photo_kind)
    visitor, new = _visitor()
    services().shoppers.report(
        "web:" + visitor,
        data.code,
        data.text,
        data.shop,
        None,
        None,
        photo,
        photo_kind,
        place=data.place,
        channel="web",
    )
    # Post/redirect/get: a reload of the thank-you page sends nothing twice.
    resp = redirect(f"/reported?code={quote(data.code, safe='')}", code=303)
    if new:
        _set_visitor(resp, visitor)
    return resp


def _check_photo(photo: bytes, kind: str) -> None:
    """The content check a web report can have. With WeChat configured, its synchronous
    image check runs on the photo as for the mini-program. Its text check (msg_sec_check
    v2) needs the openid of a user active in the mini-program, which a web visitor has
    not: web text gets the local checks only (bounds, stripped), and is read by the brand
    and the certification body alone, never published."""
    # None: no image check configured; a checker that fails raises Unavailable (503).
    ok = services().check_image(photo, kind)
    if ok is False:
        raise Unprocessable("the photo did not pass the content check", code="content_rejected")


@bp.get("/reported")
def reported() -> Response:
    lang = request_lang()
    code = request.args.get("code", "")[:MAX_INPUT_CHARS]
    html = render_template("reported.html", t=TEXTS[lang], code=code, back=f"/c/{quote(code, safe='')}")
    return _page(html, 200)


# -- friendly error pages -----------------------------------------------------------------------


@bp.after_request
def _friendly_errors(resp: Response) -> Response:
    """Every problem document on these paths (bad input, rate limits, outages) becomes a
    page a shopper can read, with the same status and headers (Retry-After)."""
    if resp.mimetype != "application/problem+json":
        return resp
    try:
        problem = orjson.loads(resp.get_data())
    except orjson.JSONDecodeError:
        problem = {}
    lang = request_lang()
    idx = 1 if lang == "en" else 0
    code = str(problem.get("code", ""))
    text = FRIENDLY.get(code) or _BY_STATUS.get(resp.status_code) or _DEFAULT
    html = render_template(
        "error.html",
        t=TEXTS[lang],
        message=text[idx],
        code=code,
        status=resp.status_code,
        max_chars=MAX_INPUT_CHARS,
    )
    page = _page(html, resp.status_code)
    for name in ("Retry-After", "Allow"):
        if name in resp.headers:
            page.headers[name] = resp.headers[name]
    return page
