"""Barcodes in a photo: QR, DataMatrix, EAN/UPC, Code 128 and friends.

zxing-cpp reads every format and is the fastest engine measured here, so every
pass runs it; the passes differ in what they hand it. The cascade is ordered by
cost and stops at the deadline:

1. the photo as it is;
2. regions where zxing *found* a symbol but could not decode it (it reports them
   with `return_errors`), cropped, upscaled and re-binarized — the cheap way to
   rescue small, blurred or low-contrast codes without upscaling 12 MP;
3. the whole photo after contrast normalization (CLAHE) and, separately, after a
   sharpening pass against defocus/motion blur, then at a reduced scale where
   noise and JPEG blocks average out;
   on a large photo where the first read saw no symbol at all, these passes work on
   a ~2,000 px copy (see `_REDUCE_ABOVE`);
4. OpenCV's QR detector locating the finder patterns, the quadrilateral
   rectified to a square (perspective) and upscaled, then decoded by zxing;
5. optionally pyzbar, kept only where the benchmark shows it adds reads.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
import zxingcpp

Point = tuple[int, int]

_NAMES = {
    zxingcpp.BarcodeFormat.QRCode: "qr",
    zxingcpp.BarcodeFormat.MicroQRCode: "microqr",
    zxingcpp.BarcodeFormat.RMQRCode: "rmqr",
    zxingcpp.BarcodeFormat.DataMatrix: "datamatrix",
    zxingcpp.BarcodeFormat.Aztec: "aztec",
    zxingcpp.BarcodeFormat.PDF417: "pdf417",
    zxingcpp.BarcodeFormat.EAN13: "ean13",
    zxingcpp.BarcodeFormat.EAN8: "ean8",
    zxingcpp.BarcodeFormat.UPCA: "upca",
    zxingcpp.BarcodeFormat.UPCE: "upce",
    zxingcpp.BarcodeFormat.Code128: "code128",
    zxingcpp.BarcodeFormat.Code39: "code39",
    zxingcpp.BarcodeFormat.Code93: "code93",
    zxingcpp.BarcodeFormat.ITF: "itf",
    zxingcpp.BarcodeFormat.Codabar: "codabar",
}

_FORMATS = zxingcpp.barcode_formats_from_str(
    "QRCode,MicroQRCode,RMQRCode,DataMatrix,Aztec,PDF417,EAN13,EAN8,UPCA,UPCE,Code128,Code39,Code93,ITF,Codabar"
)
# The 2-D symbols that can carry a label's code; when one decodes, the rescue passes
# for the others are not worth their time.
MATRIX = frozenset({"qr", "microqr", "rmqr", "datamatrix", "aztec", "pdf417"})

# Linear symbologies with weak or no checksums misread noise as short codes; a
# payload shorter than this from them is not reported.
_MIN_LINEAR_LEN = {"code39": 4, "code93": 4, "itf": 6, "codabar": 6}

# A photo longer than this (3264 and 4000 px phone photos) where zxing's first read saw no
# symbol at all, not even one it could not decode, gets the fallback passes below on a copy
# whose longest side is _REDUCED_SIDE: on full resolution those passes were most of the
# symbol stage on photos with nothing to find, and of the whole photo's p95. On the
# benchmark's photos nothing those passes read at full resolution was lost at 2,000 px
# (bench/symbol_passes_ab.py: no photo read differently; 12 MP photos without a symbol
# 1.4 s -> 0.9 s median), though a symbol with modules of a pixel or two that only they read
# would be. 2,560-2,592 px photos, reduced in a trial
# run, gained ~0.1 s median and nothing at p95: not worth a second code path. A symbol zxing
# saw but could not decode (`failed`) keeps full resolution: the rescue crops and the passes
# after them are what read those.
_REDUCE_ABOVE = 2600
_REDUCED_SIDE = 2000


@dataclass(frozen=True, slots=True)
class Symbol:
    symbology: str
    payload: str
    corners: tuple[Point, Point, Point, Point]
    method: str


def _name(fmt: zxingcpp.BarcodeFormat) -> str:
    return _NAMES.get(fmt) or str(fmt).rsplit(".", 1)[-1].lower()


def _corners(
    position: zxingcpp.Position, scale: float, dx: float, dy: float
) -> tuple[Point, Point, Point, Point]:
    pts = (position.top_left, position.top_right, position.bottom_right, position.bottom_left)
    return tuple((round(p.x / scale + dx), round(p.y / scale + dy)) for p in pts)  # type: ignore[return-value]


@dataclass(slots=True)
class _Collector:
    found: dict[tuple[str, str], Symbol]
    failed: list[np.ndarray]  # quadrilaterals (4×2, full-image coords) zxing saw but could not decode

    def read(
        self,
        image: np.ndarray,
        method: str,
        *,
        scale: float = 1.0,
        dx: float = 0.0,
        dy: float = 0.0,
        binarizer: zxingcpp.Binarizer = zxingcpp.Binarizer.LocalAverage,
        collect_failures: bool = False,
    ) -> int:
        new = 0
        for bc in zxingcpp.read_barcodes(
            image, formats=_FORMATS, binarizer=binarizer, return_errors=collect_failures
        ):
            corners = _corners(bc.position, scale, dx, dy)
            if bc.error is not None or not bc.valid:
                if collect_failures:
                    self.failed.append(np.array(corners, dtype=np.float32))
                continue
            name = _name(bc.format)
            text = bc.text
            if not text or len(text) < _MIN_LINEAR_LEN.get(name, 1):
                continue
            key = (name, text)
            if key not in self.found:
                self.found[key] = Symbol(name, text, corners, method)
                new += 1
        return new

    def has_matrix(self) -> bool:
        return any(s.symbology in MATRIX for s in self.found.values())


def _clahe(gray: np.ndarray) -> np.ndarray:
    return cv2.createCLAHE(clipLimit=3.0, tileGridSize=(8, 8)).apply(gray)


def _sharpen(gray: np.ndarray, sigma: float) -> np.ndarray:
    blurred = cv2.GaussianBlur(gray, (0, 0), sigma)
    return cv2.addWeighted(gray, 2.0, blurred, -1.0, 0)


def _resize(gray: np.ndarray, scale: float) -> np.ndarray:
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC
    return cv2.resize(gray, None, fx=scale, fy=scale, interpolation=interp)


def _crop_quad(gray: np.ndarray, quad: np.ndarray, margin: float) -> tuple[np.ndarray, float, float]:
    x0, y0 = quad.min(axis=0)
    x1, y1 = quad.max(axis=0)
    m = margin * max(x1 - x0, y1 - y0, 8)
    h, w = gray.shape
    left, top = int(max(0, x0 - m)), int(max(0, y0 - m))
    right, bottom = int(min(w, x1 + m)), int(min(h, y1 + m))
    return gray[top:bottom, left:right], float(left), float(top)


def _rectify(gray: np.ndarray, quad: np.ndarray, side: int = 400) -> np.ndarray:
    """Warp a detected quadrilateral to an upright square with a quiet zone around it."""
    pad = side // 8
    dst = np.array(
        [[pad, pad], [pad + side, pad], [pad + side, pad + side], [pad, pad + side]], dtype=np.float32
    )
    matrix = cv2.getPerspectiveTransform(quad.astype(np.float32), dst)
    return cv2.warpPerspective(
        gray, matrix, (side + 2 * pad, side + 2 * pad), flags=cv2.INTER_CUBIC, borderValue=255
    )


class SymbolReader:
    """The barcode cascade. Stateless apart from its options; safe to share between threads."""

    def __init__(self, *, use_pyzbar: bool = False, reduce_large: bool = True) -> None:
        # reduce_large=False: every fallback pass on full resolution (the behaviour before
        # _REDUCE_ABOVE; the A/B benchmark and the tests compare against it).
        self._reduce_large = reduce_large
        self._pyzbar: Callable[[np.ndarray], list[Any]] | None = None
        if use_pyzbar:
            from pyzbar import pyzbar  # optional engine: needs Debian's libzbar0

            self._pyzbar = pyzbar.decode
        self._qr_detector = cv2.QRCodeDetector()

    def read(
        self, gray: np.ndarray, deadline: float, *, all_passes: bool = False
    ) -> tuple[list[Symbol], list[str]]:
        """Every symbol found, and the names of the passes that ran (for the benchmark)."""
        col = _Collector({}, [])
        ran: list[str] = []

        def done() -> bool:
            return (not all_passes and col.has_matrix()) or time.perf_counter() > deadline

        ran.append("zxing")
        col.read(gray, "zxing", collect_failures=True)

        if not done() and col.failed:
            ran.append("rescue")
            self._rescue(gray, col, deadline)

        # `work` is what the fallback passes read, `base` its scale against `gray`.
        work, base = gray, 1.0
        if (
            self._reduce_large
            and not done()
            and not col.found
            and not col.failed
            and max(gray.shape) > _REDUCE_ABOVE
        ):
            base = _REDUCED_SIDE / max(gray.shape)
            work = _resize(gray, base)
            ran.append(f"reduce-{_REDUCED_SIDE}")

        passes: Sequence[tuple[str, Callable[[], object]]] = (
            ("clahe", lambda: col.read(_clahe(work), "clahe", scale=base)),
            ("sharpen", lambda: col.read(_sharpen(work, 1.5), "sharpen", scale=base)),
            ("downscale", lambda: self._downscaled(work, col, base)),
            ("opencv-rectify", lambda: self._rectified(gray, work, base, col, deadline)),
            (
                "global-binarizer",
                lambda: col.read(work, "global", scale=base, binarizer=zxingcpp.Binarizer.GlobalHistogram),
            ),
        )
        for name, run in passes:
            if done():
                break
            ran.append(name)
            run()

        if self._pyzbar is not None and not done():
            ran.append("pyzbar")
            self._read_pyzbar(gray, col)
        return _without_conflicts(list(col.found.values())), ran

    def _rescue(self, gray: np.ndarray, col: _Collector, deadline: float) -> None:
        for quad in col.failed[:4]:
            crop, dx, dy = _crop_quad(gray, quad, 0.25)
            if crop.size == 0:
                continue
            side = max(crop.shape)
            scale = min(4.0, max(1.0, 600 / side))
            big = _resize(crop, scale) if scale > 1 else crop
            for method, image in (
                ("rescue", big),
                ("rescue-clahe", _clahe(big)),
                ("rescue-sharpen", _sharpen(big, 2.0)),
            ):
                if col.read(image, method, scale=scale, dx=dx, dy=dy) or time.perf_counter() > deadline:
                    break
            if time.perf_counter() > deadline:
                return
            # A perspective-distorted symbol decodes once its quadrilateral is squared.
            warped = _rectify(gray, quad)
            col.read(warped, "rescue-rectify", scale=1.0, dx=0, dy=0)

    def _downscaled(self, work: np.ndarray, col: _Collector, base: float) -> None:
        """`work` is the photo at `base` times its size: the targets stay those of the
        full photo, whichever copy they are made from."""
        longest = max(work.shape) / base
        for target in (1600, 900):
            if longest > target * 1.3:
                scale = target / longest
                col.read(_resize(work, scale / base), f"downscale-{target}", scale=scale)
                if col.has_matrix():
                    return

    def _rectified(
        self, gray: np.ndarray, work: np.ndarray, base: float, col: _Collector, deadline: float
    ) -> None:
        """The QR detector looks at a ≤1,600 px copy (made from `work`, the photo at `base`
        times its size); the quadrilaterals it finds are warped out of the full `gray`."""
        longest = max(gray.shape)
        scale = min(1.0, 1600 / longest)
        small = _resize(work, scale / base) if scale < base else work
        scale = min(scale, base)
        try:
            ok, points = self._qr_detector.detectMulti(small)
        except cv2.error:
            return
        if not ok or points is None:
            return
        for quad in np.asarray(points, dtype=np.float32).reshape(-1, 4, 2)[:4]:
            if time.perf_counter() > deadline:
                return
            full = quad / scale
            for side in (300, 500):
                if col.read(_rectify(gray, full, side), "opencv-rectify"):
                    break

    def _read_pyzbar(self, gray: np.ndarray, col: _Collector) -> None:
        assert self._pyzbar is not None
        for symbol in self._pyzbar(gray):
            try:
                text = symbol.data.decode("utf-8")
            except UnicodeDecodeError:
                continue
            name = {
                "QRCODE": "qr",
                "EAN13": "ean13",
                "EAN8": "ean8",
                "UPCA": "upca",
                "UPCE": "upce",
                "CODE128": "code128",
                "CODE39": "code39",
                "I25": "itf",
            }.get(symbol.type, symbol.type.lower())
            if name in _MIN_LINEAR_LEN and len(text) < _MIN_LINEAR_LEN[name]:
                continue
            pts = [(int(p.x), int(p.y)) for p in symbol.polygon[:4]]
            while len(pts) < 4:
                pts.append(pts[-1] if pts else (0, 0))
            key = (name, text)
            if key not in col.found:
                col.found[key] = Symbol(name, text, tuple(pts), "pyzbar")  # type: ignore[arg-type]


def _overlap(a: Symbol, b: Symbol) -> bool:
    ax = [x for x, _ in a.corners]
    ay = [y for _, y in a.corners]
    bx = [x for x, _ in b.corners]
    by = [y for _, y in b.corners]
    return min(ax) <= max(bx) and min(bx) <= max(ax) and min(ay) <= max(by) and min(by) <= max(ay)


def _without_conflicts(symbols: list[Symbol]) -> list[Symbol]:
    """Two different payloads of one linear symbology on the same spot: one is a misread
    that happened to pass the checksum (EAN's catches one wrong digit, not two). The
    plain first pass is trusted over a rescue pass's reading of the same bars; two
    readings from passes of equal standing cancel each other out."""
    linear = [s for s in symbols if s.symbology not in MATRIX]
    bad: set[int] = set()
    for a in linear:
        for b in linear:
            if a is b or a.symbology != b.symbology or a.payload == b.payload or not _overlap(a, b):
                continue
            if a.method == "zxing" and b.method != "zxing":
                bad.add(id(b))
            elif a.method != "zxing" and b.method == "zxing":
                bad.add(id(a))
            else:
                bad.update((id(a), id(b)))
    return [s for s in symbols if id(s) not in bad]
