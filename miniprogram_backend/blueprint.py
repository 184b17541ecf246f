"""The WeChat mini-program backend: /wx/v1 (login, verify, photo scan, history, reports).

Most shoppers verify here: the label's QR opens the mini-program, which receives the QR's
URL as `q` and the scan time as `scancode_time`. The shopper's openid becomes the scan's
client (kept only as a keyed hash), so their own repeat checks are recognized.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any, Protocol, cast
from urllib.parse import unquote

import orjson
from flask import Blueprint, Response, current_app, g, request
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints

from domain.codes import MAX_INPUT_CHARS, normalize
from domain.errors import BadInput, DomainError, Unauthorized
from domain.ports import ShopperSessions, WxUser
from services.inputs import Location, UnixSeconds
from verify_api.context import services
from verify_api.presenter import answer_json, history_json, photo_json, receipt_json
from verify_api.request_input import (
    bearer_token,
    form_fields,
    json_body_or_none,
    photo_upload,
    request_lang,
    validated,
    verify_request,
)

if TYPE_CHECKING:
    from miniprogram_backend.wechat import WeChatClient

log = logging.getLogger(__name__)
bp = Blueprint("wechat", __name__, url_prefix="/wx/v1")
EXTENSION = "wechat"


class WeChat(Protocol):
    """The adapters this blueprint needs, provided by the composition root (webapp) in
    `app.extensions[EXTENSION]`."""

    @property
    def client(self) -> WeChatClient: ...
    @property
    def sessions(self) -> ShopperSessions: ...


class WxProblem(DomainError):
    """A WeChat error as our problem document (its own code and status)."""

    def __init__(self, status: int, code: str, detail: str) -> None:
        super().__init__(detail, code=code)
        self.status = status


class LoginIn(BaseModel):
    model_config = ConfigDict(extra="ignore")
    js_code: Annotated[str, StringConstraints(min_length=1, max_length=128)]


class WxVerifyIn(BaseModel):
    model_config = ConfigDict(extra="ignore")
    input: Annotated[str, StringConstraints(max_length=MAX_INPUT_CHARS)] | None = None
    q: Annotated[str, StringConstraints(max_length=MAX_INPUT_CHARS)] | None = None
    # Out of range (negative, past year 9999) is a 400, not a 500 from the date
    # conversion; within range but implausible, the time is ignored (_scan_time).
    scancode_time: UnixSeconds | None = None
    # The same bounds as /api/v1/verify: impossible coordinates are refused, not stored.
    location: Location | None = None
    # The label's identity code (身份码) beside the 有机码 (issue 17): from this verified
    # session, another label's marks the code suspicious (see services.verify).
    identity_code: Annotated[str, StringConstraints(max_length=64)] | None = None


def _not_bool(value: Any) -> Any:
    # A report comes as JSON or as form fields (strings), so its coordinates cannot be
    # strict floats; pydantic's lax float would still take JSON `false` as 0.0.
    if isinstance(value, bool):
        raise ValueError("a coordinate is a number, not true or false")
    return value


class ReportIn(BaseModel):
    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)
    code: Annotated[str, StringConstraints(min_length=1, max_length=MAX_INPUT_CHARS)]
    text: Annotated[str, StringConstraints(max_length=2000)] | None = None
    shop: Annotated[str, StringConstraints(max_length=200)] | None = None
    lat: Annotated[float, BeforeValidator(_not_bool), Field(ge=-90, le=90)] | None = None
    lng: Annotated[float, BeforeValidator(_not_bool), Field(ge=-180, le=180)] | None = None


def _wx() -> WeChat:
    return cast(WeChat, current_app.extensions[EXTENSION])


def _respond(body: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(body), status=status, mimetype="application/json")


def _wechat_call(fn: Any, *args: Any) -> Any:
    """Call the WeChat client; its typed errors become problem documents in one place."""
    from miniprogram_backend.wechat import WeChatError

    try:
        return fn(*args)
    except WeChatError as exc:
        status = int(getattr(exc, "http_status", None) or getattr(exc, "status", None) or 502)
        code = str(getattr(exc, "code", None) or "wechat_error")
        raise WxProblem(status, code, f"WeChat refused the call ({code})") from exc


@bp.before_request
def _session() -> Response | None:
    if request.endpoint == "wechat.login":
        return None
    token = bearer_token()
    user = _wx().sessions.get(token) if token else None
    if user is None:
        raise Unauthorized("log in with POST /wx/v1/login and send the token as a bearer token")
    g.wx_user = user
    return None


def _user() -> WxUser:
    return g.wx_user


@bp.post("/login")
def login() -> Response:
    data = validated(LoginIn, json_body_or_none())
    sessions = _wx().sessions
    # Redis skipped after a failure: a 503 before the js_code is spent at WeChat on a
    # session we could not store (create() answers the same if Redis fails now).
    sessions.check_available()
    session = _wechat_call(_wx().client.code_to_session, data.js_code)
    token = sessions.create(WxUser(session.openid))
    # Only our token goes back, never the openid; WeChat's session_key is kept nowhere.
    return _respond({"token": token, "token_type": "Bearer", "expires_in": 30 * 86_400})


def _scan_time(seconds: int | None) -> datetime | None:
    """WeChat's scancode_time, when it is plausible (a client's clock is not trusted further)."""
    if seconds is None:
        return None
    at = datetime.fromtimestamp(seconds, UTC)
    return at if abs((datetime.now(UTC) - at).total_seconds()) <= 600 else None


@bp.post("/verify")
def verify() -> Response:
    data = validated(WxVerifyIn, json_body_or_none())
    if data.q:
        raw, channel = unquote(data.q), "qr"
    elif data.input is not None:
        raw, channel = data.input, "manual"
    else:
        raise BadInput("send `input` (typed code) or `q` (the scanned QR's URL)", code="input_required")
    lat, lng = (data.location.lat, data.location.lng) if data.location else (None, None)
    answer = services().verify.verify(
        verify_request(
            raw,
            channel,
            client=_user().openid,
            verified=True,  # a WeChat-verified session: a costly identity (issue 14)
            lat=lat,
            lng=lng,
            at=_scan_time(data.scancode_time),
            identity_code=data.identity_code,
        )
    )
    return _respond(answer_json(answer, request_lang()))


@bp.get("/me/history")
def history() -> Response:
    return _respond(history_json(services().shoppers.history(_user().openid)))


@bp.delete("/me/history")
def erase_history() -> Response:
    openid = _user().openid
    deleted = services().shoppers.erase(openid)
    # Erasure covers what holds the openid in Redis too: every session of this shopper
    # ends (their token stops working; they log in again). With Redis away that fails as
    # a 503 after the checks are deleted: the erasure is not done until a retry (which
    # deletes nothing twice) ends the sessions too.
    _wx().sessions.end_all(openid)
    return _respond({"deleted": deleted})


def _photo() -> tuple[bytes, str | None] | None:
    """The photo `wx.uploadFile` sent (its `name` is the client's choice: photo, image or
    file), its type sniffed from the bytes; past the limit, the mini-program's `too_large`."""
    return photo_upload(("photo", "image", "file"), too_large="too_large", sniff=True)


class WxScanFields(BaseModel):
    model_config = ConfigDict(extra="ignore")
    lat: Annotated[float, Field(ge=-90, le=90)] | None = None
    lng: Annotated[float, Field(ge=-180, le=180)] | None = None


@bp.post("/scan")
def scan() -> Response:
    """A label photo: every code read from it, and the verify answer for the best one."""
    if request.mimetype != "multipart/form-data":
        raise BadInput("upload the photo with wx.uploadFile (multipart/form-data)", code="multipart_required")
    photo = _photo()
    if photo is None:
        raise BadInput("the upload carries no photo (name it `photo`)", code="image_required")
    fields = validated(WxScanFields, form_fields())
    answer = services().photos.scan(
        photo[0],
        verify_request("", "photo", client=_user().openid, verified=True, lat=fields.lat, lng=fields.lng),
    )
    return _respond(photo_json(answer, request_lang()))


@bp.post("/reports")
def report() -> Response:
    photo: bytes | None = None
    photo_type: str | None = None
    if request.mimetype == "multipart/form-data":
        upload = _photo()
        if upload is not None:
            photo, photo_type = upload
        data = validated(ReportIn, form_fields())
    else:
        data = validated(ReportIn, json_body_or_none())
    if normalize(data.code).invalid is not None:
        raise BadInput("the report must name a code from the label", code="invalid_code")
    user = _user()
    client = _wx().client
    # WeChat's content checks run before anyone else sees the text or the photo.
    if data.text and not _wechat_call(client.check_text, user.openid, data.text):
        raise WxProblem(422, "content_rejected", "the text did not pass WeChat's content check")
    if photo is not None and not _wechat_call(client.check_image, photo, photo_type):
        raise WxProblem(422, "content_rejected", "the photo did not pass WeChat's content check")
    created = services().shoppers.report(
        user.openid, data.code, data.text, data.shop, data.lat, data.lng, photo, photo_type
    )
    return _respond(receipt_json(created), 201)
