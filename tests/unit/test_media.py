"""One sniffer tells every upload's type from its bytes."""

import pytest

from domain import media


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"\xff\xd8\xff\xe0\x00\x10JFIF", media.JPEG),
        (b"\x89PNG\r\n\x1a\n\x00\x00", media.PNG),
        (b"GIF89a\x01\x00", media.GIF),
        (b"BM" + (30).to_bytes(4, "little") + bytes(24), media.BMP),
        (b"RIFF\x00\x00\x00\x00WEBPVP8 ", media.WEBP),
        (b"%PDF-1.7\n", media.PDF),
    ],
)
def test_a_known_signature_names_its_type(data: bytes, expected: str) -> None:
    assert media.sniff(data) == expected


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"BM is how this text starts, not an image of any size",
        b"RIFF\x00\x00\x00\x00WAVEfmt ",  # a sound file is RIFF too
        b"<svg xmlns='http://www.w3.org/2000/svg'/>",
        b"\x89PNX",
    ],
)
def test_anything_else_is_none(data: bytes) -> None:
    assert media.sniff(data) is None


def test_each_caller_names_the_types_it_takes() -> None:
    assert media.PDF not in media.PHOTO_TYPES
    assert media.WEBP not in media.LABEL_PHOTO_TYPES
    assert media.PDF in media.SCAN_TYPES
