"""A photo scanner (domain.ports.PhotoScanner) that reads a plain-text "photo".

A fake photo is UTF-8 text starting with `FAKEPHOTO`; each further line is one symbol
printed on the label, `symbology:payload` (e.g. `qr:https://…`,
`ean13:6901234567892`, `digits:012324…`), or `unreadable` (code-like print that could
not be read). Anything else is not an image; past `max_bytes` the upload is too large.
Without `digits` (no OCR engine) printed digits are not read, as on a server without it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from domain.errors import PayloadTooLarge, UnsupportedMedia

MAGIC = b"FAKEPHOTO"


@dataclass(frozen=True)
class Symbol:
    symbology: str
    payload: str
    confidence: float = 1.0


@dataclass(frozen=True)
class Reading:
    found: tuple[Symbol, ...] = ()
    unreadable: bool = False
    elapsed_ms: float = 0.0
    digits_unavailable: bool = False


@dataclass
class FakePhotoScanner:
    digits: bool = True
    max_bytes: int = 1_000_000
    asked_bodies: list[frozenset[str] | None] = field(default_factory=list)

    def read(self, image: bytes, *, known_body_codes: frozenset[str] | None) -> Reading:
        if len(image) > self.max_bytes:
            raise PayloadTooLarge("the photo is too large", code="photo_too_large")
        if not image.startswith(MAGIC):
            raise UnsupportedMedia("not an image", code="unsupported_media_type")
        self.asked_bodies.append(known_body_codes)
        found: list[Symbol] = []
        unreadable = False
        for line in image.decode("utf-8").splitlines()[1:]:
            if line == "unreadable":
                unreadable = True
                continue
            symbology, _, payload = line.partition(":")
            if symbology == "digits" and not self.digits:
                continue
            found.append(Symbol(symbology, payload))
        return Reading(tuple(found), unreadable and not found, 1.0, digits_unavailable=not self.digits)


def photo(*symbols: str) -> bytes:
    """A fake photo of a label carrying these symbols ("qr:…", "digits:…", "unreadable")."""
    return b"\n".join([MAGIC, *(s.encode() for s in symbols)])
