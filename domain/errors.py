"""The errors of the domain, in one place.

    DomainError                  anything the domain refuses
    ├── BadInput                 the caller sent something malformed (4xx)
    │   └── InputTooLong         an input beyond the 2,048-character contract limit
    ├── Unauthorized             no valid credentials (401)
    ├── Forbidden                the token may not touch this body's or organization's data
    ├── NotFound                 a named entity (certificate, order, batch, flag) does not exist
    ├── Conflict                 a change the current state forbids (restore a revoked certificate)
    ├── PayloadTooLarge          an upload beyond its byte or pixel limit (413)
    ├── UnsupportedMedia         an upload that is not a format we accept, whatever it claims (415)
    ├── Unprocessable            well-formed but unusable: a truncated photo, no code in it (422)
    ├── TooManyRequests          a client guessing codes (enumeration) is slowed down (429)
    ├── NotImplementedOnServer   an optional engine this deployment lacks (501: OCR not installed)
    └── Unavailable              a backing store cannot answer now (503 with Retry-After)

Expected shopper outcomes (a code that does not exist, a voided order) are not
errors: they are verdicts. These exceptions are for the caller's mistakes and
for outages, and each carries the stable machine `code` of the problem document.
"""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    code = "error"
    status = 400

    def __init__(
        self, detail: str, *, code: str | None = None, members: dict[str, Any] | None = None
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        if code is not None:
            self.code = code
        # Members of the problem document beside the standard ones (RFC 9457 extensions),
        # e.g. how far over a cap a request is.
        self.members = members or {}


class BadInput(DomainError):
    code = "bad_input"
    status = 400


class InputTooLong(BadInput):
    code = "input_too_long"


class Unauthorized(DomainError):
    code = "unauthorized"
    status = 401


class Forbidden(DomainError):
    code = "forbidden"
    status = 403


class NotFound(DomainError):
    code = "not_found"
    status = 404


class Conflict(DomainError):
    code = "conflict"
    status = 409


class PayloadTooLarge(DomainError):
    code = "too_large"
    status = 413


class UnsupportedMedia(DomainError):
    code = "unsupported_media_type"
    status = 415


class Unprocessable(DomainError):
    code = "unprocessable"
    status = 422


class TooManyRequests(DomainError):
    code = "rate_limited"
    status = 429

    def __init__(self, detail: str, *, retry_after_s: int = 600, code: str | None = None) -> None:
        super().__init__(detail, code=code)
        self.retry_after_s = retry_after_s  # when the window that refused it resets


class NotImplementedOnServer(DomainError):
    """A capability this deployment lacks (an optional engine not installed)."""

    code = "not_implemented"
    status = 501


class Unavailable(DomainError):
    code = "unavailable"
    status = 503

    def __init__(self, detail: str, *, retry_after_s: int = 5, code: str | None = None) -> None:
        super().__init__(detail, code=code)
        self.retry_after_s = retry_after_s
