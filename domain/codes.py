"""Organic codes (有机码) and Wuchang rice BQ codes: every shape a shopper hands us,
normalized to one canonical code and classified, plus the checks that need no lookup.

Shapes accepted (DOMAIN.md): the digits with spaces, dashes or full-width characters,
the 有机码 prefix with or without a colon, a URL carrying the code as its last path
segment or as a `code`/`c` query parameter, and WeChat's `q` parameter carrying the
percent-encoded URL of an "ordinary" QR code.
"""

from __future__ import annotations

import enum
import re
import unicodedata
from dataclasses import dataclass
from datetime import date
from urllib.parse import parse_qs, unquote, urlsplit

from domain.errors import BadInput, InputTooLong

MAX_INPUT_CHARS = 2048

# Organic codes share one BIGINT column: an 18-digit code is its own value, a 17-digit
# legacy code is offset past every 18-digit value, so "0123…" (18) and "123…" (17)
# never collide although both read as the same integer.
_LEGACY_OFFSET = 10**18


class CodeKind(enum.StrEnum):
    ORGANIC = "organic"
    ORGANIC_LEGACY = "organic_legacy"
    BQ = "bq"


class InvalidReason(enum.StrEnum):
    EMPTY = "empty"
    LENGTH = "length"
    CHARACTERS = "characters"
    FUTURE_YEAR = "future_year"
    UNKNOWN_BODY = "unknown_body"
    # Nine digits: the label's visible identity code (身份码, the print serial), typed
    # instead of the 有机码 (seed 003, annex 1-1).
    IDENTITY_CODE = "identity_code"
    # Not an invalid input: the answer's `reason` beside `suspicious` when the identity code
    # sent with a code is another label's (a label made of two). One enum for `reason`.
    IDENTITY_MISMATCH = "identity_mismatch"


@dataclass(frozen=True, slots=True)
class ParsedCode:
    """A shopper's input after normalization: either a well-formed code or the reason it is not one."""

    raw: str
    code: str
    kind: CodeKind | None
    invalid: InvalidReason | None = None

    @property
    def body_code(self) -> str | None:
        if self.kind is CodeKind.ORGANIC:
            return self.code[:4]
        if self.kind is CodeKind.ORGANIC_LEGACY:
            return self.code[:3]
        return None

    @property
    def year(self) -> int | None:
        """The issue year (2000 + the two-digit year part) of an organic code."""
        if self.kind is CodeKind.ORGANIC:
            return 2000 + int(self.code[4:6])
        if self.kind is CodeKind.ORGANIC_LEGACY:
            return 2000 + int(self.code[3:5])
        return None


_PREFIX_IDENTITY = re.compile(r"^\s*(?:身份码|身份碼|identity\s*code)\s*[:：]?\s*", re.IGNORECASE)
_PREFIX = re.compile(r"^\s*(?:有机码|有機碼|organic\s*code)\s*[:：]?\s*", re.IGNORECASE)
# Separators shoppers type or that labels print between digit groups.
_SEPARATORS = re.compile(r"[\s\-‐‑‒–—―_.·/]+")
_DIGITS = re.compile(r"^\d+$")
_TOKEN = re.compile(r"^[0-9A-Za-z]{8,32}$")
_URLISH = re.compile(r"^(?:[a-z][a-z0-9+.\-]*://|www\.|[a-z0-9\-]+(?:\.[a-z0-9\-]+)+/)|[?&=]", re.IGNORECASE)


def _fold(text: str) -> str:
    # NFKC turns full-width digits and letters (１２３, ＡＢ) and the ideographic
    # space into their ASCII forms; zero-width characters pasted from chats go too.
    text = unicodedata.normalize("NFKC", text)
    return text.replace("\u200b", "").replace("\ufeff", "").strip()


def _token_from_url(text: str) -> str:
    """The code carried by a QR payload URL: WeChat's `q`, then `code`/`c`, then the last path segment."""
    candidate = text if "://" in text else "https://" + text
    parts = urlsplit(candidate)
    query = parse_qs(parts.query, keep_blank_values=False)
    if "q" in query:
        inner = unquote(query["q"][0])
        return _token_from_url(inner) if _URLISH.search(inner) else inner
    for name in ("code", "c"):
        if name in query:
            return query[name][0]
    segments = [s for s in unquote(parts.path).split("/") if s]
    return segments[-1] if segments else ""


IDENTITY_DIGITS = 9


def _classify_digits(raw: str, digits: str) -> ParsedCode:
    if len(digits) == 18:
        return ParsedCode(raw, digits, CodeKind.ORGANIC)
    if len(digits) == 17:
        return ParsedCode(raw, digits, CodeKind.ORGANIC_LEGACY)
    if len(digits) == IDENTITY_DIGITS:
        return ParsedCode(raw, digits, None, InvalidReason.IDENTITY_CODE)
    return ParsedCode(raw, digits, None, InvalidReason.LENGTH)


def normalize_identity(raw: str) -> str:
    """A label's identity code (身份码) as a shopper types it: 9 digits once full-width
    characters, spaces and dashes are folded away. BadInput when it cannot be one."""
    text = _SEPARATORS.sub("", _PREFIX_IDENTITY.sub("", _fold(raw)))
    if not (_DIGITS.match(text) and len(text) == IDENTITY_DIGITS):
        raise BadInput(
            "identity_code must be the label's 9-digit identity code", code="invalid_identity_code"
        )
    return text


def normalize(raw: str) -> ParsedCode:
    """Turn whatever the shopper has into a canonical code, or say why it cannot be one.

    Typed digits are an organic code (17 or 18 digits, else wrong length). A token with
    letters, or any 8–32 character token carried in a QR URL that is not 17/18 digits,
    is a BQ code; BQ tokens keep their case because providers' tokens are case-sensitive.
    """
    if raw is None:  # defensive: JSON null reaches us as None
        raise BadInput("input is required", code="input_required")
    if len(raw) > MAX_INPUT_CHARS:
        raise InputTooLong(f"input is longer than {MAX_INPUT_CHARS} characters")
    text = _fold(raw)
    if not text:
        return ParsedCode(raw, "", None, InvalidReason.EMPTY)
    from_url = bool(_URLISH.search(text)) and not _PREFIX.match(text)
    if from_url:
        text = _fold(_token_from_url(text))
    # "身份码 123456789": the identity code with its own label word; its digits then tell.
    text = _PREFIX_IDENTITY.sub("", text)
    # After the 有机码 prefix the input claims to be an organic code: letters make it a
    # malformed organic code, never a BQ token.
    claims_organic = _PREFIX.match(text) is not None
    text = _PREFIX.sub("", text)
    compact = _SEPARATORS.sub("", text)
    if not compact:
        return ParsedCode(raw, "", None, InvalidReason.EMPTY)
    if claims_organic and not _DIGITS.match(compact):
        return ParsedCode(raw, compact[:64], None, InvalidReason.CHARACTERS)
    if _DIGITS.match(compact):
        if from_url and len(compact) not in (17, 18) and _TOKEN.match(compact):
            return ParsedCode(raw, compact, CodeKind.BQ)
        return _classify_digits(raw, compact)
    if _TOKEN.match(compact):
        return ParsedCode(raw, compact, CodeKind.BQ)
    return ParsedCode(raw, compact[:64], None, InvalidReason.CHARACTERS)


def check_without_lookup(
    parsed: ParsedCode, *, today: date, known_bodies: frozenset[str] | None
) -> ParsedCode:
    """Apply the checks that need no record: a future year part, an unknown body code.

    `known_bodies` holds every current (4-digit) and legacy (3-digit) body code; None means
    the body list is not loaded (a store outage), and then the body check is left to lookup.
    """
    if parsed.invalid is not None or parsed.kind is CodeKind.BQ or parsed.kind is None:
        return parsed
    year = parsed.year
    if year is not None and year > today.year:
        return ParsedCode(parsed.raw, parsed.code, parsed.kind, InvalidReason.FUTURE_YEAR)
    body = parsed.body_code
    if known_bodies is not None and body not in known_bodies:
        return ParsedCode(parsed.raw, parsed.code, parsed.kind, InvalidReason.UNKNOWN_BODY)
    return parsed


def organic_key(code: str) -> int:
    """The integer a 17/18-digit organic code is stored under (see _LEGACY_OFFSET)."""
    if len(code) == 18:
        return int(code)
    if len(code) == 17:
        return _LEGACY_OFFSET + int(code)
    raise ValueError(f"not a 17/18-digit organic code: {code!r}")


def organic_code_from_key(key: int) -> str:
    if key >= _LEGACY_OFFSET:
        return f"{key - _LEGACY_OFFSET:017d}"
    return f"{key:018d}"


def parse_stored_code(text: str) -> ParsedCode:
    """Strict parse for admin imports: the canonical form only, no shopper-friendly folding."""
    text = text.strip()
    if _DIGITS.match(text) and len(text) in (17, 18):
        return _classify_digits(text, text)
    if _TOKEN.match(text):
        return ParsedCode(text, text, CodeKind.BQ)
    raise BadInput(
        f"not an organic code (17/18 digits) or a BQ token (8-32 of 0-9A-Za-z): {text[:40]!r}",
        code="invalid_code",
    )
