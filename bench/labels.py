"""Synthetic photos of organic-code labels, deterministic from a seed.

Used by `bench/scanner_bench.py` and reusable by tests: every sample carries its own
ground truth (each rendered symbol's payload, the printed organic code, the printed
digits' height in the final image), so a reader can be scored without hand labelling.

    from bench.labels import generate, make_sample, BODY_CODES, LEGACY_BODY_CODES
    for s in generate(30, seed=1):               # Sample objects, one per image
        ...
    s = make_sample(7, seed=1, tier="hard", kind="qr+digits")   # one sample, reproducible

What is drawn (DOMAIN.md): the round China organic product mark (green or brown ring,
"中国有机产品" / "ORGANIC" along the ring), the printed code after "有机码" (18 digits,
sometimes grouped "0123 24 1234 5678 90", or the 17-digit legacy form), a QR carrying
the code in each payload shape shoppers meet (bare digits, URL path segment, `code`/`c`
query, WeChat `q`, Wuchang BQ token URLs), EAN-13 / Code 128 / DataMatrix on packages,
and negatives: package text full of code-like digit runs that are not organic codes.

Sample `i` depends only on (seed, i), never on earlier samples, so a test can rebuild
one failing image alone.
"""

from __future__ import annotations

import io
import math
import random
import string
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from functools import cache
from urllib.parse import quote

import cv2
import numpy as np
import zxingcpp
from PIL import Image, ImageDraw, ImageFont

# Realistic certification-body codes: domestic approval serials zero-padded to 4,
# foreign bodies `9` + serial, equivalence-MoU bodies `8` + serial.
BODY_CODES: tuple[str, ...] = ("0123", "0456", "0789", "0031", "0215", "9001", "9014", "8002")
# Legacy (17-digit) codes use 3-digit body codes: domestic serial, or `9` + 2 digits.
LEGACY_BODY_CODES: tuple[str, ...] = ("123", "456", "789", "031", "215", "901")
ALL_BODY_CODES: frozenset[str] = frozenset(BODY_CODES + LEGACY_BODY_CODES)

TIERS: tuple[str, ...] = ("easy", "medium", "hard")
KINDS: tuple[str, ...] = ("qr", "digits", "qr+digits", "barcode", "negative")
# Kinds cycle per tier so every tier gets every kind in fixed proportions
# (QR 30 %, digits 25 %, both 25 %, barcode 10 %, negative 10 %... see counts below).
_KIND_CYCLE: tuple[str, ...] = (
    "qr+digits",
    "digits",
    "qr",
    "negative",
    "qr+digits",
    "digits",
    "qr",
    "barcode",
    "digits",
    "qr+digits",
    "qr",
    "negative",
    "digits",
    "qr+digits",
    "qr",
    "barcode",
    "qr+digits",
    "digits",
    "qr",
    "negative",
)

_FONT_DIR = "/usr/share/fonts/truetype"
CJK_FONTS: tuple[str, ...] = (f"{_FONT_DIR}/wqy/wqy-microhei.ttc", f"{_FONT_DIR}/wqy/wqy-zenhei.ttc")
DIGIT_FONTS: tuple[str, ...] = (
    f"{_FONT_DIR}/dejavu/DejaVuSans.ttf",
    f"{_FONT_DIR}/dejavu/DejaVuSans-Bold.ttf",
    f"{_FONT_DIR}/dejavu/DejaVuSansCondensed.ttf",
    f"{_FONT_DIR}/dejavu/DejaVuSansMono.ttf",
    f"{_FONT_DIR}/dejavu/DejaVuSerif.ttf",
    f"{_FONT_DIR}/wqy/wqy-microhei.ttc",
)
_GREENS = ((0, 128, 64), (20, 140, 60), (0, 110, 70))
_BROWNS = ((140, 90, 40), (120, 75, 35), (160, 100, 50))

# Photo sizes (w, h) from a 0.3 MP webcam frame to a 12 MP phone photo; weights favour
# phone sizes, and 12 MP gets enough samples for its own timing line.
_SIZES: tuple[tuple[int, int], ...] = (
    (640, 480),
    (800, 600),
    (1280, 960),
    (1600, 1200),
    (2048, 1536),
    (2592, 1944),
    (3264, 2448),
    (4000, 3000),
)
_SIZE_WEIGHTS = (8, 8, 12, 14, 14, 12, 12, 20)

_EXIF_ORIENTATION = 0x0112
# Stored pixels for a displayed image under each EXIF orientation: exif_transpose
# applies ROTATE_180 for 3, ROTATE_270 for 6 and ROTATE_90 for 8, so storing the
# inverse makes the displayed image (the one the truth refers to) exactly ours.
_STORE_FOR_ORIENTATION = {
    3: Image.Transpose.ROTATE_180,
    6: Image.Transpose.ROTATE_90,
    8: Image.Transpose.ROTATE_270,
}


@dataclass(frozen=True, slots=True)
class Sample:
    """One synthetic photo and its ground truth (relative to the EXIF-displayed image)."""

    image: bytes  # encoded JPEG (sometimes PNG)
    tier: str  # "easy" | "medium" | "hard"
    kind: str  # "qr" | "digits" | "qr+digits" | "barcode" | "negative"
    truth_codes: list[tuple[str, str]]  # (symbology, payload) of every symbol rendered
    truth_digits: str | None  # the organic code printed as text (17/18 digits, no spaces)
    digit_height_px: float | None  # printed digits' ink height in the displayed image
    megapixels: float
    index: int = 0
    seed: int = 0
    width: int = 0  # displayed size (after EXIF orientation)
    height: int = 0
    format: str = "jpeg"  # "jpeg" | "png"
    exif_orientation: int = 1  # 1 = none; 3, 6, 8 = stored pixels are rotated
    qr_module_px: float | None = None  # QR module size in the displayed image
    printed_text: str | None = None  # the code line as printed ("有机码 0123 24 …")
    layout: str = ""
    distortions: dict[str, float] = field(default_factory=dict)
    hard_effects: tuple[str, ...] = ()  # hard tier: the troubles applied at full strength

    @property
    def qr_payloads(self) -> list[str]:
        return [p for s, p in self.truth_codes if s == "qr"]


# ----------------------------------------------------------------------------- codes


def organic_code(rng: random.Random, *, legacy: bool = False, year: int | None = None) -> str:
    """A realistic code: known body + issue year 19..26 + 12 random digits (no check digit)."""
    yy = year if year is not None else rng.randint(19, 26)
    body = rng.choice(LEGACY_BODY_CODES if legacy else BODY_CODES)
    return f"{body}{yy:02d}{rng.randrange(10**12):012d}"


def bq_token(rng: random.Random) -> str:
    """Wuchang BQ A/B codes are opaque 8-32 char tokens of 0-9A-Za-z (DOMAIN.md)."""
    alphabet = string.ascii_letters + string.digits
    n = rng.choice((10, 12, 16, 20, 24, 32))
    while True:
        tok = "".join(rng.choice(alphabet) for _ in range(n))
        # An all-digit 17/18 token would read as an organic code; the provider's are not.
        if not tok.isdigit():
            return tok


def ean13(rng: random.Random) -> str:
    """A valid EAN-13 with a Chinese GS1 prefix (690-699)."""
    body = f"69{rng.randint(0, 9)}{rng.randrange(10**9):09d}"
    total = sum(int(d) * (3 if i % 2 else 1) for i, d in enumerate(body))
    return body + str((10 - total % 10) % 10)


_QR_HOSTS = (
    "https://yjm.cqc-cert.cn",
    "http://www.ofdc-cert.com",
    "https://trace.cnca-org.cn",
    "https://ec.zgyjcp.cn",
)


def qr_payload(rng: random.Random, code: str) -> tuple[str, str]:
    """(shape, payload) for an organic code, in every shape DOMAIN.md lists."""
    host = rng.choice(_QR_HOSTS)
    shape = rng.choice(
        ("digits", "digits", "path", "path", "query_code", "query_c", "wechat_q", "path_slash")
    )
    if shape == "digits":
        return shape, code
    if shape == "path":
        return shape, f"{host}/yjm/{code}"
    if shape == "path_slash":
        return shape, f"{host}/q/{code}/"
    if shape == "query_code":
        return shape, f"{host}/verify?code={code}&src=label"
    if shape == "query_c":
        return shape, f"{host}/m?c={code}"
    inner = f"{host}/c/{code}"
    return shape, f"https://mp.weixin.qq.com/a/~?q={quote(inner, safe='')}"


def bq_payload(rng: random.Random, token: str) -> tuple[str, str]:
    host = rng.choice(("https://bq.wcdm-trace.cn", "http://wc.zsym.com.cn", "https://sy.wuchangrice.cn"))
    shape = rng.choice(("bq_path", "bq_code", "bq_c"))
    if shape == "bq_path":
        return shape, f"{host}/a/{token}"
    if shape == "bq_code":
        return shape, f"{host}/q?code={token}"
    return shape, f"{host}/t?c={token}&v=2"


def format_printed(rng: random.Random, code: str) -> str:
    """How the code is printed after 有机码: contiguous, or grouped as bodies print it."""
    style = rng.random()
    if len(code) == 18:
        digits = code if style < 0.6 else f"{code[:4]} {code[4:6]} {code[6:10]} {code[10:14]} {code[14:]}"
    else:
        digits = code if style < 0.6 else f"{code[:15]} {code[15:]}"
    prefix = rng.choice(("有机码：", "有机码：", "有机码:", "有机码 "))
    return prefix + digits


# ----------------------------------------------------------------------------- drawing


@cache
def _font(path: str, size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(path, max(4, size))


@cache
def _digit_ink_ratio(path: str) -> float:
    """Ink height of the digits 0-9 per point of font size (digits have no descenders)."""
    size = 100
    font = _font(path, size)
    left, top, right, bottom = font.getbbox("0123456789", anchor="ls")
    mask = Image.new("L", (math.ceil(right - left) + 10, math.ceil(bottom - top) + 10))
    ImageDraw.Draw(mask).text((5 - left, 5 - top), "0123456789", font=font, fill=255, anchor="ls")
    rows = np.nonzero(np.asarray(mask).max(axis=1) > 127)[0]
    return float(rows[-1] - rows[0] + 1) / size


def _font_for_digit_height(path: str, digit_h: float) -> ImageFont.FreeTypeFont:
    return _font(path, round(digit_h / _digit_ink_ratio(path)))


def _symbol_image(fmt: zxingcpp.BarcodeFormat, content: str, module: int) -> Image.Image:
    """A symbol at an integer module size, quiet zone included (zxing-cpp's writer)."""
    kwargs = {"force_square": True} if fmt == zxingcpp.BarcodeFormat.DataMatrix else {}
    try:
        barcode = zxingcpp.create_barcode(content, fmt, **kwargs)
    except (TypeError, ValueError):  # a writer without the option: its default shape will do
        barcode = zxingcpp.create_barcode(content, fmt)
    img = np.asarray(barcode.to_image(scale=1, add_quiet_zones=True))
    return Image.fromarray(np.kron(img, np.ones((module, module), dtype=np.uint8))).convert("RGB")


def _ean_image(content: str, module: int) -> Image.Image:
    """EAN-13 bars with the printed digits below, as on every retail package."""
    bars = np.asarray(_symbol_image(zxingcpp.BarcodeFormat.EAN13, content, module).convert("L"))
    bar_h = module * 50
    bars = cv2.resize(bars, (bars.shape[1], bar_h), interpolation=cv2.INTER_NEAREST)
    font = _font(DIGIT_FONTS[0], round(module * 9))
    img = Image.new("RGB", (bars.shape[1], bar_h + round(font.size * 1.1)), (255, 255, 255))
    img.paste(Image.fromarray(bars).convert("RGB"), (0, 0))
    d = ImageDraw.Draw(img)
    q = 11 * module  # quiet zone left of the start guard
    d.text((q - module * 8, bar_h + font.size * 0.95), content[0], font=font, fill=(0, 0, 0), anchor="ls")
    d.text((q + module * 3, bar_h + font.size * 0.95), content[1:7], font=font, fill=(0, 0, 0), anchor="ls")
    d.text((q + module * 50, bar_h + font.size * 0.95), content[7:], font=font, fill=(0, 0, 0), anchor="ls")
    return img


def _qr_modules(content: str) -> int:
    barcode = zxingcpp.create_barcode(content, zxingcpp.BarcodeFormat.QRCode)
    return int(np.asarray(barcode.to_image(scale=1, add_quiet_zones=False)).shape[0])


@dataclass
class _Art:
    """A label drawn flat, before it is photographed."""

    img: Image.Image  # RGBA, transparent outside the label's shape
    codes: list[tuple[str, str]] = field(default_factory=list)
    digits: str | None = None
    printed: str | None = None
    digit_box: tuple[float, float, float, float] | None = None  # digits' ink box (x0, y0, x1, y1)
    qr_box: tuple[float, float, float, float] | None = None  # QR modules only, no quiet zone
    qr_modules: int = 0
    layout: str = ""


def _draw_arc_text(
    canvas: Image.Image,
    text: str,
    cx: float,
    cy: float,
    radius: float,
    size: int,
    start_deg: float,
    end_deg: float,
    *,
    bottom: bool,
    fill: tuple[int, int, int],
    font_path: str,
) -> None:
    """Characters along a circle, each rotated so its top faces away from (top arc) or
    towards (bottom arc) the centre, as the ring text of the organic mark is printed."""
    font = _font(font_path, size)
    n = len(text)
    for k, ch in enumerate(text):
        theta = start_deg + (end_deg - start_deg) * (k + 0.5) / n
        rot = (90 - theta) if bottom else -(theta + 90)
        glyph = Image.new("L", (size * 2, size * 2))
        ImageDraw.Draw(glyph).text((size, size), ch, font=font, fill=255, anchor="mm")
        glyph = glyph.rotate(rot, resample=Image.Resampling.BICUBIC)
        x = cx + radius * math.cos(math.radians(theta)) - size
        y = cy + radius * math.sin(math.radians(theta)) - size
        canvas.paste(Image.new("RGBA", glyph.size, (*fill, 255)), (round(x), round(y)), glyph)


def _draw_mark(canvas: Image.Image, cx: float, cy: float, r: float, color: tuple[int, int, int]) -> None:
    """China's organic product mark: a coloured ring with the ring text, a globe and a seed."""
    d = ImageDraw.Draw(canvas)
    d.ellipse((cx - r, cy - r, cx + r, cy + r), fill=(*color, 255))
    r_in = r * 0.68
    d.ellipse((cx - r_in, cy - r_in, cx + r_in, cy + r_in), fill=(255, 255, 255, 255))
    # Globe: latitude arcs inside the white disc, a seed shape rising from it.
    g = r_in * 0.8
    w = max(1, round(r * 0.04))
    for k in (-0.5, 0.0, 0.5):
        d.arc(
            (cx - g, cy - g * (1 - abs(k)) + g * k * 0.6, cx + g, cy + g * (1 - abs(k)) + g * k * 0.6),
            200,
            340,
            fill=(*color, 255),
            width=w,
        )
    d.ellipse((cx - g * 0.35, cy - g * 0.75, cx + g * 0.35, cy + g * 0.25), fill=(*color, 255))
    d.ellipse((cx - g * 0.9, cy + g * 0.05, cx + g * 0.9, cy + g * 0.7), outline=(*color, 255), width=w)
    band = r - r_in
    size = max(4, round(band * 0.72))
    mid = (r + r_in) / 2
    font_path = CJK_FONTS[0]
    _draw_arc_text(
        canvas,
        "中国有机产品",
        cx,
        cy,
        mid,
        size,
        -165,
        -15,
        bottom=False,
        fill=(255, 255, 255),
        font_path=font_path,
    )
    _draw_arc_text(
        canvas, "ORGANIC", cx, cy, mid, size, 150, 30, bottom=True, fill=(255, 255, 255), font_path=font_path
    )


def _text_width(font: ImageFont.FreeTypeFont, text: str) -> float:
    left, _, right, _ = font.getbbox(text, anchor="ls")
    return float(right - left)


def _draw_code_line(
    canvas: Image.Image,
    x: float,
    baseline: float,
    prefix: str,
    digits_text: str,
    cjk_font: ImageFont.FreeTypeFont,
    digit_font: ImageFont.FreeTypeFont,
    digit_h: float,
    fill: tuple[int, int, int] = (20, 20, 20),
) -> tuple[float, float, float, float]:
    """Draw "有机码：" in a CJK font and the digits in a digit font on one baseline;
    returns the digits' ink box."""
    d = ImageDraw.Draw(canvas)
    d.text((x, baseline), prefix, font=cjk_font, fill=(*fill, 255), anchor="ls")
    x2 = x + _text_width(cjk_font, prefix) + (digit_h * 0.25 if prefix else 0)
    d.text((x2, baseline), digits_text, font=digit_font, fill=(*fill, 255), anchor="ls")
    return (x2, baseline - digit_h, x2 + _text_width(digit_font, digits_text), baseline)


def _split_printed(printed: str) -> tuple[str, str]:
    for i, ch in enumerate(printed):
        if ch.isdigit():
            return printed[:i], printed[i:]
    return printed, ""


def _code_line_width(
    prefix: str, digits_text: str, cjk: ImageFont.FreeTypeFont, dig: ImageFont.FreeTypeFont, digit_h: float
) -> float:
    return _text_width(cjk, prefix) + digit_h * 0.25 + _text_width(dig, digits_text)


@dataclass
class _Style:
    digit_h: float
    module: int  # QR module size in label pixels (integer: crisp like a print)
    digit_font: str
    cjk_font: str
    color: tuple[int, int, int]


def _organic_label(rng: random.Random, st: _Style, *, with_qr: bool, with_digits: bool, oval: bool) -> _Art:
    """The organic mark with the printed code and/or a QR, as a rectangular sticker or
    the small oval label (25×16 mm class) that usually carries digits only."""
    legacy = with_digits and rng.random() < 0.2
    code = organic_code(rng, legacy=legacy)
    h = st.digit_h
    dig = _font_for_digit_height(st.digit_font, h)
    cjk = _font(st.cjk_font, round(dig.size * rng.uniform(0.9, 1.1)))
    printed = format_printed(rng, code) if with_digits else None
    prefix, digits_text = _split_printed(printed) if printed else ("", "")
    two_lines = with_digits and rng.random() < 0.3
    if two_lines:
        prefix = prefix.rstrip("：: ")
    line_w = (
        (
            max(_text_width(cjk, prefix), _text_width(dig, digits_text))
            if two_lines
            else _code_line_width(prefix, digits_text, cjk, dig, h)
        )
        if with_digits
        else 0.0
    )
    line_h = dig.size * 1.35
    text_h = (2 * line_h if two_lines else line_h) if with_digits else 0.0

    qr_content = ""
    shape = ""
    modules = 0
    qr_side = 0.0
    if with_qr:
        shape, qr_content = qr_payload(rng, code)
        modules = _qr_modules(qr_content)
        qr_side = (modules + 8) * st.module  # with the 4-module quiet zone each side
    pad = dig.size * 0.6
    mark_d = qr_side * rng.uniform(0.8, 1.0) if with_qr else max(dig.size * rng.uniform(3.0, 4.5), 40)
    row_w = mark_d + (pad + qr_side if with_qr else 0)
    row_h = max(mark_d, qr_side)
    inner_w = max(row_w, line_w)
    inner_h = row_h + (pad * 0.5 + text_h if with_digits else 0)
    if oval:
        # An ellipse circumscribing the content box with a margin: w = √2·content.
        W, H = inner_w * 1.5 + 2 * pad, inner_h * 1.55 + 2 * pad  # noqa: N806
    else:
        W, H = inner_w + 2 * pad, inner_h + 2 * pad  # noqa: N806
    W, H = math.ceil(W), math.ceil(H)  # noqa: N806
    canvas = Image.new("RGBA", (W, H), (0, 0, 0, 0))
    d = ImageDraw.Draw(canvas)
    paper = (255, 255, 255) if rng.random() < 0.6 else (rng.randint(240, 255), rng.randint(238, 252), 225)
    border = max(1, round(dig.size * 0.08))
    if oval:
        d.ellipse((0, 0, W - 1, H - 1), fill=(*paper, 255), outline=(*st.color, 255), width=border)
    else:
        d.rounded_rectangle(
            (0, 0, W - 1, H - 1), radius=pad, fill=(*paper, 255), outline=(*st.color, 255), width=border
        )
    x0 = (W - inner_w) / 2
    y0 = (H - inner_h) / 2
    art = _Art(
        canvas,
        layout=("oval" if oval else "sticker") + ("+qr" if with_qr else "") + (f":{shape}" if shape else ""),
    )
    # Row: mark then QR, centred horizontally over the text.
    rx = x0 + (inner_w - row_w) / 2
    _draw_mark(canvas, rx + mark_d / 2, y0 + row_h / 2, mark_d / 2, st.color)
    if with_qr:
        qr_img = _symbol_image(zxingcpp.BarcodeFormat.QRCode, qr_content, st.module)
        qx, qy = round(rx + mark_d + pad), round(y0 + (row_h - qr_side) / 2)
        canvas.paste(qr_img, (qx, qy))
        q = 4 * st.module
        art.qr_box = (qx + q, qy + q, qx + q + modules * st.module, qy + q + modules * st.module)
        art.qr_modules = modules
        art.codes.append(("qr", qr_content))
    if with_digits:
        ty = y0 + row_h + pad * 0.5
        tx = x0 + (inner_w - line_w) / 2
        if two_lines:
            d.text(
                (x0 + (inner_w - _text_width(cjk, prefix)) / 2, ty + line_h * 0.8),
                prefix,
                font=cjk,
                fill=(20, 20, 20, 255),
                anchor="ls",
            )
            dx = x0 + (inner_w - _text_width(dig, digits_text)) / 2
            art.digit_box = _draw_code_line(canvas, dx, ty + line_h * 1.8, "", digits_text, cjk, dig, h)
        else:
            art.digit_box = _draw_code_line(canvas, tx, ty + line_h * 0.8, prefix, digits_text, cjk, dig, h)
        art.digits = code
        art.printed = printed
    return art


def _bq_label(rng: random.Random, st: _Style) -> _Art:
    """Wuchang rice BQ mark (50×50 mm): title, the BQ QR with a token URL, small print."""
    token = bq_token(rng)
    shape, content = bq_payload(rng, token)
    modules = _qr_modules(content)
    qr_side = (modules + 8) * st.module
    title = _font(st.cjk_font, round(qr_side * 0.16))
    small = _font(st.cjk_font, round(qr_side * 0.08))
    pad = qr_side * 0.1
    W = H = math.ceil(qr_side + 2 * pad + title.size * 0.2)  # noqa: N806
    H = math.ceil(H + title.size * 1.4 + small.size * 1.6)  # noqa: N806
    canvas = Image.new("RGBA", (W, H), (0, 0, 0, 0))
    d = ImageDraw.Draw(canvas)
    band = (200, 30, 30) if rng.random() < 0.5 else (20, 100, 50)
    d.rectangle(
        (0, 0, W - 1, H - 1), fill=(255, 255, 255, 255), outline=(*band, 255), width=max(2, round(pad / 3))
    )
    d.text((W / 2, pad + title.size * 0.9), "五常大米", font=title, fill=(*band, 255), anchor="ms")
    qy = round(pad + title.size * 1.3)
    qx = round((W - qr_side) / 2)
    canvas.paste(_symbol_image(zxingcpp.BarcodeFormat.QRCode, content, st.module), (qx, qy))
    d.text(
        (W / 2, qy + qr_side + small.size * 1.1),
        "溯源防伪码 扫码查询",
        font=small,
        fill=(60, 60, 60, 255),
        anchor="ms",
    )
    q = 4 * st.module
    return _Art(
        canvas,
        codes=[("qr", content)],
        qr_box=(qx + q, qy + q, qx + q + modules * st.module, qy + q + modules * st.module),
        qr_modules=modules,
        layout=f"bq:{shape}",
    )


def _distractor_lines(rng: random.Random, *, strong: bool) -> list[str]:
    """Package text with digit runs that look like codes but are not 17/18-digit organic codes."""
    y, m, dd = rng.randint(2019, 2025), rng.randint(1, 12), rng.randint(1, 28)
    phone = f"1{rng.choice('3589')}{rng.randrange(10**9):09d}"
    lines = [
        rng.choice(("客服电话：", "服务热线：", "电话："))
        + rng.choice(
            (
                phone,
                f"{phone[:3]} {phone[3:7]} {phone[7:]}",
                f"400-{rng.randint(100, 999)}-{rng.randint(1000, 9999)}",
                f"0451-{rng.randint(1000, 9999)}{rng.randint(1000, 9999)}",
            )
        ),
        rng.choice(("生产日期：", "包装日期："))
        + rng.choice((f"{y}{m:02d}{dd:02d}", f"{y}-{m:02d}-{dd:02d}", f"{y}.{m:02d}.{dd:02d}")),
        f"净含量：{rng.choice(('500g', '2.5kg', '5kg', '250g', '1L'))}"
        f"    保质期：{rng.choice(('12', '18', '24'))}个月",
        f"生产许可证编号：SC{rng.randrange(10**14):014d}",
        f"执行标准：GB/T {rng.choice(('19630', '1354', '19266'))}",
    ]
    if strong:
        lines += [
            f"条码：{ean13(rng)}",
            f"批号：{y}{m:02d}{dd:02d}{rng.randrange(10**8):08d}",  # 16 digits
            f"追溯码：{rng.randrange(10**18, 10**19)}",  # 19 digits
            f"防伪码：{rng.randrange(10**19, 10**20)}",  # 20 digits
            f"证书编号：{rng.choice(BODY_CODES)}OP{rng.randint(19, 25)}{rng.randrange(10**5):05d}",
            f"身份码：{rng.randint(19, 25)}{rng.randrange(10**7):07d}",  # 9-digit identity code
            # 16 digits after 有机码: a misprint or a fake, never a code.
            f"有机码：{rng.choice(BODY_CODES)} {rng.randint(19, 25)}{rng.randrange(10**10):010d}",
        ]
    rng.shuffle(lines)
    return lines


def _panel(
    rng: random.Random,
    st: _Style,
    lines: list[str],
    *,
    symbols: Sequence[tuple[str, str]],
    mark: bool,
    organic: _Art | None = None,
) -> _Art:
    """A package panel: product name, lines of small print, barcodes, maybe the organic mark
    or a whole organic label (its truth carried over)."""
    h = st.digit_h
    body = _font(st.cjk_font, round(h / _digit_ink_ratio(st.cjk_font)))
    title = _font(st.cjk_font, round(body.size * 1.8))
    pad = body.size
    product = rng.choice(("有机大米", "有机绿茶", "有机小米", "有机黄豆", "有机红枣", "五常有机稻花香"))
    line_h = body.size * 1.45
    text_w = max([_text_width(body, t) for t in lines] + [_text_width(title, product)])
    sym_imgs: list[Image.Image] = []
    module = max(2, round(st.module * 0.75))
    for sym, payload in symbols:
        fmt = {
            "ean13": zxingcpp.BarcodeFormat.EAN13,
            "code128": zxingcpp.BarcodeFormat.Code128,
            "datamatrix": zxingcpp.BarcodeFormat.DataMatrix,
        }[sym]
        if sym == "ean13":
            img = _ean_image(payload, module)
        else:
            img = _symbol_image(fmt, payload, module if sym == "code128" else st.module + 1)
        if sym == "code128":
            img = img.resize((img.width, max(img.height, round(body.size * 3))), Image.Resampling.NEAREST)
        sym_imgs.append(img)
    col2_w = max([i.width for i in sym_imgs] + [0])
    extra_w = organic.img.width if organic else (body.size * 5 if mark else 0)
    W = math.ceil(pad * 3 + text_w + max(col2_w, extra_w))  # noqa: N806
    col2_h = sum(i.height + pad for i in sym_imgs) + (organic.img.height + pad if organic else 0)
    text_h = pad * 2 + title.size * 1.6 + line_h * len(lines)
    H = math.ceil(max(text_h, col2_h + pad + (body.size * 5 if mark else 0)))  # noqa: N806
    bg = rng.choice(((250, 246, 235), (236, 246, 236), (255, 255, 255), (245, 235, 215)))
    canvas = Image.new("RGBA", (W, H), (*bg, 255))
    d = ImageDraw.Draw(canvas)
    d.text((pad, pad + title.size), product, font=title, fill=(*st.color, 255), anchor="ls")
    y = pad + title.size * 1.6
    for t in lines:
        y += line_h
        d.text((pad, y), t, font=body, fill=(40, 40, 40, 255), anchor="ls")
    art = _Art(canvas, layout="panel")
    x2 = round(pad * 2 + text_w)
    y2 = pad
    for (sym, payload), img in zip(symbols, sym_imgs, strict=True):
        canvas.paste(img, (x2, round(y2)))
        art.codes.append((sym, payload))
        y2 += img.height + pad
    if organic is not None:
        canvas.alpha_composite(organic.img, (x2, round(y2)))
        art.codes += organic.codes
        art.digits, art.printed = organic.digits, organic.printed
        if organic.digit_box:
            bx = organic.digit_box
            art.digit_box = (bx[0] + x2, bx[1] + round(y2), bx[2] + x2, bx[3] + round(y2))
        art.layout += "+organic"
    elif mark:
        r = body.size * 2.2
        _draw_mark(canvas, x2 + r + 2, H - pad - r, r, st.color)
        art.layout += "+mark"
    return art


def _text_block(rng: random.Random, st: _Style) -> _Art:
    """Loose package print around a label: more code-like digit runs to resist."""
    lines = _distractor_lines(rng, strong=False)[: rng.randint(2, 4)]
    font = _font(st.cjk_font, round(st.digit_h / _digit_ink_ratio(st.cjk_font)))
    W = math.ceil(max(_text_width(font, t) for t in lines) + font.size)  # noqa: N806
    H = math.ceil(font.size * 1.5 * len(lines) + font.size)  # noqa: N806
    canvas = Image.new("RGBA", (W, H), (0, 0, 0, 0))
    d = ImageDraw.Draw(canvas)
    for k, t in enumerate(lines):
        d.text(
            (font.size / 2, font.size * (1.5 * k + 1.6)), t, font=font, fill=(50, 50, 50, 255), anchor="ls"
        )
    return _Art(canvas, layout="text")


# ----------------------------------------------------------------------------- photographing


@dataclass(frozen=True)
class _TierParams:
    digit_h: tuple[float, float]
    module: tuple[int, int]  # QR module px, inclusive
    rotation: float  # max |degrees| in-plane
    tilt: float  # max out-of-plane degrees (perspective)
    blur: tuple[float, float]  # Gaussian sigma
    motion: float  # probability of motion blur instead
    noise: tuple[float, float]
    jpeg_q: tuple[int, int]
    png: float
    light: float  # gain swing of the uneven illumination
    glare: float  # probability
    contrast: tuple[float, float]
    exif: float  # probability of an EXIF-rotated JPEG
    flip180: float


TIER_PARAMS: dict[str, _TierParams] = {
    "easy": _TierParams(
        (20, 40), (4, 7), 4, 5, (0.0, 0.3), 0.0, (0, 2), (85, 95), 0.2, 0.05, 0.0, (1.0, 1.0), 0.0, 0.0
    ),
    "medium": _TierParams(
        (12, 20), (3, 4), 15, 18, (0.4, 1.0), 0.0, (2, 6), (60, 80), 0.05, 0.15, 0.15, (0.8, 1.0), 0.1, 0.0
    ),
    "hard": _TierParams(
        (8, 14), (2, 3), 90, 40, (0.7, 1.2), 0.5, (5, 10), (30, 60), 0.0, 0.4, 1.0, (0.45, 0.7), 0.35, 0.25
    ),
}
# Hard photos always have small print, low JPEG quality and any rotation; of the other
# troubles each gets two or three at full strength and the rest at medium strength.
# Stacking all of them at once would make nearly every photo unreadable by anything,
# which measures nothing.
HARD_EFFECTS: tuple[str, ...] = ("perspective", "blur", "light", "glare", "contrast", "noise")


def _hard_params(rng: random.Random) -> tuple[_TierParams, tuple[str, ...]]:
    h, m = TIER_PARAMS["hard"], TIER_PARAMS["medium"]
    severe = tuple(sorted(rng.sample(HARD_EFFECTS, k=rng.randint(2, 3))))
    return replace(
        h,
        tilt=h.tilt if "perspective" in severe else m.tilt,
        blur=h.blur if "blur" in severe else m.blur,
        motion=h.motion if "blur" in severe else 0.0,
        light=h.light if "light" in severe else m.light,
        glare=h.glare if "glare" in severe else m.glare,
        contrast=h.contrast if "contrast" in severe else m.contrast,
        noise=h.noise if "noise" in severe else m.noise,
    ), severe


def _homography(rng: random.Random, w: int, h: int, p: _TierParams) -> tuple[np.ndarray, float]:
    """Label plane → camera: in-plane rotation, out-of-plane tilt, pinhole projection
    (focal length ~ the label size, so the centre keeps scale ~1). Returns (H, rotation)."""
    rot = rng.uniform(-p.rotation, p.rotation)
    if rng.random() < p.flip180:
        rot += 180
    ax = math.radians(rng.uniform(-p.tilt, p.tilt))
    ay = math.radians(rng.uniform(-p.tilt, p.tilt))
    rz = math.radians(rot)
    rx = np.array([[1, 0, 0], [0, math.cos(ax), -math.sin(ax)], [0, math.sin(ax), math.cos(ax)]])
    ry = np.array([[math.cos(ay), 0, math.sin(ay)], [0, 1, 0], [-math.sin(ay), 0, math.cos(ay)]])
    rzm = np.array([[math.cos(rz), -math.sin(rz), 0], [math.sin(rz), math.cos(rz), 0], [0, 0, 1]])
    r = rx @ ry @ rzm
    f = 1.5 * max(w, h)
    src = np.array([[0, 0], [w, 0], [w, h], [0, h]], dtype=np.float64)
    pts = np.c_[src - (w / 2, h / 2), np.zeros(4)] @ r.T
    z = pts[:, 2] + f
    dst = pts[:, :2] * (f / z)[:, None]
    return cv2.getPerspectiveTransform(src.astype(np.float32), dst.astype(np.float32)), rot


def _apply(hm: np.ndarray, pts: np.ndarray) -> np.ndarray:
    return cv2.perspectiveTransform(pts.reshape(-1, 1, 2).astype(np.float64), hm).reshape(-1, 2)


def _box_height(hm: np.ndarray, box: tuple[float, float, float, float]) -> float:
    """Mean length of the box's left and right edges after mapping: the text's local height."""
    x0, y0, x1, y1 = box
    p = _apply(hm, np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]]))
    return float((np.linalg.norm(p[0] - p[3]) + np.linalg.norm(p[1] - p[2])) / 2)


def _box_side(hm: np.ndarray, box: tuple[float, float, float, float]) -> float:
    """Mean side length of a (square) box after mapping: the QR's size in the photo."""
    x0, y0, x1, y1 = box
    p = _apply(hm, np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]]))
    return float(np.mean([np.linalg.norm(p[i] - p[(i + 1) % 4]) for i in range(4)]))


def _background(nrng: np.random.Generator, w: int, h: int) -> np.ndarray:
    """Paper / cardboard / printed-package texture: a coloured low-frequency field plus
    grain, built at low resolution and upscaled so 12 MP stays fast."""
    base = nrng.choice(
        np.array(
            [
                [235, 232, 225],
                [200, 170, 130],
                [225, 235, 225],
                [180, 200, 220],
                [90, 80, 70],
                [245, 245, 245],
                [170, 60, 50],
            ],
            dtype=np.float32,
        )
    )
    # Mostly brightness variation (shading, folds), a little colour, at two scales.
    gh, gw = max(2, h // 160), max(2, w // 160)
    coarse = nrng.normal(0, 14, size=(gh, gw, 1)).astype(np.float32) + nrng.normal(
        0, 4, size=(gh, gw, 3)
    ).astype(np.float32)
    fine = nrng.normal(0, 6, size=(max(2, h // 24), max(2, w // 24), 1)).astype(np.float32)
    field_ = cv2.resize(coarse + base, (w, h), interpolation=cv2.INTER_CUBIC)
    field_ += cv2.resize(fine, (w, h), interpolation=cv2.INTER_LINEAR)[:, :, None]
    return np.clip(field_, 0, 255).astype(np.uint8)


def _composite(dst: np.ndarray, art: Image.Image, hm: np.ndarray) -> None:
    """Warp an RGBA label into `dst` in place, only over the quad's bounding box."""
    w, h = art.size
    quad = _apply(hm, np.array([[0, 0], [w, 0], [w, h], [0, h]], dtype=np.float64))
    x0, y0 = np.floor(quad.min(axis=0)).astype(int) - 2
    x1, y1 = np.ceil(quad.max(axis=0)).astype(int) + 2
    x0, y0 = max(x0, 0), max(y0, 0)
    x1, y1 = min(x1, dst.shape[1]), min(y1, dst.shape[0])
    if x1 <= x0 or y1 <= y0:
        return
    shift = np.array([[1, 0, -x0], [0, 1, -y0], [0, 0, 1]], dtype=np.float64)
    rgba = np.asarray(art)
    warped = cv2.warpPerspective(
        rgba,
        shift @ hm,
        (x1 - x0, y1 - y0),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=(0, 0, 0, 0),
    )
    alpha = warped[:, :, 3:4].astype(np.float32) / 255.0
    roi = dst[y0:y1, x0:x1].astype(np.float32)
    dst[y0:y1, x0:x1] = (roi * (1 - alpha) + warped[:, :, :3].astype(np.float32) * alpha + 0.5).astype(
        np.uint8
    )


def _place(rng: random.Random, hm: np.ndarray, size: tuple[int, int], w: int, h: int) -> np.ndarray | None:
    """Translate the warped label to a random spot fully inside a w×h photo, or None."""
    lw, lh = size
    quad = _apply(hm, np.array([[0, 0], [lw, 0], [lw, lh], [0, lh]], dtype=np.float64))
    lo, hi = quad.min(axis=0), quad.max(axis=0)
    margin = 8
    span_x, span_y = w - (hi[0] - lo[0]) - 2 * margin, h - (hi[1] - lo[1]) - 2 * margin
    if span_x < 0 or span_y < 0:
        return None
    tx = margin - lo[0] + rng.uniform(0, span_x)
    ty = margin - lo[1] + rng.uniform(0, span_y)
    return np.array([[1, 0, tx], [0, 1, ty], [0, 0, 1]], dtype=np.float64) @ hm


def _motion_kernel(length: float, angle: float) -> np.ndarray:
    n = max(3, math.ceil(length) | 1)
    k = np.zeros((n, n), dtype=np.float32)
    c = n // 2
    dx, dy = math.cos(math.radians(angle)), math.sin(math.radians(angle))
    for t in np.linspace(-length / 2, length / 2, n * 4):
        k[round(c + t * dy), round(c + t * dx)] = 1
    return k / k.sum()


def _degrade(
    img: np.ndarray,
    rng: random.Random,
    nrng: np.random.Generator,
    p: _TierParams,
    glare_at: tuple[float, float, float] | None,
    dist: dict[str, float],
) -> np.ndarray:
    h, w = img.shape[:2]
    # Uneven light: a tilted plane plus a soft vignette, multiplied in at uint8 speed.
    if p.light > 0:
        gy, gx = np.mgrid[0:16, 0:16].astype(np.float32) / 15 - 0.5
        a, b = rng.uniform(-1, 1), rng.uniform(-1, 1)
        gain = 1 + p.light * (a * gx + b * gy) - p.light * 0.6 * (gx**2 + gy**2)
        gain_u8 = np.clip(cv2.resize(gain, (w, h), interpolation=cv2.INTER_LINEAR) * 128, 0, 255).astype(
            np.uint8
        )
        img = cv2.multiply(img, cv2.merge([gain_u8] * 3), scale=1 / 128)
        dist["light"] = p.light
    c = rng.uniform(*p.contrast)
    if c < 0.999:
        mean = float(img.mean())
        img = cv2.convertScaleAbs(img, alpha=c, beta=(1 - c) * mean)
        dist["contrast"] = c
    if glare_at is not None:
        gx0, gy0, gr = glare_at
        x0, x1 = max(0, int(gx0 - 2 * gr)), min(w, int(gx0 + 2 * gr))
        y0, y1 = max(0, int(gy0 - 2 * gr)), min(h, int(gy0 + 2 * gr))
        if x1 > x0 and y1 > y0:
            yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
            strength = rng.uniform(0.5, 0.95)
            blob = strength * np.exp(-((xx - gx0) ** 2 + (yy - gy0) ** 2) / (2 * (gr / 1.6) ** 2))
            roi = img[y0:y1, x0:x1].astype(np.float32)
            img[y0:y1, x0:x1] = (roi + (255 - roi) * blob[:, :, None]).astype(np.uint8)
            dist["glare"] = strength
    if rng.random() < p.motion:
        length, angle = rng.uniform(3, 6), rng.uniform(0, 180)
        img = cv2.filter2D(img, -1, _motion_kernel(length, angle))
        dist["motion_px"] = length
    else:
        sigma = rng.uniform(*p.blur)
        if sigma >= 0.25:
            img = cv2.GaussianBlur(img, (0, 0), sigma)
            dist["blur_sigma"] = sigma
    sigma_n = rng.uniform(*p.noise)
    if sigma_n >= 0.5:
        # A 512² grain tile repeated: sensor noise without drawing 36 M normals per 12 MP photo.
        th, tw = min(h, 512), min(w, 512)
        tile = (nrng.standard_normal((th, tw, 1), dtype=np.float32) * sigma_n).astype(np.int16)
        grain = np.tile(tile, (-(-h // th), -(-w // tw), 3))[:h, :w]
        img = np.clip(img.astype(np.int16) + grain, 0, 255).astype(np.uint8)
        dist["noise"] = sigma_n
    return img


def make_sample(index: int, seed: int, tier: str, kind: str) -> Sample:
    """Render one labelled photo; the same (index, seed, tier, kind) gives the same bytes."""
    if tier not in TIER_PARAMS:
        raise ValueError(f"tier must be one of {TIERS}")
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}")
    rng = random.Random(f"labels:{seed}:{index}:{tier}:{kind}")
    nrng = np.random.default_rng([seed, index, TIERS.index(tier), KINDS.index(kind)])
    p, effects = _hard_params(rng) if tier == "hard" else (TIER_PARAMS[tier], ())
    w, h = rng.choices(_SIZES, weights=_SIZE_WEIGHTS)[0]
    if rng.random() < 0.4:
        w, h = h, w  # portrait
    lo, hi = p.digit_h
    if tier == "easy":
        # A bigger photo of a label usually means bigger print too (phones fill the frame).
        hi = max(hi, 14 * math.sqrt(w * h / 1e6))
    st = _Style(
        digit_h=rng.uniform(lo, hi),
        module=rng.randint(*p.module),
        digit_font=rng.choice(DIGIT_FONTS),
        cjk_font=rng.choice(CJK_FONTS),
        color=rng.choice(_GREENS if rng.random() < 0.6 else _BROWNS),
    )
    art = _render_art(rng, st, kind)
    for _ in range(12):
        hm, rot = _homography(rng, art.img.width, art.img.height, p)
        placed = _place(rng, hm, art.img.size, w, h)
        if placed is not None:
            break
        # Too big for this photo: a bigger photo keeps the tier's print size honest.
        bigger = [s for s in _SIZES if s[0] * s[1] > w * h]
        if bigger:
            w, h = bigger[0] if w >= h else bigger[0][::-1]
    else:
        raise RuntimeError("label does not fit the largest photo size")  # pragma: no cover
    img = _background(nrng, w, h)
    dist: dict[str, float] = {"rotation": rot}
    if kind != "negative" and tier != "easy" and rng.random() < 0.4:
        # Package print elsewhere in the photo: phone numbers, dates, licence numbers.
        block = _text_block(rng, st)
        bhm, _ = _homography(rng, block.img.width, block.img.height, p)
        bplaced = _place(rng, bhm, block.img.size, w, h)
        if bplaced is not None:
            _composite(img, block.img, bplaced)
    _composite(img, art.img, placed)
    glare_at = None
    if rng.random() < p.glare:
        aw, ah = art.img.size
        quad = _apply(placed, np.array([[0, 0], [aw, 0], [aw, ah], [0, ah]], dtype=np.float64))
        cx, cy = (
            rng.uniform(quad[:, 0].min(), quad[:, 0].max()),
            rng.uniform(quad[:, 1].min(), quad[:, 1].max()),
        )
        glare_at = (cx, cy, max(art.img.width, art.img.height) * rng.uniform(0.08, 0.2))
    img = _degrade(img, rng, nrng, p, glare_at, dist)

    digit_h = _box_height(placed, art.digit_box) if art.digit_box else None
    module_px = None
    if art.qr_box:
        side = _box_side(placed, art.qr_box)
        module_px = side / art.qr_modules
    # PNG only for small photos: a grainy 12 MP PNG would exceed any sane upload limit.
    fmt = "png" if w * h <= 3.2e6 and rng.random() < p.png else "jpeg"
    pil = Image.fromarray(img)
    buf = io.BytesIO()
    orientation = 1
    if fmt == "png":
        pil.save(buf, "PNG", compress_level=1)
    else:
        q = rng.randint(*p.jpeg_q)
        dist["jpeg_q"] = q
        if rng.random() < p.exif:
            orientation = rng.choice((3, 6, 8))
            exif = Image.Exif()
            exif[_EXIF_ORIENTATION] = orientation
            pil.transpose(_STORE_FOR_ORIENTATION[orientation]).save(
                buf, "JPEG", quality=q, exif=exif.tobytes()
            )
        else:
            pil.save(buf, "JPEG", quality=q)
    return Sample(
        image=buf.getvalue(),
        tier=tier,
        kind=kind,
        truth_codes=list(art.codes),
        truth_digits=art.digits,
        digit_height_px=round(digit_h, 2) if digit_h else None,
        megapixels=round(w * h / 1e6, 2),
        index=index,
        seed=seed,
        width=w,
        height=h,
        format=fmt,
        exif_orientation=orientation,
        qr_module_px=round(module_px, 2) if module_px else None,
        printed_text=art.printed,
        layout=art.layout,
        distortions={k: round(v, 3) for k, v in dist.items()},
        hard_effects=effects,
    )


def _render_art(rng: random.Random, st: _Style, kind: str) -> _Art:
    if kind == "qr":
        if rng.random() < 0.35:
            return _bq_label(rng, st)
        return _organic_label(rng, st, with_qr=True, with_digits=False, oval=False)
    if kind == "digits":
        return _organic_label(rng, st, with_qr=False, with_digits=True, oval=rng.random() < 0.7)
    if kind == "qr+digits":
        return _organic_label(rng, st, with_qr=True, with_digits=True, oval=False)
    if kind == "barcode":
        code = organic_code(rng)
        symbols: list[tuple[str, str]] = [("ean13", ean13(rng))]
        extra = rng.choice(("code128", "datamatrix", "code128+datamatrix"))
        if "code128" in extra:
            symbols.append(
                ("code128", rng.choice((code, f"WC{rng.randint(20, 25)}{rng.randrange(10**6):06d}A")))
            )
        if "datamatrix" in extra:
            symbols.append(("datamatrix", rng.choice((f"https://ec.zgyjcp.cn/yjm/{code}", code))))
        organic = (
            _organic_label(rng, st, with_qr=False, with_digits=True, oval=True)
            if rng.random() < 0.4
            else None
        )
        return _panel(
            rng, st, _distractor_lines(rng, strong=False)[:4], symbols=symbols, mark=False, organic=organic
        )
    # Negative: code-like runs everywhere, no QR, no organic code; an EAN-13 barcode may
    # be decoded (it is in the truth), nothing else may be reported.
    symbols = [("ean13", ean13(rng))] if rng.random() < 0.5 else []
    return _panel(
        rng,
        st,
        _distractor_lines(rng, strong=True)[: rng.randint(6, 10)],
        symbols=symbols,
        mark=rng.random() < 0.4,
    )


def kind_for(index: int, n_tiers: int) -> str:
    return _KIND_CYCLE[(index // n_tiers) % len(_KIND_CYCLE)]


def generate(
    n: int, seed: int, tiers: Sequence[str] = TIERS, kinds: Sequence[str] | None = None
) -> Iterator[Sample]:
    """`n` samples, tiers round-robin, kinds in a fixed cycle per tier (or cycling through
    `kinds` when given). Lazy: each sample is rendered when iterated."""
    tiers = tuple(tiers)
    for t in tiers:
        if t not in TIER_PARAMS:
            raise ValueError(f"unknown tier {t!r}")
    for i in range(n):
        tier = tiers[i % len(tiers)]
        kind = kinds[(i // len(tiers)) % len(kinds)] if kinds else kind_for(i, len(tiers))
        yield make_sample(i, seed, tier, kind)
