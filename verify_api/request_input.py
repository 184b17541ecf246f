"""What every entrypoint reads off a request the same way: its JSON body (validated by a
model), its bearer token, a photo upload (one size limit, the settings'), the shopper's
language and the verify request it makes. The mini-program's blueprint uses these too
(see the import contracts in pyproject.toml).

The body is parsed once per request however many readers ask: the rate-limit hook reads
the client id from it before the view validates it.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, TypeVar

import orjson
from flask import request
from pydantic import BaseModel, ValidationError

from domain import media
from domain.errors import BadInput, PayloadTooLarge, UnsupportedMedia
from domain.verdicts import pick_language
from services.verify import VerifyRequest
from verify_api.context import services

# Where the rate-limit hook leaves a request's windows for the verify's scan script
# (verify_api.limits.IN_SCAN).
WINDOWS = "verify.rate_windows"
M = TypeVar("M", bound=BaseModel)

_KEY = "verify_api.json_body"  # the parsed body (or the error) in the request's environ


def json_body() -> Any:
    """The request's JSON body; a 400 problem when it is not JSON."""
    found = request.environ.get(_KEY)
    if found is None:
        found = request.environ[_KEY] = _parse()
    if isinstance(found, BadInput):
        raise found
    return found[0]


def json_body_or_none() -> Any:
    """The JSON body, or None when there is none (for readers that must not refuse)."""
    try:
        return json_body()
    except BadInput:
        return None


def _parse() -> tuple[Any] | BadInput:
    if not request.is_json:
        return BadInput("send a JSON body with Content-Type: application/json", code="json_required")
    # orjson rather than request.get_json (stdlib json): the verify hot path, and it also
    # refuses lone surrogates and NaN, which no client of ours sends.
    data = request.get_data(cache=True)
    try:
        body = orjson.loads(data)
    except orjson.JSONDecodeError:
        # What orjson refuses but the standard parser reads (a BOM, UTF-16) stays accepted.
        # Nesting past orjson's 1,024 levels is refused by both: the standard parser raises
        # RecursionError (not a ValueError, so get_json's `silent` lets it through).
        try:
            body = request.get_json(silent=True)
        except RecursionError:
            body = None
        if body is None:
            return BadInput("the body is not valid JSON (or nested too deep)", code="invalid_json")
    # orjson reads 1,024 levels, and what is stored later (a batch's trace, through the
    # standard json module) recurses once per level: no body of ours nests past a few. The
    # walk runs only when the body holds enough brackets to nest that deep (two C counts).
    if data.count(b"[") + data.count(b"{") > MAX_DEPTH and _nests_deeper(body, MAX_DEPTH):
        return BadInput(f"the body nests deeper than {MAX_DEPTH} levels", code="invalid_json")
    return (body,)


MAX_DEPTH = 32


def _nests_deeper(value: Any, limit: int) -> bool:
    """Whether arrays/objects nest past `limit` levels (iterative: no recursion to exhaust)."""
    stack: list[tuple[Any, int]] = [(value, 1)] if isinstance(value, (dict, list)) else []
    while stack:
        item, depth = stack.pop()
        if depth > limit:
            return True
        children = item.values() if isinstance(item, dict) else item
        stack.extend((c, depth + 1) for c in children if isinstance(c, (dict, list)))
    return False


def bearer_token() -> str | None:
    """The token of an `Authorization: Bearer <token>` header, else None."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


def validated(model: type[M], data: Any, *, codes: Mapping[tuple[str, str], str] | None = None) -> M:
    """`data` (a JSON body, a form's fields) as `model`; else a 400 problem naming the first
    error: `invalid_body`, or the code `codes` gives its (field, pydantic error type)."""
    if not isinstance(data, dict):
        raise BadInput("the body must be a JSON object", code="invalid_body")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        err = exc.errors(include_url=False)[0]
        where = ".".join(str(p) for p in err["loc"]) or "body"
        code = (codes or {}).get((where, err["type"]), "invalid_body")
        raise BadInput(f"{where}: {err['msg']}", code=code) from exc


def form_fields() -> dict[str, str]:
    """The request's form fields, an absent value left out: a form cannot say null, so
    clients (wx.uploadFile's formData, generated clients) send `null` or an empty string
    for a field they have no value for, which is the same as not sending it."""
    return {k: v for k, v in request.form.items() if v not in ("", "null")}


# Multipart overhead (boundaries, the small form fields) allowed beyond the photo itself.
FORM_SLACK = 64 * 1024


def photo_upload(
    field_names: tuple[str, ...], *, too_large: str = "image_too_large", sniff: bool = False
) -> tuple[bytes, str | None] | None:
    """The photo uploaded in the first of `field_names` present, and its type sniffed from
    its bytes when `sniff` (a 415 `unsupported_media_type` when it is no image of ours; the
    photo scanner tells images apart itself). None when no field carries one (a browser's
    empty file input sends a part with no name and no bytes).

    One limit for every photo, the settings' `max_upload_bytes`: the request is refused
    past it before the body is read (`too_large`, a 413), and Werkzeug stops reading there,
    Content-Length given or not (the app-wide limit is the admin uploads' 64 MB).
    """
    limit = services().max_upload_bytes
    detail = f"the photo is larger than {limit // (1024 * 1024)} MB"
    if request.content_length is not None and request.content_length > limit + FORM_SLACK:
        raise PayloadTooLarge(detail, code=too_large)
    request.max_content_length = limit + FORM_SLACK
    upload = next((request.files[n] for n in field_names if n in request.files), None)
    if upload is None:
        return None
    with upload.stream:  # a large part is spooled to a temporary file: closed here
        data = upload.read(limit + 1)
    if not data and not upload.filename:
        return None
    if len(data) > limit:
        raise PayloadTooLarge(detail, code=too_large)
    kind = media.sniff(data) if sniff else None
    if sniff and kind not in media.PHOTO_TYPES:
        raise UnsupportedMedia("the photo must be JPEG, PNG, WebP, GIF or BMP", code="unsupported_media_type")
    return data, kind


def request_lang() -> str:
    """The shopper's language: zh unless the browser or phone prefers English."""
    return pick_language(request.headers.get("Accept-Language"))


def verify_request(
    raw: str,
    channel: str,
    *,
    client: str | None = None,
    verified: bool = False,
    lat: float | None = None,
    lng: float | None = None,
    at: datetime | None = None,
    identity_code: str | None = None,
) -> VerifyRequest:
    """The verify of this request: the input and where it came from, its IP (a never-issued
    code spends the asker's enumeration budget; kept only as a keyed hash)."""
    return VerifyRequest(
        input=raw,
        channel=channel,
        lat=lat,
        lng=lng,
        client=client,
        ip=request.remote_addr,
        at=at,
        verified=verified,
        identity_code=identity_code,
        # Left by the rate-limit hook for the scan script (verify_api.limits.IN_SCAN).
        windows=request.environ.get(WINDOWS),
    )
