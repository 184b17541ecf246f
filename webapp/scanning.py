"""The scanner package behind the services' PhotoScanner port: its errors become domain
errors (413/415/422 problems), so services and blueprints never import it."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from domain.errors import PayloadTooLarge, Unprocessable, UnsupportedMedia


@dataclass(frozen=True, slots=True)
class Reading:
    found: list[Any]
    unreadable: bool
    elapsed_ms: float
    digits_unavailable: bool = False


def engines() -> dict[str, bool]:
    """Which readers this server has: QR codes and barcodes (zxing-cpp, required) and
    printed digits (the optional OCR engine of requirements-ocr.txt)."""
    import importlib.util

    from scanner.digits import ocr_available

    return {"qr": importlib.util.find_spec("zxingcpp") is not None, "digits": ocr_available()}


class ScannerAdapter:
    """Builds the scanner on first use: OpenCV, zxing-cpp and the OCR models stay out of
    processes that never scan (CLI commands, import workers, the stream worker)."""

    def __init__(self, *, max_bytes: int, time_budget_ms: float) -> None:
        self._max_bytes = max_bytes
        self._budget_ms = time_budget_ms
        self._scanner: Any = None
        self._lock = threading.Lock()

    def _get(self) -> Any:
        if self._scanner is None:
            with self._lock:
                if self._scanner is None:
                    from scanner import Scanner

                    self._scanner = Scanner(max_bytes=self._max_bytes, time_budget_ms=self._budget_ms)
        return self._scanner

    def read(self, image: bytes, *, known_body_codes: frozenset[str] | None) -> Reading:
        from scanner import CorruptImage, ImageTooLarge, NotAnImage, TooManyPixels

        try:
            result = self._get().scan(image, known_body_codes=known_body_codes)
        except ImageTooLarge as exc:
            raise PayloadTooLarge(str(exc), code="image_too_large") from None
        except TooManyPixels as exc:
            raise PayloadTooLarge(str(exc), code="too_many_pixels") from None
        except NotAnImage as exc:
            raise UnsupportedMedia(
                f"{exc}; send a JPEG, PNG, WebP, BMP or GIF photo", code="not_an_image"
            ) from None
        except CorruptImage as exc:
            raise Unprocessable(str(exc), code="corrupt_image") from None
        return Reading(
            found=list(result.found),
            unreadable=bool(result.uncertain),
            elapsed_ms=result.elapsed_ms,
            digits_unavailable=result.ocr_missing,
        )
