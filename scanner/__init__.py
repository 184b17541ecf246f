"""Image bytes -> decoded symbols and printed organic codes. Depends on nothing of ours."""

from scanner.core import MAX_BYTES, MAX_PIXELS, Found, Scanner, ScanResult
from scanner.digits import Plausibility, Uncertain
from scanner.errors import CorruptImage, ImageTooLarge, NotAnImage, ScanError, TooManyPixels

__all__ = [
    "MAX_BYTES",
    "MAX_PIXELS",
    "CorruptImage",
    "Found",
    "ImageTooLarge",
    "NotAnImage",
    "Plausibility",
    "ScanError",
    "ScanResult",
    "Scanner",
    "TooManyPixels",
    "Uncertain",
]
