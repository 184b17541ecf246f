"""Scan a photo: read every code on the label, verify the best one.

"Best" is the first symbol that normalizes to a label code — a 2-D code (it carries
the label's URL or code) before printed digits — so a package's EAN-13 never
outranks the organic code. Everything read is returned, code or not, so a client
can show what was seen.
"""

from __future__ import annotations

from dataclasses import replace

from domain import metrics
from domain.codes import normalize
from domain.errors import NotImplementedOnServer, Unprocessable
from domain.ports import PhotoScanner
from services.answers import FoundSymbol, PhotoAnswer
from services.verify import VerifyRequest, VerifyService

_LINEAR = frozenset({"ean13", "ean8", "upca", "upce", "code128", "code39", "code93", "itf", "codabar"})


class PhotoService:
    def __init__(self, scanner: PhotoScanner, verify: VerifyService) -> None:
        self.scanner = scanner
        self.verify = verify

    def scan(self, image: bytes, req: VerifyRequest) -> PhotoAnswer:
        """`req.input` is ignored; the code comes from the photo and the channel is `photo`."""
        bodies = self.verify.resolver.known_bodies()
        reading = self.scanner.read(image, known_body_codes=bodies)
        metrics.incr("photo_scans")
        found: list[FoundSymbol] = []
        best: str | None = None
        for symbol in reading.found:
            parsed = normalize(symbol.payload)
            # An EAN/UPC is a product number, never a label code, even when it is all digits.
            # A QR whose code names no known body still counts: its verdict (invalid
            # format) is the shopper's answer. Printed digits were checked by the scanner.
            code = parsed.code if parsed.invalid is None and symbol.symbology not in _LINEAR else None
            found.append(
                FoundSymbol(symbol.symbology, symbol.payload, code, round(float(symbol.confidence), 3))
            )
            if best is None and code is not None:
                best = code
        if not found:
            metrics.incr("photo_scans_no_code")
            if reading.unreadable:
                raise Unprocessable(
                    "a code is printed on the label but could not be read reliably; "
                    "photograph it closer, in focus and without glare, or type it",
                    code="code_unreadable",
                )
            if reading.digits_unavailable:
                # The optional OCR engine is not installed: say so rather than "no code",
                # which would send the shopper looking for a code that is printed there.
                raise NotImplementedOnServer(
                    "no QR code or barcode was found, and printed digits cannot be read on this "
                    "server; type the code printed on the label",
                    code="digits_unavailable",
                )
            raise Unprocessable(
                "no QR code, barcode or printed organic code was found in the photo", code="no_code_found"
            )
        verification = None
        if best is not None:
            verification = self.verify.verify(replace(req, input=best, channel="photo"))
        return PhotoAnswer(tuple(found), verification)
