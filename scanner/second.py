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
            api.SetVariable("tessedit_char_whitelist", "0123456789")
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
            api.SetImage(Image.fromarray(prepared(line)))
            out.append("".join(ch for ch in api.GetUTF8Text() if ch.isdigit()))
        return "".join(out)


def prepared(line: np.ndarray) -> np.ndarray:
    """Dark print on a light ground, about `_LINE_HEIGHT` px tall, with a margin."""
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
