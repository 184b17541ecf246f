"""A second set of label photos, drawn by code of its own, that the digit reader is never
tuned on.

`bench/labels.py` is the development set: the reader's rules were measured and adjusted on
its photos, so its read rate says little about a shopper's photo. This generator shares
no drawing code with it and draws what that one does not: other typefaces (CJK Ming, Kai
and a fallback sans for the prefix; condensed, bold, monospace, serif, OCR-B, seven-segment
and dot-matrix digits, and a continuous-inkjet 5×7 dot face drawn dot by dot), separators
between digit groups (spaces, dashes, none), the code split over two lines, oval,
rectangular and round labels, in-plane rotation up to ±35°, labels wrapped round a bottle
or bent on a bag, glossy film glare, low resolution and motion blur. Negatives carry
numbers that look like codes and are not.

Keep it out of every tuning loop: look at its numbers, never adjust a rule until they
improve. Its seed is fixed (`SEED`); `scanner_bench.py` reports it beside the development
set in the same run.

    from bench.labels_unseen import generate, SEED, BODY_CODES
    for s in generate(200, SEED): ...

Fonts come from Debian packages listed in scripts/apt-packages.txt (installed by `make`).
"""

from __future__ import annotations

import io
import math
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import cv2
import numpy as np
import zxingcpp
from PIL import Image, ImageDraw, ImageFont

SEED = 18_2026  # fixed: this set is never re-drawn to look better

# Certification bodies of this set: not the development set's, so no rule can lean on them.
BODY_CODES: tuple[str, ...] = ("0157", "0642", "0318", "0570", "9032", "9107", "8011")
LEGACY_BODY_CODES: tuple[str, ...] = ("157", "642", "318", "902")
ALL_BODY_CODES: frozenset[str] = frozenset(BODY_CODES + LEGACY_BODY_CODES)

TIERS: tuple[str, ...] = ("easy", "medium", "hard")
# Per ten photos: six digit-only labels (the case the issue is about), one label with a QR
# beside its digits, three negatives.
_KINDS: tuple[str, ...] = (
    "digits",
    "negative",
    "digits",
    "qr+digits",
    "digits",
    "negative",
    "digits",
    "digits",
    "negative",
    "digits",
)

_TT = "/usr/share/fonts/truetype"
_OT = "/usr/share/fonts/opentype"
PREFIX_FONTS: tuple[str, ...] = (
    f"{_TT}/arphic/uming.ttc",
    f"{_TT}/arphic/ukai.ttc",
    f"{_TT}/droid/DroidSansFallbackFull.ttf",
)
# name -> font file; "cij" is the continuous-inkjet dot face drawn below, not a font file.
DIGIT_FACES: dict[str, str] = {
    "liberation-narrow-bold": f"{_TT}/liberation/LiberationSansNarrow-Bold.ttf",
    "liberation-narrow": f"{_TT}/liberation/LiberationSansNarrow-Regular.ttf",
    "nimbus-narrow-bold": f"{_OT}/urw-base35/NimbusSansNarrow-Bold.otf",
    "roboto-condensed": f"{_TT}/roboto/unhinted/RobotoCondensed-Regular.ttf",
    "roboto-black": f"{_TT}/roboto/unhinted/RobotoTTF/Roboto-Black.ttf",
    "ocr-b": f"{_OT}/ocr-b/OCRB.otf",
    "nimbus-mono-bold": f"{_OT}/urw-base35/NimbusMonoPS-Bold.otf",
    "c059-serif": f"{_OT}/urw-base35/C059-Roman.otf",
    "urw-gothic": f"{_OT}/urw-base35/URWGothic-Demi.otf",
    "dotgothic16": f"{_TT}/dotgothic16/DotGothic16-Regular.ttf",
    "dseg7": f"{_TT}/dseg/DSEG7Classic-Bold.ttf",
    "uming": f"{_TT}/arphic/uming.ttc",
    "ukai": f"{_TT}/arphic/ukai.ttc",
    "droid-sans": f"{_TT}/droid/DroidSansFallbackFull.ttf",
    "cij": "",
}
_FACE_WEIGHTS: dict[str, int] = {"cij": 3, "dotgothic16": 2, "dseg7": 1}

# A 5×7 dot matrix per digit, as continuous-inkjet coders print dates and lot numbers.
_CIJ: dict[str, tuple[str, ...]] = {
    "0": ("01110", "10001", "10011", "10101", "11001", "10001", "01110"),
    "1": ("00100", "01100", "00100", "00100", "00100", "00100", "01110"),
    "2": ("01110", "10001", "00001", "00010", "00100", "01000", "11111"),
    "3": ("11111", "00010", "00100", "00010", "00001", "10001", "01110"),
    "4": ("00010", "00110", "01010", "10010", "11111", "00010", "00010"),
    "5": ("11111", "10000", "11110", "00001", "00001", "10001", "01110"),
    "6": ("00110", "01000", "10000", "11110", "10001", "10001", "01110"),
    "7": ("11111", "00001", "00010", "00100", "01000", "01000", "01000"),
    "8": ("01110", "10001", "10001", "01110", "10001", "10001", "01110"),
    "9": ("01110", "10001", "10001", "01111", "00001", "00010", "01100"),
    "-": ("00000", "00000", "00000", "11111", "00000", "00000", "00000"),
    ":": ("00000", "01100", "01100", "00000", "01100", "01100", "00000"),
}

_SIZES: tuple[tuple[int, int], ...] = ((640, 480), (1024, 768), (1600, 1200), (2560, 1920), (4000, 3000))
_SIZE_WEIGHTS = (10, 12, 22, 24, 32)
TROUBLES: tuple[str, ...] = ("curve", "glare", "lowres", "motion", "tilt", "inkjet")
INK = ((20, 20, 20), (0, 90, 50), (30, 40, 110), (110, 30, 30), (60, 60, 60))


@dataclass(frozen=True, slots=True)
class Sample:
    """One photo and its truth, under the attribute names `scanner_bench.py` reads."""

    image: bytes
    tier: str
    kind: str  # "digits" | "qr+digits" | "negative"
    truth_codes: list[tuple[str, str]]
    truth_digits: str | None
    digit_height_px: float | None  # ink height of the digits in the photo
    megapixels: float
    index: int
    seed: int
    width: int
    height: int
    angle: float  # in-plane rotation of the label, degrees
    format: str = "jpeg"
    exif_orientation: int = 1
    qr_module_px: float | None = None
    layout: str = ""
    face: str = ""
    troubles: tuple[str, ...] = ()
    printed: tuple[str, ...] = ()  # the code's printed lines
    extra: dict[str, float] = field(default_factory=dict)


# ----------------------------------------------------------------------------- text


@cache
def _font(path: str, size: int) -> ImageFont.FreeTypeFont:
    if not Path(path).exists():
        raise FileNotFoundError(f"{path}: install the fonts in scripts/apt-packages.txt (make)")
    return ImageFont.truetype(path, max(6, size))


@cache
def _ink_per_point(path: str) -> float:
    """How tall the digits' ink is per point of font size, measured on a rendering."""
    font = _font(path, 200)
    img = Image.new("L", (2600, 400), 0)
    ImageDraw.Draw(img).text((20, 300), _printable("0123456789", path), font=font, fill=255, anchor="ls")
    rows = np.nonzero(np.asarray(img).max(axis=1))[0]
    return float(rows.max() - rows.min() + 1) / 200


@cache
def _has_glyph(path: str, ch: str) -> bool:
    """Whether the font draws `ch` itself rather than its missing-glyph box."""
    font = _font(path, 40)
    missing = np.asarray(font.getmask("\U0010fffd"))
    drawn = np.asarray(font.getmask(ch))
    return not (drawn.shape == missing.shape and bool((drawn == missing).all()))


def _printable(text: str, path: str) -> str:
    """`text` with each ASCII character the font lacks in its full-width form, as a CJK
    face prints digits and colons (DroidSansFallback has no ASCII digits: drawn as
    they were, the code came out as a row of empty boxes that nobody can read)."""
    out = []
    for ch in text:
        if "!" <= ch <= "~" and not _has_glyph(path, ch):
            wide = chr(ord(ch) + 0xFEE0)
            out.append(wide if _has_glyph(path, wide) else ch)
        else:
            out.append(ch)
    return "".join(out)


def _text_ink(text: str, face: str, digit_h: float, bold: int) -> Image.Image:
    """`text` as an L mask (255 = ink) whose digits are `digit_h` px tall."""
    if face == "cij":
        return _cij_ink(text, digit_h)
    path = DIGIT_FACES[face]
    text = _printable(text, path)
    font = _font(path, round(digit_h / _ink_per_point(path)))
    left, top, right, bottom = font.getbbox(text, anchor="ls", stroke_width=bold)
    pad = bold + 2
    img = Image.new("L", (right - left + 2 * pad, bottom - top + 2 * pad), 0)
    ImageDraw.Draw(img).text(
        (pad - left, pad - top), text, font=font, fill=255, anchor="ls", stroke_width=bold, stroke_fill=255
    )
    return img


def _cij_ink(text: str, digit_h: float) -> Image.Image:
    pitch = digit_h / 6.6  # seven dot rows span the digit's height
    dot = pitch * 0.42
    width = round(len(text) * 6 * pitch + 2 * pitch)
    img = Image.new("L", (max(4, width), round(digit_h + 2 * pitch)), 0)
    d = ImageDraw.Draw(img)
    rng = random.Random(text)
    x = pitch
    for ch in text:
        rows = _CIJ.get(ch)
        if rows is not None:
            for r, row in enumerate(rows):
                for c, bit in enumerate(row):
                    if bit == "1":
                        cx = x + c * pitch + rng.uniform(-0.12, 0.12) * pitch
                        cy = pitch + r * pitch + rng.uniform(-0.12, 0.12) * pitch
                        d.ellipse((cx - dot, cy - dot, cx + dot, cy + dot), fill=255)
        x += 6 * pitch
    return img


def _cjk_ink(text: str, path: str, digit_h: float, bold: int) -> Image.Image:
    font = _font(path, round(digit_h / _ink_per_point(path) * 1.05))
    text = _printable(text, path)
    left, top, right, bottom = font.getbbox(text, anchor="ls", stroke_width=bold)
    img = Image.new("L", (right - left + 4, bottom - top + 4), 0)
    ImageDraw.Draw(img).text(
        (2 - left, 2 - top), text, font=font, fill=255, anchor="ls", stroke_width=bold, stroke_fill=255
    )
    return img


def _inkjet(mask: Image.Image, rng: random.Random) -> Image.Image:
    """Ink that bled into the film and dropped out in places."""
    a = np.asarray(mask, np.float32) / 255
    nrng = np.random.default_rng(rng.randrange(2**32))
    a = cv2.GaussianBlur(a, (0, 0), rng.uniform(0.6, 1.4))
    a = a * (nrng.random(a.shape) > rng.uniform(0.05, 0.2))
    a = np.clip(cv2.GaussianBlur(a, (0, 0), 0.7) * 1.6, 0, 1)
    return Image.fromarray((a * 255).astype(np.uint8))


# ----------------------------------------------------------------------------- codes


def make_code(rng: random.Random) -> str:
    if rng.random() < 0.15:
        return f"{rng.choice(LEGACY_BODY_CODES)}{rng.randint(8, 24):02d}{rng.randrange(10**12):012d}"
    return f"{rng.choice(BODY_CODES)}{rng.randint(19, 26):02d}{rng.randrange(10**12):012d}"


def _groups(code: str, rng: random.Random) -> list[str]:
    if len(code) == 18:
        sizes = rng.choice(((4, 2, 4, 4, 4), (4, 2, 12), (6, 6, 6), (4, 4, 4, 4, 2), (4, 14), (18,)))
    else:
        sizes = rng.choice(((3, 2, 4, 4, 4), (5, 12), (17,)))
    out, k = [], 0
    for s in sizes:
        out.append(code[k : k + s])
        k += s
    return out


def printed_lines(code: str, rng: random.Random) -> tuple[list[str], str, str]:
    """The code as printed: its lines, the separator, the prefix placement."""
    sep = rng.choice(("", " ", " ", "-", "  "))
    groups = _groups(code, rng)
    if len(groups) == 1:
        sep = ""
    prefix = rng.choice(("有机码：", "有机码", "有机码:", "有機碼：", "", "", "above"))
    if rng.random() < 0.25:
        # Split over two lines at a group boundary (or in the middle when there is none).
        cut = rng.randint(1, len(groups) - 1) if len(groups) > 1 else 0
        if cut:
            first, second = sep.join(groups[:cut]), sep.join(groups[cut:])
        else:
            half = rng.choice((9, 8, 10, 6))
            first, second = code[:half], code[half:]
        lines = [first, second]
        layout = "two-lines"
    else:
        lines = [sep.join(groups)]
        layout = "one-line"
    return lines, prefix, f"{layout}/sep={sep.strip() or ('space' if sep else 'none')}"


def _negative_lines(rng: random.Random) -> list[str]:
    """Numbers a label or package carries that are not organic codes."""
    body = rng.choice(BODY_CODES)
    y = rng.randint(19, 26)
    pool = [
        f"{rng.randint(1, 6)}{rng.randrange(10**16):016d}X",  # an ID-card-like number
        f"{rng.randint(1, 7)}{rng.randrange(10**17):017d}",  # 18 digits, no body code shape
        f"{body}{y}{rng.randrange(10**13):013d}",  # 19 digits
        # 17 digits with an 18-digit era body code: one group short
        f"{body} {y} {rng.randrange(10**4):04d} {rng.randrange(10**4):04d} {rng.randrange(10**3):03d}",
        f"{rng.randrange(10**15, 10**16)}",  # 16 digits
        f"批次 {rng.randint(2019, 2026)}{rng.randint(1, 12):02d}{rng.randint(1, 28):02d}"
        f"{rng.randrange(10**6):06d}",
        f"TEL 400-{rng.randint(100, 999)}-{rng.randint(1000, 9999)}",
        f"SC{rng.randrange(10**14):014d}",
        f"{rng.randint(2019, 2026)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}",
        f"{body}{y}-{rng.randrange(10**8):08d}",  # 14 digits
        f"{rng.randint(5, 7)}{rng.randrange(10**19):019d}",  # 20 digits
        f"{body}OP{y}{rng.randrange(10**6):06d}",
    ]
    rng.shuffle(pool)
    return pool[: rng.randint(2, 4)]


# ----------------------------------------------------------------------------- label art


@dataclass
class _Art:
    rgba: Image.Image
    digit_box: tuple[float, float, float, float] | None  # the code's ink, label pixels
    qr: str | None = None
    qr_modules: int = 0
    qr_box: tuple[float, float, float, float] | None = None


def _stack(items: list[Image.Image], gap: float, align: str) -> tuple[Image.Image, list[tuple[int, int]]]:
    w = max(i.width for i in items)
    h = round(sum(i.height for i in items) + gap * (len(items) - 1))
    out = Image.new("L", (w, h), 0)
    pos: list[tuple[int, int]] = []
    y = 0.0
    for item in items:
        x = (w - item.width) // 2 if align == "center" else 0
        out.paste(item, (x, round(y)))
        pos.append((x, round(y)))
        y += item.height + gap
    return out, pos


def _label(
    rng: random.Random, lines: list[str], prefix: str, face: str, digit_h: float, shape: str, qr: str | None
) -> _Art:
    bold = rng.choice((0, 0, 0, 1, 2)) if face not in ("cij", "dseg7", "dotgothic16") else 0
    bold = min(bold, max(0, round(digit_h / 20)))
    pfont = rng.choice(PREFIX_FONTS)
    ink = rng.choice(INK)
    inline = prefix not in ("", "above")
    rows: list[Image.Image] = []
    code_rows: list[int] = []
    digits_in_row: dict[int, tuple[int, int, int]] = {}  # row -> its digits' x, width, height
    if prefix == "above":
        rows.append(_cjk_ink("有机码", pfont, digit_h, bold))
    for k, text in enumerate(lines):
        digits = _text_ink(text, face, digit_h, bold)
        if inline and k == 0:
            pre = _cjk_ink(prefix, pfont, digit_h, bold)
            gap = round(digit_h * rng.uniform(0.2, 0.5))
            row = Image.new("L", (pre.width + gap + digits.width, max(pre.height, digits.height)), 0)
            row.paste(pre, (0, row.height - pre.height))
            row.paste(digits, (pre.width + gap, row.height - digits.height))
            rows.append(row)
            digits_in_row[len(rows) - 1] = (pre.width + gap, digits.width, digits.height)
        else:
            rows.append(digits)
            digits_in_row[len(rows) - 1] = (0, digits.width, digits.height)
        code_rows.append(len(rows) - 1)
    if rng.random() < 0.6:
        title = rng.choice(("有机产品", "ORGANIC", "有机认证", "中国有机产品"))
        rows.insert(0, _cjk_ink(title, pfont, digit_h * rng.uniform(1.0, 1.6), bold))
        code_rows = [r + 1 for r in code_rows]
        digits_in_row = {r + 1: v for r, v in digits_in_row.items()}
    align = "center" if shape != "rect" or rng.random() < 0.5 else "left"
    block, pos = _stack(rows, digit_h * rng.uniform(0.35, 0.8), align)
    if "inkjet" in shape:
        block = _inkjet(block, rng)
    bw, bh = block.size
    qr_img: Image.Image | None = None
    modules = 0
    if qr:
        mat = np.asarray(zxingcpp.create_barcode(qr, zxingcpp.BarcodeFormat.QRCode).to_image(scale=1))
        modules = mat.shape[0]
        mod_px = max(2, round(digit_h / 4))
        qr_img = Image.fromarray(mat).resize((modules * mod_px,) * 2, Image.Resampling.NEAREST)
    base = shape.split("+", maxsplit=1)[0]
    # The label: text block (and QR) inside an oval, a round or a rectangular sticker.
    inner_w = bw + (qr_img.width + digit_h if qr_img else 0)
    inner_h = max(bh, qr_img.height if qr_img else 0)
    if base == "oval":
        W, H = inner_w * 1.45 + digit_h * 2, inner_h * 1.6 + digit_h * 2  # noqa: N806
    elif base == "round":
        W = H = math.hypot(inner_w, inner_h) * 1.08 + digit_h * 1.5  # noqa: N806
    else:
        W, H = inner_w + digit_h * rng.uniform(1.5, 3), inner_h + digit_h * rng.uniform(1.5, 3)  # noqa: N806
    W, H = math.ceil(W), math.ceil(H)  # noqa: N806
    paper = rng.choice(((255, 255, 255), (250, 248, 240), (245, 250, 238), (255, 252, 225), (235, 240, 235)))
    border = rng.choice(((0, 120, 60), (150, 100, 40), (30, 30, 30), (200, 40, 40)))
    art = Image.new("RGBA", (W, H), (0, 0, 0, 0))
    d = ImageDraw.Draw(art)
    lw = max(1, round(digit_h * rng.uniform(0.08, 0.25)))
    if base == "rect":
        radius = round(digit_h * rng.choice((0, 0.5, 1.2)))
        d.rounded_rectangle(
            (0, 0, W - 1, H - 1), radius=radius, fill=(*paper, 255), outline=(*border, 255), width=lw
        )
    else:
        d.ellipse((0, 0, W - 1, H - 1), fill=(*paper, 255), outline=(*border, 255), width=lw)
    x0 = (W - inner_w) / 2
    y0 = (H - bh) / 2
    colour = Image.new("RGBA", block.size, (*ink, 255))
    art.paste(colour, (round(x0), round(y0)), block)
    qr_box = None
    if qr_img is not None:
        qx, qy = round(x0 + bw + digit_h), round((H - qr_img.height) / 2)
        art.paste(qr_img.convert("RGBA"), (qx, qy))
        qr_box = (qx, qy, qx + qr_img.width, qy + qr_img.height)
    # The first line of the code's digits (the text height the truth reports).
    first = code_rows[0]
    dx, dw, dh = digits_in_row[first]
    left = x0 + pos[first][0] + dx
    bottom = y0 + pos[first][1] + rows[first].height
    top, right = bottom - dh, left + dw
    return _Art(art, (left, top, right, bottom), qr, modules, qr_box)


def _negative_art(rng: random.Random, face: str, digit_h: float, shape: str) -> _Art:
    rows = [
        _text_ink(t, "liberation-narrow", digit_h, 0) if not t.isdigit() else _text_ink(t, face, digit_h, 0)
        for t in _negative_lines(rng)
    ]
    if rng.random() < 0.5:
        rows.insert(
            0,
            _cjk_ink(rng.choice(("有机产品", "产品追溯", "生产批号")), rng.choice(PREFIX_FONTS), digit_h, 0),
        )
    block, _ = _stack(rows, digit_h * 0.6, "left")
    W, H = block.width + round(digit_h * 3), block.height + round(digit_h * 3)  # noqa: N806
    art = Image.new("RGBA", (W, H), (0, 0, 0, 0))
    d = ImageDraw.Draw(art)
    if shape.startswith("rect"):
        d.rectangle((0, 0, W - 1, H - 1), fill=(252, 250, 244, 255), outline=(60, 60, 60, 255), width=2)
    else:
        d.ellipse((-W * 0.2, -H * 0.25, W * 1.2, H * 1.25), fill=(252, 250, 244, 255))
    art.paste(
        Image.new("RGBA", block.size, (30, 30, 30, 255)), (round(digit_h * 1.5), round(digit_h * 1.5)), block
    )
    return _Art(art, None)


# ----------------------------------------------------------------------------- surfaces


def _curve(art: np.ndarray, rng: random.Random, digit_h: float) -> tuple[np.ndarray, str]:
    """Wrap the label round a bottle (vertical axis) or bend it on a bag."""
    h, w = art.shape[:2]
    if rng.random() < 0.5:
        half = rng.uniform(0.45, 1.0)  # radians of the bottle the half-label covers
        radius = (w / 2) / half
        out_w = math.ceil(2 * radius * math.sin(half))
        ys, xs = np.mgrid[0:h, 0:out_w].astype(np.float32)
        u = np.clip((xs - out_w / 2) / radius, -0.999, 0.999)
        map_x = (w / 2 + radius * np.arcsin(u)).astype(np.float32)
        warped = cv2.remap(art, map_x, ys, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        shade = (0.75 + 0.25 * np.sqrt(1 - u**2))[..., None]
        warped[..., :3] = (warped[..., :3] * shade).astype(np.uint8)
        return warped, "bottle"
    bend = rng.uniform(-1, 1) * digit_h * rng.uniform(0.4, 1.2)
    wave = digit_h * rng.uniform(0.0, 0.3)
    period = w / rng.uniform(0.6, 2.0)
    phase = rng.uniform(0, 2 * math.pi)
    pad = math.ceil(abs(bend) + wave + 2)
    big = cv2.copyMakeBorder(art, pad, pad, 0, 0, cv2.BORDER_CONSTANT, value=0)
    ys, xs = np.mgrid[0 : h + 2 * pad, 0:w].astype(np.float32)
    t = (xs - w / 2) / (w / 2)
    dy = bend * t**2 + wave * np.sin(2 * math.pi * xs / period + phase)
    warped = cv2.remap(big, xs, (ys - dy).astype(np.float32), cv2.INTER_LINEAR, borderValue=0)
    return warped, "bag"


def _background(rng: random.Random, w: int, h: int) -> np.ndarray:
    base = np.array([rng.randint(90, 230) for _ in range(3)], np.float32)
    corners = np.array(
        [[rng.uniform(0.7, 1.1), rng.uniform(0.7, 1.1)], [rng.uniform(0.7, 1.1), rng.uniform(0.7, 1.1)]],
        np.float32,
    )
    shade = cv2.resize(corners, (w, h), interpolation=cv2.INTER_LINEAR)
    img = np.empty((h, w, 3), np.uint8)
    for c in range(3):
        img[..., c] = np.clip(shade * base[c], 0, 255).astype(np.uint8)
    canvas = Image.fromarray(img)
    d = ImageDraw.Draw(canvas)
    for _ in range(rng.randint(2, 7)):
        x0, y0 = rng.uniform(0, w), rng.uniform(0, h)
        x1, y1 = x0 + rng.uniform(0.05, 0.5) * w, y0 + rng.uniform(0.05, 0.4) * h
        colour = tuple(rng.randint(40, 250) for _ in range(3))
        if rng.random() < 0.5:
            d.rectangle((x0, y0, x1, y1), fill=colour)
        else:
            d.ellipse((x0, y0, x1, y1), fill=colour)
    return np.array(canvas)


def _noise(photo: np.ndarray, sigma: float) -> np.ndarray:
    """Sensor noise; OpenCV's generator (seeded per photo by the caller) is fast at 12 MP."""
    noise = np.empty(photo.shape, np.int16)
    cv2.randn(noise, 0, sigma)
    return cv2.add(photo.astype(np.int16), noise, dtype=cv2.CV_16S).clip(0, 255).astype(np.uint8)


def _package_print(rng: random.Random, digit_h: float) -> Image.Image:
    """Loose print elsewhere on the package: more numbers that are not codes."""
    rows = [
        _text_ink(t, rng.choice(("roboto-condensed", "liberation-narrow", "c059-serif")), digit_h, 0)
        for t in _negative_lines(rng)
    ]
    block, _ = _stack(rows, digit_h * 0.7, "left")
    rgba = Image.new("RGBA", block.size, (30, 30, 30, 255))
    rgba.putalpha(block)
    return rgba


def _warp_onto(photo: np.ndarray, art: np.ndarray, matrix: np.ndarray) -> None:
    """Composite `art` (RGBA) onto `photo` through `matrix`, touching only its bounding box."""
    h, w = photo.shape[:2]
    ah, aw = art.shape[:2]
    outline = np.array([[[0, 0], [aw, 0], [aw, ah], [0, ah]]], np.float32)
    corners = cv2.perspectiveTransform(outline, matrix)[0]
    x0, y0 = np.floor(corners.min(axis=0)).astype(int) - 2
    x1, y1 = np.ceil(corners.max(axis=0)).astype(int) + 2
    x0, y0, x1, y1 = max(0, x0), max(0, y0), min(w, x1), min(h, y1)
    if x1 <= x0 or y1 <= y0:
        return
    shift = np.array([[1, 0, -x0], [0, 1, -y0], [0, 0, 1]], np.float64)
    warped = cv2.warpPerspective(
        art, shift @ matrix, (x1 - x0, y1 - y0), flags=cv2.INTER_LINEAR, borderValue=(0, 0, 0, 0)
    )
    alpha = warped[..., 3:4].astype(np.float32) / 255
    region = photo[y0:y1, x0:x1]
    region[...] = (region * (1 - alpha) + warped[..., :3] * alpha).astype(np.uint8)


def _pose(
    rng: random.Random, size: tuple[int, int], photo: tuple[int, int], angle: float, tilt: float
) -> np.ndarray | None:
    """A homography placing an art of `size` in the photo, rotated by `angle` degrees with up
    to `tilt` degrees of perspective; None if it does not fit."""
    w, h = size
    pw, ph = photo
    src = np.array([[0, 0], [w, 0], [w, h], [0, h]], np.float32)
    pts = src - (w / 2, h / 2)
    ax, ay = math.radians(rng.uniform(-tilt, tilt)), math.radians(rng.uniform(-tilt, tilt))
    f = 1.8 * max(w, h)
    p3 = np.c_[pts, np.zeros(4)]
    rx = np.array([[1, 0, 0], [0, math.cos(ax), -math.sin(ax)], [0, math.sin(ax), math.cos(ax)]])
    ry = np.array([[math.cos(ay), 0, math.sin(ay)], [0, 1, 0], [-math.sin(ay), 0, math.cos(ay)]])
    a = math.radians(angle)
    rz = np.array([[math.cos(a), -math.sin(a), 0], [math.sin(a), math.cos(a), 0], [0, 0, 1]])
    q = p3 @ (rz @ rx @ ry).T
    dst = q[:, :2] * (f / (q[:, 2] + f))[:, None]
    span = dst.max(axis=0) - dst.min(axis=0)
    margin = 8
    if span[0] > pw - 2 * margin or span[1] > ph - 2 * margin:
        return None
    cx = rng.uniform(margin - dst[:, 0].min(), pw - margin - dst[:, 0].max())
    cy = rng.uniform(margin - dst[:, 1].min(), ph - margin - dst[:, 1].max())
    return cv2.getPerspectiveTransform(src, np.add(dst, [cx, cy]).astype(np.float32))


def _glare(photo: np.ndarray, rng: random.Random, centre: tuple[float, float], size: float) -> None:
    h, w = photo.shape[:2]
    cx, cy = centre
    x0, x1 = max(0, int(cx - 2 * size)), min(w, int(cx + 2 * size))
    y0, y1 = max(0, int(cy - 2 * size)), min(h, int(cy + 2 * size))
    if x1 <= x0 or y1 <= y0:
        return
    ys, xs = np.mgrid[y0:y1, x0:x1].astype(np.float32)
    a = math.radians(rng.uniform(0, 180))
    u = (xs - cx) * math.cos(a) + (ys - cy) * math.sin(a)
    v = -(xs - cx) * math.sin(a) + (ys - cy) * math.cos(a)
    streak = np.exp(-((u / size) ** 2 + (v / (size * rng.uniform(0.15, 0.5))) ** 2))
    strength = rng.uniform(0.5, 0.9)
    patch = photo[y0:y1, x0:x1].astype(np.float32)
    photo[y0:y1, x0:x1] = (patch + (255 - patch) * (strength * streak)[..., None]).astype(np.uint8)


def _motion(photo: np.ndarray, rng: random.Random) -> np.ndarray:
    n = rng.randint(3, 9)
    k = np.zeros((n, n), np.float32)
    k[n // 2, :] = 1
    rot = cv2.getRotationMatrix2D((n / 2 - 0.5, n / 2 - 0.5), rng.uniform(0, 180), 1)
    k = cv2.warpAffine(k, rot, (n, n))
    return cv2.filter2D(photo, -1, k / max(k.sum(), 1e-6))


# ----------------------------------------------------------------------------- photos


def make_sample(index: int, seed: int = SEED) -> Sample:
    """Photo `index` of the set; depends on (seed, index) only."""
    rng = random.Random(f"unseen:{seed}:{index}")
    cv2.setRNGSeed(rng.randrange(2**31))
    tier = TIERS[index % 3]
    kind = _KINDS[(index // 3) % len(_KINDS)]
    count = {"easy": rng.randint(0, 1), "medium": 2, "hard": 3}[tier]
    troubles = tuple(sorted(rng.sample(TROUBLES, count)))
    pw, ph = rng.choices(_SIZES, weights=_SIZE_WEIGHTS)[0]
    if rng.random() < 0.35:
        pw, ph = ph, pw
    # Print size in the photo: a fifth of the photos under 12 px; bigger photos, bigger print.
    if rng.random() < 0.2:
        digit_h = rng.uniform(8, 12)
    else:
        digit_h = rng.uniform(12, min(45, 14 + 9 * math.sqrt(pw * ph / 1e6)))
    angle = rng.uniform(-35, 35)
    names = list(DIGIT_FACES)
    face = rng.choices(names, weights=[_FACE_WEIGHTS.get(n, 2) for n in names])[0]
    shape = rng.choice(("oval", "oval", "rect", "round"))
    if "inkjet" in troubles:
        shape += "+inkjet"
    art_h = max(28.0, min(90.0, digit_h * 3))  # drawn larger, then reduced: smooth edges
    code = None
    lines: list[str] = []
    layout = shape
    qr = None
    if kind == "negative":
        art = _negative_art(rng, face, art_h, shape)
        layout += "/negative"
    else:
        code = make_code(rng)
        lines, prefix, how = printed_lines(code, rng)
        if kind == "qr+digits":
            qr = rng.choice(
                (code, f"https://trace.organic-label.cn/c/{code}", f"https://t.example-cert.cn/v?code={code}")
            )
        if len(lines) == 2 and shape.startswith("rect") and rng.random() < 0.5:
            shape = "round" + shape[4:]
        art = _label(rng, lines, prefix, face, art_h, shape, qr)
        layout += f"/{how}/prefix={prefix or 'none'}"
    scale = digit_h / art_h
    rgba = art.rgba.resize(
        (max(2, round(art.rgba.width * scale)), max(2, round(art.rgba.height * scale))),
        Image.Resampling.LANCZOS,
    )
    arr = np.asarray(rgba).copy()
    if "curve" in troubles:
        arr, how_curved = _curve(arr, rng, digit_h)
        layout += f"/{how_curved}"
    tilt = 18.0 if "tilt" in troubles else 4.0
    matrix = None
    for _ in range(10):
        matrix = _pose(rng, (arr.shape[1], arr.shape[0]), (pw, ph), angle, tilt)
        if matrix is not None:
            break
        pw, ph = (4000, 3000) if pw >= ph else (3000, 4000)
    if matrix is None:
        raise RuntimeError("label does not fit the photo")  # pragma: no cover
    photo = _background(rng, pw, ph)
    if rng.random() < 0.4:
        extra = np.asarray(_package_print(rng, digit_h * rng.uniform(0.8, 1.3)))
        m2 = _pose(rng, (extra.shape[1], extra.shape[0]), (pw, ph), rng.uniform(-35, 35), 6.0)
        if m2 is not None:
            _warp_onto(photo, extra, m2)
    _warp_onto(photo, arr, matrix)
    height = None
    if art.digit_box is not None:
        x0, y0, x1, y1 = (v * scale for v in art.digit_box)
        pts = cv2.perspectiveTransform(
            np.array([[[x0, y0], [x0, y1], [x1, y0], [x1, y1]]], np.float32), matrix
        )[0]
        height = float((np.linalg.norm(pts[0] - pts[1]) + np.linalg.norm(pts[2] - pts[3])) / 2)
    if "glare" in troubles:
        cx, cy = cv2.perspectiveTransform(
            np.array(
                [[[arr.shape[1] * rng.uniform(0.2, 0.8), arr.shape[0] * rng.uniform(0.2, 0.8)]]], np.float32
            ),
            matrix,
        )[0, 0]
        _glare(photo, rng, (float(cx), float(cy)), max(arr.shape[:2]) * rng.uniform(0.15, 0.35))
    if "motion" in troubles:
        photo = _motion(photo, rng)
    else:
        photo = cv2.GaussianBlur(photo, (0, 0), rng.uniform(0.3, 0.8))
    if "lowres" in troubles:
        # A cheap camera, or a crop of a zoomed frame: detail lost, then scaled back up.
        f = rng.uniform(0.45, 0.7)
        small = cv2.resize(photo, None, fx=f, fy=f, interpolation=cv2.INTER_AREA)
        photo = cv2.resize(small, (pw, ph), interpolation=cv2.INTER_LINEAR)
    photo = _noise(photo, rng.uniform(1, 5))
    buf = io.BytesIO()
    quality = rng.randint(55, 92)
    Image.fromarray(photo).save(buf, "JPEG", quality=quality)
    qr_module = None
    if art.qr_box is not None and art.qr_modules:
        qr_module = (art.qr_box[2] - art.qr_box[0]) * scale / art.qr_modules
    return Sample(
        image=buf.getvalue(),
        tier=tier,
        kind=kind,
        truth_codes=[("qr", qr)] if qr else [],
        truth_digits=code,
        digit_height_px=round(height, 2) if height else None,
        megapixels=round(pw * ph / 1e6, 2),
        index=index,
        seed=seed,
        width=pw,
        height=ph,
        angle=round(angle, 2),
        qr_module_px=round(qr_module, 2) if qr_module else None,
        layout=layout,
        face=face,
        troubles=troubles,
        printed=tuple(lines),
        extra={"jpeg_q": quality},
    )


def generate(n: int, seed: int = SEED) -> Iterator[Sample]:
    for i in range(n):
        yield make_sample(i, seed)
