"""The scanner: image bytes in, every code found out, within a time budget."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from scanner.digits import DigitReader, Plausibility, Uncertain, ocr_available
from scanner.image import load
from scanner.symbols import MATRIX, SymbolReader

MAX_BYTES = 8 * 1024 * 1024
MAX_PIXELS = 24_000_000
_SYMBOL_SHARE = 0.5  # of the time budget, for symbols, when OCR may follow

# A symbol payload that already carries a label code (a lone 17/18-digit run, or a
# URL/query whose last segment or parameter is one, or a BQ-style token) makes OCR
# pointless; anything else (an EAN on the package, a shop's URL) does not.
_CODE_IN_PAYLOAD = re.compile(r"(?<!\d)\d{17,18}(?!\d)|(?:^|[/=])[0-9A-Za-z]{8,32}/?$")


@dataclass(frozen=True, slots=True)
class Found:
    symbology: str  # "qr", "datamatrix", "ean13", "code128", …, or "digits" for printed text
    payload: str
    confidence: float  # 1.0 for a checksummed symbol; the OCR agreement score for digits
    corners: tuple[tuple[int, int], ...]  # in the upright photo's pixels: TL, TR, BR, BL
    method: str  # which pass read it


@dataclass(frozen=True, slots=True)
class ScanResult:
    found: list[Found]
    uncertain: list[Uncertain]  # code-like text that failed the checks: never a code
    width: int
    height: int
    passes: list[str]
    elapsed_ms: float
    budget_exhausted: bool = False
    ocr_ran: bool = False
    # Printed digits were wanted but the optional OCR engine is not installed here.
    ocr_missing: bool = False
    extra: dict[str, float] = field(default_factory=dict)


class Scanner:
    """Thread-safe and meant to live as long as the worker: OCR loads once, on first use.

    `ocr`: "auto" reads printed digits only when no symbol carries a label code;
    "always" reads them regardless (the benchmark uses it); "never" skips OCR.
    """

    def __init__(
        self,
        *,
        known_body_codes: frozenset[str] | None = None,
        time_budget_ms: float = 2500,
        ocr: str = "auto",
        use_pyzbar: bool = False,
        max_bytes: int = MAX_BYTES,
        max_pixels: int = MAX_PIXELS,
    ) -> None:
        if ocr not in ("auto", "always", "never"):
            raise ValueError("ocr must be auto, always or never")
        self.max_bytes = max_bytes
        self.max_pixels = max_pixels
        self.time_budget_ms = time_budget_ms
        self.ocr = ocr
        self._symbols = SymbolReader(use_pyzbar=use_pyzbar)
        self._digits = DigitReader(Plausibility(known_body_codes))
        # Pillow's own bomb guard is process-global; keep it no looser than ours so
        # any other Pillow use in this process is guarded too.
        Image.MAX_IMAGE_PIXELS = max_pixels

    def scan(
        self, data: bytes, *, ocr: str | None = None, known_body_codes: frozenset[str] | None = None
    ) -> ScanResult:
        """Raises a `scanner.errors.ScanError` for input that is not a usable image.

        `known_body_codes` (current 4-digit and legacy 3-digit) overrides the scanner's
        own for this call: printed digits naming no known body are never reported.
        """
        start = time.perf_counter()
        deadline = start + self.time_budget_ms / 1000
        photo = load(data, max_bytes=self.max_bytes, max_pixels=self.max_pixels)
        mode = ocr or self.ocr
        # The symbol passes after zxing's first read run only on a photo without a 2-D
        # code, which is the photo that still needs OCR: they get half the budget when
        # OCR may follow. On a busy host they took all of it (OCR never started on a
        # digit-only label); on an idle one they end well within half.
        symbol_deadline = deadline
        if mode != "never" and ocr_available():
            symbol_deadline = start + _SYMBOL_SHARE * self.time_budget_ms / 1000
        symbols, passes = self._symbols.read(photo.gray, symbol_deadline)
        found = [Found(s.symbology, s.payload, 1.0, s.corners, s.method) for s in symbols]
        found.sort(key=lambda f: (f.symbology not in MATRIX, f.method != "zxing"))
        want_ocr = mode == "always" or (
            mode == "auto"
            and not any(f.symbology in MATRIX and _CODE_IN_PAYLOAD.search(f.payload) for f in found)
        )
        uncertain: list[Uncertain] = []
        extra: dict[str, float] = {}
        ocr_ran = False
        ocr_missing = want_ocr and not ocr_available()
        if want_ocr and not ocr_missing and time.perf_counter() < deadline:
            ocr_ran = True
            passes.append("ocr")
            reader = (
                self._digits
                if known_body_codes is None
                else DigitReader(Plausibility(known_body_codes), self._digits.second, self._digits.third)
            )
            ocr_start = time.perf_counter()
            hints = [np.asarray(f.corners, np.float32) for f in found if f.symbology in MATRIX]
            readings, uncertain = reader.read(photo.gray, deadline, hints)
            extra["ocr_ms"] = round((time.perf_counter() - ocr_start) * 1000, 1)
            seen: set[str] = set()
            for r in readings:
                if r.code not in seen:
                    seen.add(r.code)
                    found.append(Found("digits", r.code, r.confidence, r.corners, "ocr"))
        now = time.perf_counter()
        return ScanResult(
            found=found,
            uncertain=uncertain,
            width=photo.width,
            height=photo.height,
            passes=passes,
            elapsed_ms=round((now - start) * 1000, 1),
            budget_exhausted=now > deadline,
            ocr_ran=ocr_ran,
            ocr_missing=ocr_missing,
            extra=extra,
        )
