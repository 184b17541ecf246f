"""Why an upload could not be scanned. Each maps to one HTTP status in the API layer:

ScanError
├── ImageTooLarge      the bytes exceed the byte limit                     (413)
├── TooManyPixels      the header declares more pixels than allowed —
│                      a decompression bomb or simply a huge photo          (413)
├── NotAnImage         empty, or not one of the accepted formats, whatever
│                      its name or declared type says                       (415)
└── CorruptImage       an accepted format that does not decode (truncated)  (422)
"""

from __future__ import annotations


class ScanError(Exception):
    code = "scan_error"


class ImageTooLarge(ScanError):
    code = "image_too_large"


class TooManyPixels(ScanError):
    code = "too_many_pixels"


class NotAnImage(ScanError):
    code = "not_an_image"


class CorruptImage(ScanError):
    code = "corrupt_image"
