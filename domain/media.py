"""What an uploaded file is, told by its first bytes (never by the client's Content-Type or
file name): one sniffer for shoppers' photos, product-spec photos, order attachments and
inspection reports, each caller deciding which of these types it accepts."""

from __future__ import annotations

JPEG = "image/jpeg"
PNG = "image/png"
GIF = "image/gif"
BMP = "image/bmp"
WEBP = "image/webp"
PDF = "application/pdf"

# The photo types a shopper may send (the scanner reads them all).
PHOTO_TYPES = frozenset({JPEG, PNG, WEBP, GIF, BMP})
# The label system's photo and scan types (seed 000: JPG, GIF, BMP, PNG; scans also PDF).
LABEL_PHOTO_TYPES = frozenset({JPEG, PNG, GIF, BMP})
SCAN_TYPES = LABEL_PHOTO_TYPES | {PDF}


def sniff(data: bytes) -> str | None:
    """The media type of `data` by its signature; None when it is none of ours."""
    if data.startswith(b"\xff\xd8\xff"):
        return JPEG
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return PNG
    if data.startswith((b"GIF87a", b"GIF89a")):
        return GIF
    # A BMP header states the file's size (0 is allowed by old writers): two letters alone
    # would take any text starting "BM" for an image.
    if data.startswith(b"BM") and len(data) >= 26 and int.from_bytes(data[2:6], "little") in (0, len(data)):
        return BMP
    if data.startswith(b"RIFF") and data[8:12] == b"WEBP":
        return WEBP
    if data.startswith(b"%PDF-"):
        return PDF
    return None
