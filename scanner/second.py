"""A second recognizer for printed digits, independent of RapidOCR: Tesseract's LSTM
(through tesserocr, which carries libtesseract in its wheel) with Debian's English model
(`tesseract-ocr`), restricted to digits.

RapidOCR reads each code line in five differently prepared looks, and one look that
reads a digit differently makes the reading uncertain. Those looks share one model, so
a digit it finds hard stays hard in all of them; Tesseract is another model trained on
other data, and where the looks dispute a digit its reading settles which one was
printed (digits.DigitReader._decide says when it is asked). It is optional like the OCR
engine: without tesserocr or the model, disputed readings stay uncertain.
"""

from __future__ import annotations

import importlib.util
import os
import threading
from pathlib import Path
from typing import Any

import cv2
import numpy as np

# Where Debian (and most distributions) put Tesseract's models; TESSDATA_PREFIX wins.
_TESSDATA = (
    "/usr/share/tesseract-ocr/5/tessdata",
    "/usr/share/tesseract-ocr/4.00/tessdata",
    "/usr/share/tessdata",
    "/usr/local/share/tessdata",
)
_DIGITS = "0123456789"
_LINE_HEIGHT = 64  # px a line is scaled to: Tesseract reads best with text 30-40 px tall


def _tessdata() -> str | None:
    env = os.environ.get("TESSDATA_PREFIX")
    for folder in ([env] if env else []) + list(_TESSDATA):
        if folder and (Path(folder) / "eng.traineddata").is_file():
            return folder
    return None


def available() -> bool:
    try:
        found = importlib.util.find_spec("tesserocr") is not None
    except (ImportError, ValueError):
        return False
    return found and _tessdata() is not None


class SecondReader:
    """One Tesseract instance per thread (an instance is not safe to share), made on
    first use in that thread."""

    def __init__(self) -> None:
        self._local = threading.local()
        self._ok = available()

    def _api(self) -> Any:
        api = getattr(self._local, "api", None)
        if api is None:
            import tesserocr

            api = tesserocr.PyTessBaseAPI(
                path=_tessdata(), lang="eng", psm=tesserocr.PSM.SINGLE_LINE, oem=tesserocr.OEM.LSTM_ONLY
            )
            api.SetVariable("tessedit_char_whitelist", _DIGITS)
            self._local.api = api
        return api

    def read(self, lines: list[np.ndarray]) -> str | None:
        """The digits of `lines` (grey text lines cut level, in reading order) read one
        after another; None when the reader is not installed."""
        if not self._ok:
            return None
        from PIL import Image

        api = self._api()
        out = []
        for line in lines:
            if line.size == 0:
                return ""
            image = Image.fromarray(prepared(line))
            api.SetImage(image)
            digits = "".join(ch for ch in api.GetUTF8Text() if ch.isdigit())
            if not digits:
                # Tesseract 5's LSTM restricted to digits returns nothing at all for some
                # lines it reads whole without the restriction (on the unseen generator's
                # development seeds a third of the lines it was asked about): the line is
                # read again unrestricted and its digits kept.
                api.SetVariable("tessedit_char_whitelist", "")
                try:
                    api.SetImage(image)  # a new recognition, not the last one's text
                    digits = "".join(ch for ch in api.GetUTF8Text() if ch.isdigit())
                finally:
                    api.SetVariable("tessedit_char_whitelist", _DIGITS)
            out.append(digits)
        return "".join(out)


def prepared(line: np.ndarray) -> np.ndarray:
    """Dark print on a light ground, about `_LINE_HEIGHT` px tall, with a margin."""
    line = own_band(line)
    h = line.shape[0]
    scale = _LINE_HEIGHT / h
    img = cv2.resize(
        line, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC if scale > 1 else cv2.INTER_AREA
    )
    _, mask = cv2.threshold(img, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    if (mask == 0).mean() > 0.5:
        img = 255 - img  # light print on a dark ground
    pad = _LINE_HEIGHT // 4
    return cv2.copyMakeBorder(img, pad, pad, pad, pad, cv2.BORDER_REPLICATE)


def own_band(line: np.ndarray) -> np.ndarray:
    """`line` with everything above and below its own row of print painted over with its
    ground: the band of rows holding ink, from the middle of the line out to the first
    nearly empty row on either side.

    A line is cut with a margin, and on a small label the margin holds the edges of the
    lines above and below and the arc of an oval label's outline. RapidOCR reads past
    them; Tesseract read them as digits or lost digits to them (an oval label's outline
    turned the leading 9 of a code into 2 and dropped its last digit), and replicating the
    border to pad the line drew them out into stripes."""
    h = line.shape[0]
    if h < 8:
        return line
    _, mask = cv2.threshold(line, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    ink = mask == 0
    if ink.mean() > 0.5:
        ink = ~ink  # light print on a dark ground
    rows = ink.mean(axis=1)
    lo, hi = int(0.3 * h), max(int(0.3 * h) + 1, int(0.7 * h))
    peak = float(rows[lo:hi].max())
    if peak <= 0:
        return line
    gap = 0.08 * peak  # a row this empty lies between lines
    top = bottom = lo + int(rows[lo:hi].argmax())
    while top > 0 and rows[top - 1] > gap:
        top -= 1
    while bottom < h - 1 and rows[bottom + 1] > gap:
        bottom += 1
    if bottom - top + 1 < 0.35 * h:
        return line  # no clear band: a line of broken print is left as it was
    out = np.full_like(line, int(np.median(line[~ink])))
    keep = slice(max(0, top - 2), bottom + 3)
    out[keep] = line[keep]
    return out
