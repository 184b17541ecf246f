"""A third recognizer of printed digits, of another lineage than both RapidOCR (PP-OCR) and
Tesseract: ddddocr's text recognizer (`common_old.onnx`, a CTC line recognizer trained on
captcha-like text; MIT licence, the model ships inside the `ddddocr` wheel, so nothing is
downloaded at run time).

Only the model file and its character list are taken from the package: the line is fed
to our own onnxruntime session and decoded here, restricted to digits (ddddocr's own
wrapper keeps its charset restriction in shared mutable state and patches Pillow when
constructed). It is optional like the other recognizers: without `ddddocr` installed it
reads nothing and disputed readings stay where Tesseract leaves them.
"""

from __future__ import annotations

import importlib.util
import threading
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from scanner.second import own_band

_MODEL = "common_old.onnx"
_HEIGHT = 64  # px: the model's input height
_DIGITS = "0123456789"


def _package_dir() -> Path | None:
    try:
        spec = importlib.util.find_spec("ddddocr")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def available() -> bool:
    folder = _package_dir()
    return folder is not None and (folder / _MODEL).is_file()


class _Model:
    """The onnxruntime session and the model's digit classes, loaded once per process
    (about 0.2 s and 14 MB). A session's `run` is safe to call from several threads."""

    _lock = threading.Lock()
    _instance: _Model | None = None

    def __init__(self, folder: Path) -> None:
        import onnxruntime
        from ddddocr.models.charset_manager import CharsetManager

        options = onnxruntime.SessionOptions()
        # The model declares its output as (1, seqlen) but returns (seqlen, 1, classes):
        # onnxruntime warns about it on every run.
        options.log_severity_level = 3
        # One thread: it is asked about a line or two per photo, beside the main engine.
        options.intra_op_num_threads = 1
        self.session = onnxruntime.InferenceSession(
            str(folder / _MODEL), options, providers=["CPUExecutionProvider"]
        )
        self.input = self.session.get_inputs()[0].name
        charsets = CharsetManager()
        charsets.load_default_charset(old=True)
        charset: list[str] = charsets.get_charset()
        # Class 0 is CTC's blank; the digits' classes are scattered through 8,210.
        self.classes = np.array([0] + [charset.index(d) for d in _DIGITS])

    @classmethod
    def get(cls) -> _Model:
        if cls._instance is None:
            with cls._lock:
                if cls._instance is None:
                    folder = _package_dir()
                    assert folder is not None
                    cls._instance = cls(folder)
        return cls._instance

    def digits(self, line: np.ndarray) -> str:
        h, w = line.shape
        width = max(1, round(w * _HEIGHT / h))
        img = cv2.resize(
            line, (width, _HEIGHT), interpolation=cv2.INTER_AREA if h > _HEIGHT else cv2.INTER_CUBIC
        )
        x = (img.astype(np.float32) / 255.0)[None, None]
        logits: Any = self.session.run(None, {self.input: x})[0]
        best = logits[:, 0, self.classes].argmax(axis=1)
        out, previous = [], -1
        for k in best.tolist():
            if k not in (previous, 0):  # CTC: a repeat or the blank adds nothing
                out.append(_DIGITS[k - 1])
            previous = k
        return "".join(out)


class ThirdReader:
    def __init__(self) -> None:
        self._ok = available()

    def read(self, lines: list[np.ndarray]) -> str | None:
        """The digits of `lines` (grey text lines cut level, in reading order) read one
        after another; None when the reader is not installed."""
        if not self._ok:
            return None
        model = _Model.get()
        out = []
        for line in lines:
            if line.size == 0 or min(line.shape) < 4:
                return ""
            out.append(model.digits(prepared(line)))
        return "".join(out)


def prepared(line: np.ndarray) -> np.ndarray:
    """The line's own band of print (`second.own_band`: the lines above and below painted
    over), cut down to the rows that hold ink with a quarter of their height as margin.

    The model sees every line 64 px tall: a line cut with the detector's margin, and an
    oval label's outline or the next line's edge in it, gives the digits less of that
    height. On the development seeds the cut line settled two more right readings than
    the line as cut, and no wrong one."""
    band = own_band(line)
    _, mask = cv2.threshold(band, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    ink = mask == 0
    if ink.mean() > 0.5:
        ink = ~ink  # light print on a dark ground
    rows = np.nonzero(ink.mean(axis=1) > 0.01)[0]
    if len(rows) == 0:
        return band
    top, bottom = int(rows[0]), int(rows[-1])
    margin = max(2, (bottom - top + 1) // 4)
    return band[max(0, top - margin) : bottom + margin + 1]
