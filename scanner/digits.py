"""The printed organic code (有机码) read from a photo by OCR, and only when the photo
really supports it.

RapidOCR (PP-OCRv4 ONNX models shipped inside the wheel) finds text lines and reads
them. Measured alone it returned wrong codes — most often an 18-digit code read as
17 digits — so every reading here must pass, before it is reported:

* shape: 17 or 18 digits with nothing digit-like glued on either side;
* era: an 18-digit code's body part starts with 0 (domestic), 8 or 9 (foreign);
  its year is not in the future; a 17-digit code belongs to the legacy era
  (issued before 2025) — a dropped digit of an 18-digit code shifts the year part
  and fails here;
* body: the body code is one the registry knows, when the caller says which;
* agreement: two differently preprocessed readings of the same line agree digit
  for digit (a third breaks a tie).

A reading that fails is reported as *uncertain* (with the reason), never as a code.
Detection runs on a reduced copy of the photo (the models see ~1 MP no matter how
large the photo) and recognition on crops cut from the full-resolution image, so a
12 MP photo costs about what a 1 MP one does.
"""

from __future__ import annotations

import itertools
import re
import threading
import time
import unicodedata
from dataclasses import dataclass
from datetime import date
from typing import Any

import cv2
import numpy as np

_DET_SIDE = 1280  # longest side the detector sees (~300 ms here; 960 ~170 ms but reads fewer)

_PREFIX = re.compile(r"有\s*[机機]\s*[码碼]")
# Characters OCR confuses with digits on this typeface family. Only the unambiguous
# ones: O/o for 0 and I/l/| for 1. Others (S/5, B/8, Z/2) would invent digits.
_CONFUSABLE = str.maketrans({"O": "0", "o": "0", "〇": "0", "I": "1", "l": "1", "|": "1"})
_SEPARATORS = re.compile(r"[\s\-‐‑–—_.·:：,，/]+")
_RUN = re.compile(r"\d+")


@dataclass(frozen=True, slots=True)
class DigitReading:
    code: str
    confidence: float
    corners: tuple[tuple[int, int], ...]
    prefixed: bool  # printed after 有机码


@dataclass(frozen=True, slots=True)
class Uncertain:
    text: str
    reason: str


@dataclass(frozen=True, slots=True)
class Plausibility:
    known_body_codes: frozenset[str] | None = None
    today: date | None = None

    def check(self, digits: str) -> str | None:
        """None when `digits` could be an organic code; otherwise why not."""
        year_now = (self.today or date.today()).year % 100
        if len(digits) == 18:
            body, year = digits[:4], int(digits[4:6])
            if body[0] not in "089":
                return "body_code_shape"
            if not 19 <= year <= year_now:
                return "year"
        elif len(digits) == 17:
            body, year = digits[:3], int(digits[3:5])
            if not 5 <= year <= min(24, year_now):
                return "year"
        else:
            return "length"
        if self.known_body_codes is not None and body not in self.known_body_codes:
            return "unknown_body"
        return None


def candidates(text: str) -> list[tuple[str, bool]]:
    """17/18-digit strings a recognized line may hold: (digits, printed after 有机码)."""
    folded = unicodedata.normalize("NFKC", text)
    out: list[tuple[str, bool]] = []
    prefix = _PREFIX.search(folded)
    if prefix:
        tail = _SEPARATORS.sub("", folded[prefix.end() :].translate(_CONFUSABLE))
        run = _RUN.match(tail)
        if run:
            out.append((run.group(), True))
        return out
    # Without the prefix only a lone run counts; a separator-free join of digit
    # groups is allowed because labels print codes as "0123 24 1234 5678 90".
    joined = _SEPARATORS.sub("", folded)
    for run in _RUN.finditer(joined):
        out.append((run.group(), False))
    return out


class _Engine:
    """RapidOCR, loaded once per process on first use (about 0.4 s and 200 MB)."""

    _lock = threading.Lock()
    _instance: Any = None

    @classmethod
    def get(cls) -> Any:
        if cls._instance is None:
            with cls._lock:
                if cls._instance is None:
                    from rapidocr_onnxruntime import RapidOCR

                    cls._instance = RapidOCR()
        return cls._instance


def _order(quad: np.ndarray) -> np.ndarray:
    s, d = quad.sum(axis=1), np.diff(quad, axis=1).ravel()
    return np.array(
        [quad[np.argmin(s)], quad[np.argmin(d)], quad[np.argmax(s)], quad[np.argmax(d)]], np.float32
    )


def _cut_line(gray: np.ndarray, quad: np.ndarray, pad: float) -> np.ndarray:
    """The text line under `quad`, rectified to horizontal, from the full-resolution photo."""
    q = _order(quad)
    width = float(max(np.linalg.norm(q[1] - q[0]), np.linalg.norm(q[2] - q[3])))
    height = float(max(np.linalg.norm(q[3] - q[0]), np.linalg.norm(q[2] - q[1])))
    if width < 4 or height < 4:
        return np.zeros((0, 0), np.uint8)
    p = pad * height
    # The recognizer looks at 48 px tall lines; cutting larger wastes time.
    scale = min(1.0, 96 / height)
    out_w, out_h = int((width + 2 * p) * scale), int((height + 2 * p) * scale)
    dst = np.array([[p, p], [p + width, p], [p + width, p + height], [p, p + height]], np.float32) * scale
    matrix = cv2.getPerspectiveTransform(q, dst)
    line = cv2.warpPerspective(
        gray, matrix, (out_w, out_h), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE
    )
    if line.shape[0] > line.shape[1] * 1.5:  # a vertical line: the recognizer reads rows
        line = cv2.rotate(line, cv2.ROTATE_90_COUNTERCLOCKWISE)
    return line


def _variants(line: np.ndarray) -> list[np.ndarray]:
    """Two independent looks at one line, and a third for a tie-break."""
    clahe = cv2.createCLAHE(clipLimit=2.0, tileGridSize=(1, 8)).apply(line)
    # Binarizing small print destroyed digits in the benchmark; a sharpened, slightly
    # larger copy is an independent look that keeps them.
    big = cv2.resize(line, None, fx=1.5, fy=1.5, interpolation=cv2.INTER_CUBIC)
    sharp = cv2.addWeighted(big, 1.8, cv2.GaussianBlur(big, (0, 0), 1.2), -0.8, 0)
    return [line, clahe, sharp]


def _bgr(gray: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR)


class DigitReader:
    def __init__(self, plausibility: Plausibility) -> None:
        self.plausibility = plausibility

    def read(
        self, gray: np.ndarray, deadline: float, hints: list[np.ndarray] | None = None
    ) -> tuple[list[DigitReading], list[Uncertain]]:
        """`hints`: quadrilaterals of symbols found on the photo; the printed code sits
        next to a label's QR, so they say where to look closer."""
        engine = _Engine.get()
        readings, uncertain, boxes = self._pass(engine, gray, deadline)
        if hints:
            # Printed digits sit beside the symbol, up to about its own size away.
            boxes = [*boxes, *(_grow(q, 1.2) for q in hints)]
        if readings or time.perf_counter() > deadline or not boxes:
            return readings, uncertain
        # Small print on a large photo is too small at the detector's scale, but the label
        # still shows as a cluster of text boxes (or a symbol): look again at that region
        # alone, at a finer scale (one more detection, not a tiling of the whole photo).
        pts = np.vstack(boxes)
        x0, y0 = pts.min(axis=0)
        x1, y1 = pts.max(axis=0)
        h, w = gray.shape
        m = 0.15 * max(x1 - x0, y1 - y0)
        left, top = int(max(0, x0 - m)), int(max(0, y0 - m))
        right, bottom = int(min(w, x1 + m)), int(min(h, y1 + m))
        first_scale = min(1.0, _DET_SIDE / max(h, w))
        crop_scale = min(1.0, _DET_SIDE / max(right - left, bottom - top, 1))
        if crop_scale < 1.5 * first_scale:
            return readings, uncertain  # the crop would not be seen any finer
        more, unsure, _ = self._pass(engine, gray[top:bottom, left:right], deadline, offset=(left, top))
        return more, uncertain + unsure

    def _pass(
        self, engine: Any, gray: np.ndarray, deadline: float, offset: tuple[int, int] = (0, 0)
    ) -> tuple[list[DigitReading], list[Uncertain], list[np.ndarray]]:
        """Readings, uncertain readings, and every text box found (full-image coordinates)."""
        h, w = gray.shape
        scale = min(1.0, _DET_SIDE / max(h, w))
        small = (
            cv2.resize(gray, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA) if scale < 1 else gray
        )
        boxes, _ = engine.text_det(_bgr(small))
        if boxes is None or len(boxes) == 0:
            return [], [], []
        quads = [np.asarray(b, np.float32) / scale for b in boxes]
        found_boxes = [q + np.asarray(offset, np.float32) for q in quads]
        lines = [_cut_line(gray, q, 0.15) for q in quads]
        keep = [i for i, line in enumerate(lines) if line.size and line.shape[1] >= line.shape[0] * 2]
        if not keep or time.perf_counter() > deadline:
            return [], [], found_boxes
        # First look: every line once; only lines that may hold a code get a second look.
        first, _ = engine.text_rec([_bgr(lines[i]) for i in keep])
        texts = {i: (str(t), float(sc)) for i, (t, sc) in zip(keep, first, strict=True)}
        entries = [(quads[i], t, sc) for i, (t, sc) in texts.items() if _digit_rich(t)]
        entries += _joined_neighbours(texts, quads)
        readings: list[DigitReading] = []
        uncertain: list[Uncertain] = []
        for quad, text, score in entries:
            if not any(15 <= len(d) <= 20 for d, _ in candidates(text)) or time.perf_counter() > deadline:
                continue
            line = _cut_line(gray, quad, 0.15)
            if not line.size:
                continue
            looks, _ = engine.text_rec([_bgr(v) for v in _variants(line)[1:]])
            reading = self._decide(
                [text] + [str(t) for t, _ in looks], [score] + [float(sc) for _, sc in looks], quad, offset
            )
            if isinstance(reading, DigitReading):
                readings.append(reading)
            elif reading is not None:
                uncertain.append(reading)
        readings.sort(key=lambda r: (not r.prefixed, -r.confidence))
        return readings, uncertain, found_boxes

    def _decide(
        self, texts: list[str], scores: list[float], quad: np.ndarray, offset: tuple[int, int]
    ) -> DigitReading | Uncertain | None:
        votes: dict[str, list[float]] = {}
        prefixed: dict[str, bool] = {}
        for text, score in zip(texts, scores, strict=True):
            for digits, pre in candidates(text):
                if len(digits) in (17, 18):
                    votes.setdefault(digits, []).append(float(score))
                    prefixed[digits] = prefixed.get(digits, False) or pre
                elif 15 <= len(digits) <= 20:
                    votes.setdefault(digits, [])
        if not votes:
            return None
        best = max(votes, key=lambda d: len(votes[d]))
        agree = len(votes[best])
        if len(best) not in (17, 18):
            return Uncertain(best, "length")
        # Every look that saw a code-length string must have seen this one, and at least
        # two did: one dissenting look means the print does not settle the digits.
        if agree < 2 or any(v for d, v in votes.items() if d != best):
            return Uncertain(best, "disagreement")
        why = self.plausibility.check(best)
        if why:
            return Uncertain(best, why)
        ox, oy = offset
        corners = tuple((round(float(x) + ox), round(float(y) + oy)) for x, y in _order(quad))
        confidence = round(min(votes[best]) * agree / len(texts), 3) if votes[best] else 0.0
        return DigitReading(best, confidence, corners, prefixed[best])


def _joined_neighbours(
    texts: dict[int, tuple[str, float]], quads: list[np.ndarray]
) -> list[tuple[np.ndarray, str, float]]:
    """Detection sometimes splits "有机码：" from the digits, or the digit groups from
    each other, into neighbouring boxes on one baseline: offer each such pair joined."""
    out: list[tuple[np.ndarray, str, float]] = []
    order = sorted(texts, key=lambda i: (quads[i][:, 1].mean(), quads[i][:, 0].min()))
    for a, b in itertools.pairwise(order):
        qa, qb = quads[a], quads[b]
        height = float(qa[:, 1].max() - qa[:, 1].min())
        same_line = abs(qa[:, 1].mean() - qb[:, 1].mean()) < 0.5 * height
        gap = float(qb[:, 0].min() - qa[:, 0].max())
        joined = texts[a][0] + texts[b][0]
        if same_line and -0.2 * height < gap < 2.5 * height and _digit_rich(joined):
            pts = np.vstack([qa, qb])
            x0, y0 = pts.min(axis=0)
            x1, y1 = pts.max(axis=0)
            box = np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], np.float32)
            out.append((box, joined, min(texts[a][1], texts[b][1])))
    return out


def _grow(quad: np.ndarray, factor: float) -> np.ndarray:
    centre = quad.mean(axis=0)
    return (centre + (quad - centre) * (1 + 2 * factor)).astype(np.float32)


def _digit_rich(text: str) -> bool:
    return sum(ch.isdigit() for ch in unicodedata.normalize("NFKC", text)) >= 8 or bool(_PREFIX.search(text))
