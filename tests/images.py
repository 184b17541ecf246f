"""Label photos rendered for tests: codes drawn, distorted and encoded, so the scanner
is tested on what it must read back, not on fixtures nobody can regenerate."""

from __future__ import annotations

import io
from pathlib import Path

import cv2
import numpy as np
import zxingcpp
from PIL import Image, ImageDraw, ImageFont

FONT = next(
    (
        p
        for p in (
            "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",
            "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc",
        )
        if Path(p).exists()
    ),
    None,
)


def symbol(payload: str, fmt: str = "QRCode", scale: int = 4) -> np.ndarray:
    barcode = zxingcpp.create_barcode(payload, zxingcpp.barcode_format_from_str(fmt))
    return np.asarray(barcode.to_image(scale=scale, add_quiet_zones=True), dtype=np.uint8)


def canvas(width: int = 1200, height: int = 900, value: int = 235) -> Image.Image:
    return Image.new("L", (width, height), value)


def paste(img: Image.Image, array: np.ndarray, xy: tuple[int, int]) -> Image.Image:
    img.paste(Image.fromarray(array), xy)
    return img


def text(img: Image.Image, line: str, xy: tuple[int, int], size: int = 40) -> Image.Image:
    if FONT is None:
        raise RuntimeError("a CJK font (Debian fonts-wqy-microhei) is needed to render labels")
    ImageDraw.Draw(img).text(xy, line, font=ImageFont.truetype(FONT, size), fill=25)
    return img


def distort(
    img: Image.Image, *, angle: float = 0, blur: float = 0, noise: float = 0, tilt: float = 0, seed: int = 0
) -> Image.Image:
    a = np.asarray(img, dtype=np.uint8)
    h, w = a.shape
    if angle:
        m = cv2.getRotationMatrix2D((w / 2, h / 2), angle, 1.0)
        a = cv2.warpAffine(a, m, (w, h), borderValue=235)
    if tilt:
        d = tilt * w
        src = np.float32([[0, 0], [w, 0], [w, h], [0, h]])
        dst = np.float32([[d, d / 2], [w - d, 0], [w, h], [0, h - d / 2]])
        a = cv2.warpPerspective(a, cv2.getPerspectiveTransform(src, dst), (w, h), borderValue=235)
    if blur:
        a = cv2.GaussianBlur(a, (0, 0), blur)
    if noise:
        rng = np.random.default_rng(seed)
        a = np.clip(a + rng.normal(0, noise, a.shape), 0, 255).astype(np.uint8)
    return Image.fromarray(a)


def encode(
    img: Image.Image, fmt: str = "JPEG", quality: int = 85, exif_orientation: int | None = None
) -> bytes:
    out = io.BytesIO()
    kwargs: dict[str, object] = {"quality": quality} if fmt == "JPEG" else {}
    if exif_orientation is not None:
        exif = Image.Exif()
        exif[0x0112] = exif_orientation
        kwargs["exif"] = exif.tobytes()
    img.save(out, fmt, **kwargs)
    return out.getvalue()


def label(code: str | None = None, qr: str | None = None, *, digits_px: int = 40) -> Image.Image:
    """An organic mark: the ring, the 有机码 line when `code` is given, a QR when `qr` is."""
    img = canvas()
    ImageDraw.Draw(img).ellipse((80, 80, 520, 420), outline=60, width=10)
    if code is not None:
        text(img, "中国有机产品", (180, 200), 44)
        text(img, f"有机码：{code}", (80, 480), digits_px)
    if qr is not None:
        paste(img, symbol(qr), (700, 120))
    return img


def bomb_png(side: int = 20_000) -> bytes:
    """A PNG a few kB long that declares side² pixels."""
    img = Image.new("1", (side, side), 0)
    out = io.BytesIO()
    img.save(out, "PNG", optimize=True)
    return out.getvalue()
