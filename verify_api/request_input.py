"""What every entrypoint reads off a request the same way: its JSON body and its bearer
token. The mini-program's blueprint uses these too (the one module of `verify_api` it
may import; see the import contracts in pyproject.toml).

The body is parsed once per request however many readers ask: the rate-limit hook reads
the client id from it before the view validates it.
"""

from __future__ import annotations

from typing import Any

import orjson
from flask import request

from domain.errors import BadInput

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
