"""The public verify API: POST /api/v1/verify, POST /api/v1/scans, GET /api/v1/codes/{code}."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Literal

import orjson
from flask import Blueprint, Response, request
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from domain.codes import MAX_INPUT_CHARS
from domain.errors import BadInput, PayloadTooLarge
from services.answers import Answer
from services.inputs import Location
from services.verify import VerifyRequest
from verify_api.context import services
from verify_api.limits import counted_if_refused
from verify_api.presenter import answer_json, photo_json
from verify_api.request_input import (
    WINDOWS,
    json_body,
    photo_upload,
    request_lang,
    validated,
    verify_request,
)

bp = Blueprint("public", __name__, url_prefix="/api/v1")
VerifyCall = Callable[..., Answer]  # the verify service's `verify`

# A public JSON body holds one code (2,048 characters, 12 KB even written as \uXXXX
# escapes), a location and a client id: 16 KB is room to spare. The app-wide limit is the
# admin uploads' 64 MB, which a public endpoint must not read. Photo uploads keep their
# own limit (request_input.photo_upload), set per request.
MAX_PUBLIC_BODY_BYTES = 16 * 1024
# Bounded endpoints: every public one, and the mini-program's JSON ones (its photo
# uploads, /wx/v1/scan and a multipart /wx/v1/reports, bound themselves).
_UPLOADS = frozenset({"public.scan_photo", "wechat.scan", "wechat.report"})


@bp.before_app_request
def _bound_public_bodies() -> None:
    # An app-wide hook: it runs before every blueprint's own hooks, the rate limits'
    # (which read the body for its client id) included.
    if request.blueprint not in ("public", "wechat"):
        return
    if request.endpoint in _UPLOADS and request.mimetype == "multipart/form-data":
        return
    if request.content_length is not None and request.content_length > MAX_PUBLIC_BODY_BYTES:
        raise PayloadTooLarge(
            f"the body is larger than {MAX_PUBLIC_BODY_BYTES // 1024} KB", code="body_too_large"
        )
    # Without a length (chunked), Werkzeug stops reading at the limit: a 413 problem.
    request.max_content_length = MAX_PUBLIC_BODY_BYTES


class VerifyIn(BaseModel):
    model_config = ConfigDict(extra="ignore")
    input: Annotated[str, StringConstraints(max_length=MAX_INPUT_CHARS)]
    channel: Literal["manual", "qr", "photo", "web"] = "manual"
    # The mini-program's bounds too (services/inputs.py): impossible places are refused.
    location: Location | None = None
    client: Annotated[str, StringConstraints(max_length=128)] | None = None
    # The label's visible 9-digit identity code (身份码), when the shopper has both it and
    # the 有机码 (issue 17): another label's makes the answer `suspicious`.
    identity_code: Annotated[str, StringConstraints(max_length=64)] | None = None


# The input's own problem codes (CONTRACT.md): the rest of a bad body is `invalid_body`.
_INPUT_CODES = {("input", "string_too_long"): "input_too_long", ("input", "missing"): "input_required"}


def parse_verify(body: Any) -> VerifyIn:
    return validated(VerifyIn, body, codes=_INPUT_CODES)


# An answer's headers beyond its type (verify_api.lane sends the same).
ANSWER_HEADERS = {"Cache-Control": "no-store", "Vary": "Accept-Language"}


def respond(answer: dict[str, Any], status: int = 200, *, max_age: int = 0) -> Response:
    headers = {**ANSWER_HEADERS, "Cache-Control": f"public, max-age={max_age}"} if max_age else ANSWER_HEADERS
    return Response(orjson.dumps(answer), status=status, headers=headers, mimetype="application/json")


def verify_body(body: Any, verify: VerifyCall, ip: str | None, windows: Any) -> Answer:
    """POST /api/v1/verify's work, whichever lane serves it: the body validated, the verify
    made (a 400 problem for a bad body; 429 instead when the client is over its windows)."""
    with counted_if_refused(windows):
        data = parse_verify(body)
        location = data.location
        return verify(
            VerifyRequest(
                input=data.input,
                channel=data.channel,
                lat=location.lat if location else None,
                lng=location.lng if location else None,
                client=data.client,
                ip=ip,
                identity_code=data.identity_code,
                windows=windows,
            )
        )


def code_lookup(code: str, verify: VerifyCall, ip: str | None, windows: Any) -> Answer:
    """GET /api/v1/codes/{code}'s work, whichever lane serves it."""
    with counted_if_refused(windows):
        if len(code) > MAX_INPUT_CHARS:
            raise BadInput(f"code is longer than {MAX_INPUT_CHARS} characters", code="input_too_long")
        return verify(VerifyRequest(input=code, channel="web", ip=ip, windows=windows), record=False)


@bp.post("/verify")
def verify() -> Response:
    # The verify lane (verify_api.lane) serves most of these; this view serves the rest
    # (chunked bodies, a JSON media type other than application/json, a BOM).
    windows = request.environ.get(WINDOWS)
    with counted_if_refused(windows):  # a body that is not JSON is refused before verify_body
        body = json_body()
    answer = verify_body(body, services().verify.verify, request.remote_addr, windows)
    return respond(answer_json(answer, request_lang()))


@bp.get("/codes/<path:code>")
def get_code(code: str) -> Response:
    """The answer without recording a scan, for the result page and caching proxies.

    Every GET asks the scan store (no answer is kept in a worker's memory, and the answer
    says `no-store`): the scan count a GET shows includes every scan made before it. A
    never-issued code spends the asker's enumeration budget as a verify does (a guesser
    gets 429 `enumeration_throttled`).
    """
    answer = code_lookup(code, services().verify.verify, request.remote_addr, request.environ.get(WINDOWS))
    return respond(answer_json(answer, request_lang()))


class ScanFields(BaseModel):
    model_config = ConfigDict(extra="ignore")
    lat: Annotated[float, Field(ge=-90, le=90)] | None = None
    lng: Annotated[float, Field(ge=-180, le=180)] | None = None
    client: Annotated[str, StringConstraints(max_length=128)] | None = None


def scan_fields() -> ScanFields:
    form: dict[str, Any] = request.form.to_dict()
    if "location" in form:  # the JSON verify body's shape, as one form field
        try:
            loc = orjson.loads(form.pop("location"))
        except orjson.JSONDecodeError:
            raise BadInput('location must be JSON: {"lat": …, "lng": …}', code="invalid_body") from None
        if not isinstance(loc, dict) or not {"lat", "lng"} <= loc.keys():
            raise BadInput('location must be JSON: {"lat": …, "lng": …}', code="invalid_body")
        form.update({k: loc[k] for k in ("lat", "lng")})
    return validated(ScanFields, form)


@bp.post("/scans")
def scan_photo() -> Response:
    if request.mimetype != "multipart/form-data":
        raise BadInput(
            "send multipart/form-data with the photo in the `image` field", code="multipart_required"
        )
    photo = photo_upload(("image",))
    if photo is None:
        raise BadInput("the photo must be in the `image` field", code="image_required")
    fields = scan_fields()
    answer = services().photos.scan(
        photo[0], verify_request("", "photo", client=fields.client, lat=fields.lat, lng=fields.lng)
    )
    return respond(photo_json(answer, request_lang()))
