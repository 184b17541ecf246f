"""The symbol stage's fallback passes on a reduced copy of a large photo (scanner/symbols.py,
`_REDUCE_ABOVE`): what zxing's first read missed entirely is still read there and placed in
the full photo's pixels; a symbol the first read saw but could not decode, a linear symbol
it read, and photos below the threshold keep full resolution. Real zxing on rendered
photos: the faint codes below are ones its first read does not see at all (checked)."""

from __future__ import annotations

import time

import cv2
import numpy as np
import pytest
import zxingcpp

from scanner import Scanner
from scanner.symbols import _REDUCE_ABOVE, _REDUCED_SIDE, SymbolReader, _Collector, _resize
from tests.images import encode, symbol

PAYLOAD = "https://trace.example.cn/c/012326100000000001"
REDUCED = f"reduce-{_REDUCED_SIDE}"
PAPER = 235


def photo(
    width: int,
    height: int,
    *,
    module: int = 6,
    ink: int = 225,
    blur: float = 2.0,
    xy: tuple[int, int] = (2600, 200),
) -> tuple[np.ndarray, tuple[int, int], int]:
    """A `width`×`height` photo with a faint QR (ink `ink` on paper 235) at `xy`, then blurred.
    Returns the photo, the QR's top-left corner (past its quiet zone) and its side in px."""
    gray = np.full((height, width), PAPER, np.uint8)
    qr = symbol(PAYLOAD, scale=module)
    qr = np.where(qr < 128, ink, PAPER).astype(np.uint8)
    x, y = xy
    gray[y : y + qr.shape[0], x : x + qr.shape[1]] = qr
    if blur:
        gray = np.asarray(cv2.GaussianBlur(gray, (0, 0), blur), np.uint8)
    quiet = 4 * module  # zxing's quiet zone: four modules each side
    return gray, (x + quiet, y + quiet), qr.shape[0] - 2 * quiet


def far() -> float:
    return time.perf_counter() + 60


def assert_at(
    corners: tuple[tuple[int, int], ...], top_left: tuple[int, int], side: int, tol: int = 4
) -> None:
    x, y = top_left
    expected = ((x, y), (x + side, y), (x + side, y + side), (x, y + side))
    for (cx, cy), (ex, ey) in zip(corners, expected, strict=True):
        assert abs(cx - ex) <= tol and abs(cy - ey) <= tol, (corners, expected)


@pytest.mark.parametrize(
    "ink,blur,method",
    [
        (225, 2.0, "clahe"),  # 10 grey levels under the paper, blurred: contrast normalization
        (218, 0.0, "sharpen"),  # 17 levels, sharp: the sharpening pass
    ],
)
def test_faint_qr_on_a_large_photo_is_read_from_the_reduced_copy(ink: int, blur: float, method: str) -> None:
    gray, top_left, side = photo(4000, 1200, ink=ink, blur=blur)  # reduced by half: 2,000 px
    assert zxingcpp.read_barcodes(gray, return_errors=True) == []  # the first read sees nothing

    symbols, passes = SymbolReader().read(gray, far())

    assert REDUCED in passes
    assert [(s.symbology, s.payload, s.method) for s in symbols] == [("qr", PAYLOAD, method)]
    assert_at(symbols[0].corners, top_left, side)  # the full photo's pixels, not the copy's
    # Where the full-resolution passes put it.
    before, before_passes = SymbolReader(reduce_large=False).read(gray, far())
    assert REDUCED not in before_passes
    assert [(s.payload, s.method) for s in before] == [(PAYLOAD, method)]
    for (ax, ay), (bx, by) in zip(symbols[0].corners, before[0].corners, strict=True):
        assert abs(ax - bx) <= 3 and abs(ay - by) <= 3


def test_a_large_photo_with_nothing_runs_every_pass_on_the_reduced_copy() -> None:
    gray = np.full((3000, 4000), PAPER, np.uint8)
    symbols, passes = SymbolReader().read(gray, far())
    assert symbols == []
    assert passes == ["zxing", REDUCED, "clahe", "sharpen", "downscale", "opencv-rectify", "global-binarizer"]


def test_downscale_targets_are_the_full_photos_and_map_back() -> None:
    """The downscale passes read 1,600 and 900 px copies of the full photo whichever copy
    they are made from; what they read is placed in the full photo."""
    gray, top_left, side = photo(4000, 1200, module=10, ink=40, blur=0)
    base = _REDUCED_SIDE / 4000
    col = _Collector({}, [])
    SymbolReader()._downscaled(_resize(gray, base), col, base)
    (found,) = col.found.values()
    assert (found.payload, found.method) == (PAYLOAD, "downscale-1600")
    assert_at(found.corners, top_left, side, tol=6)


def test_a_symbol_the_first_read_saw_but_could_not_decode_keeps_full_resolution() -> None:
    gray, _, _ = photo(4000, 1200, module=8, ink=40, blur=0)
    # Paper over a band of the data modules: zxing still finds the QR, no pass can decode it.
    gray[200 + 8 * 12 : 200 + 8 * 24, 2600 + 8 * 12 : 2600 + 8 * 30] = PAPER
    first = zxingcpp.read_barcodes(gray, return_errors=True)
    assert first and all(bc.error is not None for bc in first)

    symbols, passes = SymbolReader().read(gray, far())

    assert symbols == []
    assert "rescue" in passes and "clahe" in passes
    assert REDUCED not in passes


def test_a_large_photo_with_a_linear_symbol_keeps_full_resolution() -> None:
    gray = np.full((3000, 4000), PAPER, np.uint8)
    ean = symbol("6901234567892", "EAN13", scale=4)
    gray[1000 : 1000 + ean.shape[0], 1500 : 1500 + ean.shape[1]] = ean
    symbols, passes = SymbolReader().read(gray, far())
    assert [(s.symbology, s.payload) for s in symbols] == [("ean13", "6901234567892")]
    assert "clahe" in passes  # no 2-D code yet: the fallback passes still run,
    assert REDUCED not in passes  # on full resolution


@pytest.mark.parametrize("width", [2592, _REDUCE_ABOVE])
def test_photos_up_to_the_threshold_are_read_as_before(width: int) -> None:
    gray, top_left, side = photo(width, 1944, xy=(1800, 300))
    after, after_passes = SymbolReader().read(gray, far())
    before, before_passes = SymbolReader(reduce_large=False).read(gray, far())
    assert REDUCED not in after_passes
    assert after_passes == before_passes
    assert after == before
    assert [s.payload for s in after] == [PAYLOAD]
    assert_at(after[0].corners, top_left, side)


def test_the_scanner_places_a_symbol_read_from_the_reduced_copy_in_the_upright_photo() -> None:
    """Through `Scanner.scan`: bytes in, the 12 MP photo's own pixels out."""
    from PIL import Image

    gray, top_left, side = photo(4000, 3000, xy=(3000, 2200))
    result = Scanner(time_budget_ms=60_000).scan(encode(Image.fromarray(gray), "PNG"), ocr="never")
    assert REDUCED in result.passes
    assert [(f.symbology, f.payload, f.method) for f in result.found] == [("qr", PAYLOAD, "clahe")]
    assert_at(result.found[0].corners, top_left, side)
