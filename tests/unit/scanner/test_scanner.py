"""The scanner on rendered labels: codes drawn, distorted, decoded back; malformed
uploads refused with the right error; printed digits never invented."""

from __future__ import annotations

import pytest

from scanner import CorruptImage, ImageTooLarge, NotAnImage, Scanner, TooManyPixels
from scanner.digits import Plausibility, candidates
from tests.images import bomb_png, canvas, distort, encode, label, paste, symbol, text

CODE = "012326100000000001"
BODIES = frozenset({"0123", "123", "9001"})


@pytest.fixture(scope="module")
def scanner() -> Scanner:
    return Scanner(known_body_codes=BODIES, time_budget_ms=10_000)


def payloads(result, symbology: str | None = None) -> set[str]:
    return {f.payload for f in result.found if symbology is None or f.symbology == symbology}


@pytest.mark.parametrize(
    "payload",
    [CODE, f"https://trace.example.cn/c/{CODE}", f"https://x.example.cn/v?code={CODE}&s=1", "WCA7Kp2Qx9Lm"],
)
def test_qr_payload_shapes_round_trip(scanner: Scanner, payload: str) -> None:
    result = scanner.scan(encode(label(qr=payload)))
    assert payloads(result, "qr") == {payload}
    assert result.found[0].method == "zxing" and not result.ocr_ran  # a code-bearing QR skips OCR


@pytest.mark.parametrize(
    "fmt,payload,name",
    [
        ("DataMatrix", CODE, "datamatrix"),
        ("EAN13", "6901234567892", "ean13"),
        ("Code128", "LOT2026-0042", "code128"),
    ],
)
def test_other_symbologies(scanner: Scanner, fmt: str, payload: str, name: str) -> None:
    img = paste(canvas(), symbol(payload, fmt, scale=4), (300, 300))
    result = scanner.scan(encode(img, "PNG"), ocr="never")
    assert (name, payload) in {(f.symbology, f.payload) for f in result.found}


@pytest.mark.parametrize(
    "distortion",
    [
        {"angle": 17},
        {"angle": 90},
        {"tilt": 0.12},
        {"blur": 1.6},
        {"noise": 18},
        {"angle": -8, "blur": 1.0, "noise": 10, "tilt": 0.06},
    ],
)
def test_distorted_qr_decodes(scanner: Scanner, distortion: dict) -> None:
    payload = f"https://trace.example.cn/c/{CODE}"
    img = distort(label(qr=payload), **distortion)
    assert payloads(scanner.scan(encode(img, quality=60), ocr="never"), "qr") == {payload}


def test_exif_orientation_is_honoured(scanner: Scanner) -> None:
    payload = f"https://trace.example.cn/c/{CODE}"
    upright = label(qr=payload)
    # Stored rotated, with EXIF saying "rotate 90° clockwise to display" (orientation 6).
    stored = upright.rotate(90, expand=True)
    result = scanner.scan(encode(stored, exif_orientation=6), ocr="never")
    assert (result.width, result.height) == upright.size
    (found,) = result.found
    xs = [x for x, _ in found.corners]
    assert min(xs) > upright.size[0] / 2  # the QR is on the right of the label as displayed


def test_printed_digits_are_read(scanner: Scanner) -> None:
    result = scanner.scan(encode(label(code=CODE)))
    assert payloads(result, "digits") == {CODE}
    assert result.found[0].confidence > 0.8


def test_printed_legacy_and_grouped_codes(scanner: Scanner) -> None:
    legacy = "12322100000000009"
    img = text(canvas(), f"有机码 {legacy}", (100, 300), 44)
    assert payloads(scanner.scan(encode(img)), "digits") == {legacy}
    grouped = text(canvas(), "有机码：0123 26 1000 0000 0001", (100, 300), 44)
    assert payloads(scanner.scan(encode(grouped)), "digits") == {CODE}


def test_printed_digits_with_unknown_body_are_not_reported(scanner: Scanner) -> None:
    result = scanner.scan(encode(label(code="077726100000000001")))
    assert payloads(result, "digits") == set()
    assert result.uncertain and result.uncertain[0].reason in ("unknown_body", "body_code_shape")


def test_code_like_numbers_are_not_codes(scanner: Scanner) -> None:
    img = canvas()
    text(img, "客服电话 13812345678", (80, 100), 40)
    text(img, "生产日期 2026-03-01  批号 20260301123456", (80, 250), 40)
    text(img, "条码 6901234567892", (80, 400), 40)
    text(img, "编号 0123261000000000012", (80, 550), 40)  # 19 digits: one too many
    result = scanner.scan(encode(img))
    assert payloads(result, "digits") == set()


def test_plausibility_rules() -> None:
    from datetime import date

    p = Plausibility(frozenset({"0123", "123"}), today=date(2026, 11, 23))
    assert p.check("012326100000000001") is None
    assert p.check("012327100000000001") == "year"  # next year
    assert p.check("512326100000000001") == "body_code_shape"
    assert p.check("12322100000000009") is None
    assert p.check("12326100000000009") == "year"  # a 17-digit code from the 18-digit era
    assert p.check("045626100000000001") == "unknown_body"


def test_candidates_shapes() -> None:
    assert candidates("有机码：0123 2610-0000 0000 01") == [("012326100000000001", True)]
    assert candidates("有機碼:O12326100000000001") == [("012326100000000001", True)]
    assert candidates("tel 138-1234-5678") == [("13812345678", False)]


def test_no_code_at_all(scanner: Scanner) -> None:
    result = scanner.scan(encode(canvas()))
    assert result.found == [] and result.uncertain == []


@pytest.mark.parametrize(
    "data,error",
    [
        (b"", NotAnImage),
        (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj<<>>endobj", NotAnImage),
        (b"GIF89a" + b"\x00" * 3, NotAnImage),
    ],
)
def test_not_images(scanner: Scanner, data: bytes, error: type) -> None:
    with pytest.raises(error):
        scanner.scan(data)


def test_truncated_jpeg(scanner: Scanner) -> None:
    data = encode(label(code=CODE))
    with pytest.raises(CorruptImage):
        scanner.scan(data[: len(data) // 3])


def test_decompression_bomb_refused_before_decoding(scanner: Scanner) -> None:
    data = bomb_png(20_000)  # 400 MP in ~50 kB
    assert len(data) < 100_000
    with pytest.raises(TooManyPixels):
        scanner.scan(data)
    # Just over the 24 MP limit, under Pillow's own bomb threshold: our header check.
    with pytest.raises(TooManyPixels):
        scanner.scan(bomb_png(5_000))


def test_byte_limit() -> None:
    small = Scanner(max_bytes=10_000)
    with pytest.raises(ImageTooLarge):
        small.scan(encode(label(code=CODE), "PNG"))


class _SymbolsUntil:
    """A symbol stage that records the deadline it was given and finds nothing."""

    def __init__(self) -> None:
        self.deadlines: list[float] = []

    def read(self, gray: object, deadline: float, **_: object) -> tuple[list[object], list[str]]:
        self.deadlines.append(deadline)
        return [], ["zxing"]


@pytest.mark.parametrize(("ocr", "share"), [("always", 0.5), ("auto", 0.5), ("never", 1.0)])
def test_symbols_leave_ocr_half_the_budget(ocr: str, share: float) -> None:
    import time

    s = Scanner(known_body_codes=BODIES, time_budget_ms=40_000, ocr=ocr)
    symbols = _SymbolsUntil()
    s._symbols = symbols  # type: ignore[assignment]
    before = time.perf_counter()
    s.scan(encode(label()), ocr="never" if ocr == "never" else None)
    given = symbols.deadlines[0] - before  # the deadline is fixed before the stage starts
    assert share * 40 <= given < share * 40 + 1
