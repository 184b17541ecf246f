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

import copy
import functools
import importlib.util
import math
import re
import threading
import time
import unicodedata
from dataclasses import dataclass
from datetime import date
from difflib import SequenceMatcher
from typing import Any

import cv2
import numpy as np

from scanner.second import SecondReader
from scanner.third import ThirdReader

# Detection costs ~0.3 s per megapixel here and dominates the OCR stage. A photo is first
# seen at 800 px a side, enough to find the label (its mark, its QR, a cluster of text);
# the code line is then read from up to three closer looks of 640 px each around those
# places. Measured on the scanner bench's 12 MP photos against one 1280 px look plus
# 1280 px closer looks: more codes read (21 vs 18 of 23), OCR median 830 -> 360 ms.
_DET_SIDE = 800  # longest side of the first detection of a larger photo
_CLOSE_SIDE = 640  # longest side of a closer look
_SMALL_SIDE = 1280  # a small photo is enlarged, its long side up to this
_DET_SHORT = 736  # … until its short side is this long
_CLOSER_ZOOM = 2.0  # the most a closer look enlarges its region
_WIDEN = 2.0  # a place to look closer: a found box widened by this many times its short side
_MAX_CLOSER_LOOKS = 3  # finer detections around places where the first found something
_TURN_CONFIDENCE = 0.9  # the engine's own threshold for turning a line read as upside down
_PROPOSAL_SIDE = 1000  # long side of the copy where print too small to detect is looked for
_EDGE_CONTRAST = 28  # grey levels across a 3 px neighbourhood that make a pixel an edge
_MIN_LEAN = 5.0  # degrees: text leaning less is detected as well as level text
_PRINT_EDGE_SHARE = 0.42  # share of a proposed patch's pixels that are edges: print, not an outline

# The recognizer's own padding (rec_img_shape 3×48×320): a batch of lines shorter than
# this many heights is padded to it.
_PADDED = 320 / 48

_PREFIX = re.compile(r"有\s*[机機]\s*[码碼]")
# Two of the prefix's three characters at the start of a line: the prefix read with one
# character lost ("有码：" on blurred inkjet print). Only ever used to tell that a line is
# the prefix and digits, never to find a code.
_PREFIX_REMNANT = re.compile(r"^(?:有[机機]|有[码碼]|[机機][码碼])")
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


def ocr_available() -> bool:
    """Whether the OCR engine is installed, without loading it (it is an optional
    dependency: requirements-ocr.txt). Without it QR codes and barcodes still read."""
    try:
        return importlib.util.find_spec("rapidocr_onnxruntime") is not None
    except (ImportError, ValueError):
        return False


class _Engine:
    """RapidOCR, loaded once per process on first use (about 0.4 s and 200 MB)."""

    _lock = threading.Lock()
    _instance: Any = None
    _first_look: Any = None

    @classmethod
    def get(cls) -> Any:
        if cls._instance is None:
            with cls._lock:
                if cls._instance is None:
                    from rapidocr_onnxruntime import RapidOCR

                    # "max": the detector takes the image at the size it is given (it
                    # would otherwise enlarge anything under 736 px a side): the reader
                    # chooses each pass's scale itself.
                    engine = RapidOCR(det_limit_type="max")
                    for infer in (engine.text_det.infer, engine.text_cls.infer, engine.text_rec.session):
                        _without_spinning(infer)
                    # The recognizer pads every batch to its widest line and to at least
                    # 320 px (6.7 line heights). Most boxes a pass finds are shorter (a
                    # word, a digit group: 1.4-5 heights), so a batch of them costs two to
                    # four times their own width. The first look at every box only finds
                    # the lines worth reading: it is padded to its widest line alone (the
                    # same session, so no second model in memory). The looks that vote on
                    # a code keep the engine's padding: padded narrower, all five looks at
                    # a 10 px DotGothic16 code over two lines read its 7 as 1 (unseen-dev
                    # seed 11, photo 57), where padded to 320 px one of them dissents.
                    first_look = copy.copy(engine.text_rec)
                    first_look.rec_image_shape = [3, 48, 48]
                    cls._first_look = first_look
                    cls._instance = engine
        return cls._instance

    @classmethod
    def first_look(cls) -> Any:
        """The engine's recognizer padding each batch only to its widest line (`get` first)."""
        return cls._first_look


def _without_spinning(infer: Any) -> None:
    """The engine's onnxruntime session (`infer.session`, one of RapidOCR's OrtInferSession
    wrappers) loaded again with its own options, but with the threads of each operator's
    thread pool waiting asleep instead of spinning between operators.

    A spinning pool thread keeps its core busy while it waits for the next operator; on a
    host shared with other workers (2 cores here) that time is taken from them and from
    this worker's own Python thread. Measured here, interleaved on the same inputs at a
    load average of 5: detection 20 % and recognition 14 % less wall time, 30 % less CPU.
    The same kernels on the same threads compute the same numbers (a test compares them)."""
    import onnxruntime  # optional, like the engine that brings it (requirements-ocr.txt)

    path, providers = infer.session._model_path, infer.session.get_providers()
    infer.session = None  # released first: two copies of a model at once raised peak memory
    options = onnxruntime.SessionOptions()
    # RapidOCR's own options (rapidocr_onnxruntime/utils/infer_engine.py), and no spinning.
    options.log_severity_level = 4
    options.enable_cpu_mem_arena = False
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    infer.session = onnxruntime.InferenceSession(path, sess_options=options, providers=providers)


def _order(quad: np.ndarray) -> np.ndarray:
    """Corners as TL, TR, BR, BL of an upright box (for reporting positions)."""
    s, d = quad.sum(axis=1), np.diff(quad, axis=1).ravel()
    return np.array(
        [quad[np.argmin(s)], quad[np.argmin(d)], quad[np.argmax(s)], quad[np.argmax(d)]], np.float32
    )


def _along(quad: np.ndarray) -> np.ndarray:
    """Corners ordered so the first edge runs along the text line, left to right when the
    line leans less than 90° from horizontal: a detector box carries no reading direction,
    but a text line is always its long side. Upside-down text is settled later by the
    orientation classifier."""
    quad = np.asarray(quad, np.float32)
    centre = quad.mean(axis=0)
    q = quad[np.argsort(np.arctan2(quad[:, 1] - centre[1], quad[:, 0] - centre[0]))]  # clockwise
    if np.linalg.norm(q[3] - q[0]) > np.linalg.norm(q[1] - q[0]):
        q = np.roll(q, -1, axis=0)  # the long side first
    if q[1, 0] < q[0, 0]:
        q = np.roll(q, 2, axis=0)
    return q


def _cut_line(gray: np.ndarray, quad: np.ndarray, pad: float) -> np.ndarray:
    """The text line under `quad` (corners in reading order, from `_along`), rectified to
    horizontal, from the full-resolution photo."""
    q = quad.astype(np.float32)
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
    return cv2.warpPerspective(
        gray, matrix, (out_w, out_h), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE
    )


def _straighten(line: np.ndarray) -> np.ndarray:
    """A line printed on a bent surface (a bag, a bottle seen at an angle) with its middle
    brought onto one straight row; a straight line as it is.

    The middle of the ink in each column, smoothed over about two text heights (so the
    shapes of single digits average out), is the line's centre; when it wanders by more
    than 0.45 of the text height the strip is resampled along it."""
    h, w = line.shape
    if h < 8 or w < 3 * h:
        return line
    _, mask = cv2.threshold(line, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    ink = mask == 0
    if ink.mean() > 0.5:
        ink = ~ink  # light print on a dark ground
    counts = ink.sum(axis=0)
    cols = np.nonzero(counts)[0]
    if len(cols) < 0.3 * w:
        return line
    rows = np.arange(h, dtype=np.float32)[:, None]
    centre = (ink * rows).sum(axis=0)[cols] / counts[cols]
    tops = ink[:, cols].argmax(axis=0)
    bottoms = h - 1 - ink[::-1, cols].argmax(axis=0)
    text_h = float(np.percentile(bottoms - tops + 1, 90))
    if text_h < 6:
        return line
    full = np.interp(np.arange(w), cols, centre).astype(np.float32)
    window = max(3, int(2 * text_h) | 1)
    smooth = cv2.blur(full[None, :], (window, 1), borderType=cv2.BORDER_REPLICATE)[0]
    inked = smooth[cols[0] : cols[-1] + 1]
    wander = float(inked.max() - inked.min())
    if wander < 0.45 * text_h:
        return line
    out_h = max(int(text_h * 1.5), h - int(wander))  # the margins the line was cut with
    map_y = (smooth[None, :] - out_h / 2 + np.arange(out_h, dtype=np.float32)[:, None]).astype(np.float32)
    map_x = np.repeat(np.arange(w, dtype=np.float32)[None, :], out_h, axis=0)
    return cv2.remap(line, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def _variants(line: np.ndarray) -> list[np.ndarray]:
    """Differently prepared looks at one line: the line as cut, then four more."""
    clahe = cv2.createCLAHE(clipLimit=2.0, tileGridSize=(1, 8)).apply(line)
    # Binarizing small print destroyed digits in the benchmark; a sharpened, slightly
    # larger copy is an independent look that keeps them.
    big = cv2.resize(line, None, fx=1.5, fy=1.5, interpolation=cv2.INTER_CUBIC)
    sharp = cv2.addWeighted(big, 1.8, cv2.GaussianBlur(big, (0, 0), 1.2), -0.8, 0)
    # A coarser copy. On blurred small print the recognizer can read a 0 as a 6 or 9
    # with high confidence in all three looks above (they share one resolution); seen
    # coarser, such a digit flips, and a dissenting look makes the reading uncertain.
    # In the benchmark this caught every wrong code the three looks agreed on.
    small = cv2.resize(line, None, fx=0.6, fy=0.6, interpolation=cv2.INTER_AREA)
    # A wider copy. In a condensed face a narrow 1 next to another digit can vanish from
    # every look above (a 19-digit number read as a plausible 18-digit code); stretched
    # along the line the glyphs part, the 1 comes back, and the look dissents.
    wide = cv2.resize(line, None, fx=1.6, fy=1.0, interpolation=cv2.INTER_CUBIC)
    return [line, clahe, sharp, small, wide]


def _bgr(gray: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR)


class DigitReader:
    def __init__(
        self,
        plausibility: Plausibility,
        second: SecondReader | None = None,
        third: ThirdReader | None = None,
    ) -> None:
        self.plausibility = plausibility
        self.second = second or SecondReader()
        self.third = third or ThirdReader()

    def read(
        self, gray: np.ndarray, deadline: float, hints: list[np.ndarray] | None = None
    ) -> tuple[list[DigitReading], list[Uncertain]]:
        """`hints`: quadrilaterals of symbols found on the photo; the printed code sits
        next to a label's QR, so they say where to look closer."""
        engine = _Engine.get()
        h, w = gray.shape
        first_scale = _first_scale(h, w)
        readings, uncertain, boxes, rich = self._pass(engine, gray, deadline, first_scale)
        if readings or time.perf_counter() > deadline:
            return readings, uncertain
        # Lines that lean are found, but often as fragments (a digit group whose box is
        # nearly square takes no clear direction, so the groups do not join into a line):
        # the same look once more, turned so that the digit lines found lie level.
        lean = _lean(rich)
        if abs(lean) >= _MIN_LEAN:
            readings, unsure, more_boxes, _ = self._pass(engine, gray, deadline, first_scale, lean=lean)
            uncertain += unsure
            if readings or time.perf_counter() > deadline:
                return readings, uncertain
            boxes = boxes + more_boxes
        # Small print on a large photo is too small at the detector's scale, but the label
        # still shows as a few boxes (or a symbol): look again at each such place alone,
        # at a finer scale (one more detection each, not a tiling of the whole photo),
        # turned level when the text found there leans.
        # Print so small at the first look's scale that nothing was detected still shows
        # as a dense patch of edges (a label's text on its paper).
        proposals = _proposals(gray) if first_scale < 1 else []
        # A region is looked at only if it would be seen finer than at the first look.
        finer = _CLOSE_SIDE / (1.5 * first_scale) if 1.5 * first_scale <= _CLOSER_ZOOM else 0.0
        for left, top, right, bottom in _regions(boxes, hints or [], (w, h), proposals, finer)[
            :_MAX_CLOSER_LOOKS
        ]:
            crop_scale = min(_CLOSER_ZOOM, _CLOSE_SIDE / max(right - left, bottom - top, 1))
            if time.perf_counter() > deadline:
                break
            inside = [q for q in boxes + proposals if _centre_in(q, (left, top, right, bottom))]
            more, unsure, _, _ = self._pass(
                engine,
                gray[top:bottom, left:right],
                deadline,
                crop_scale,
                offset=(left, top),
                inner=(left > 0, top > 0, right < w, bottom < h),
                lean=_lean(inside),
                photo=gray,
            )
            uncertain += unsure
            if more:
                return more, uncertain
        return [], uncertain

    def _pass(
        self,
        engine: Any,
        gray: np.ndarray,
        deadline: float,
        scale: float,
        offset: tuple[int, int] = (0, 0),
        inner: tuple[bool, bool, bool, bool] = (False, False, False, False),
        lean: float = 0.0,
        photo: np.ndarray | None = None,
    ) -> tuple[list[DigitReading], list[Uncertain], list[np.ndarray], list[np.ndarray]]:
        """Readings, uncertain readings, every text box found and the boxes whose text is
        digit-rich (full-image coordinates). `scale`: the size the detector sees `gray`
        at; `inner`: which of the left, top, right and bottom edges of `gray` lie inside
        the photo (a closer look's region); `lean`: degrees the text leans (clockwise), to
        be turned level for the detector; `photo`: the whole photo when `gray` is a closer
        look's region (at `offset` in it)."""
        if min(gray.shape) * scale < 8:
            return [], [], [], []  # nothing a detector could see (a sliver of an image)
        if scale == 1:
            small = gray
        else:
            interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC
            small = cv2.resize(gray, None, fx=scale, fy=scale, interpolation=interpolation)
        if abs(lean) >= _MIN_LEAN:
            level, back = _levelled(small, lean)
            boxes, _ = engine.text_det(_bgr(level))
            if boxes is not None and len(boxes):
                boxes = [cv2.transform(np.asarray(b, np.float32)[None], back)[0] for b in boxes]
        else:
            boxes, _ = engine.text_det(_bgr(small))
        if boxes is None or len(boxes) == 0:
            return [], [], [], []
        quads = [_along(np.asarray(b, np.float32) / scale) for b in boxes]
        found_boxes = [q + np.asarray(offset, np.float32) for q in quads]
        lines = [_straighten(_cut_line(gray, q, 0.15)) for q in quads]
        keep = [i for i, line in enumerate(lines) if line.size and line.shape[1] >= line.shape[0] * 1.4]
        if not keep or time.perf_counter() > deadline:
            return [], [], found_boxes, []
        # A label photographed upside down (or turned past 90°) gives lines cut upside
        # down; the engine's orientation classifier says which, and only a confident
        # "180" turns a line (and its box, so later looks are cut the same way).
        _, turns, _ = engine.text_cls([_bgr(lines[i]) for i in keep])
        for i, turn in zip(keep, turns, strict=True):
            if _turned(turn):
                quads[i] = np.roll(quads[i], 2, axis=0)
                lines[i] = cv2.rotate(lines[i], cv2.ROTATE_180)
        # First look: every line once; only lines that may hold a code get a second look.
        first, _ = _Engine.first_look()([_bgr(lines[i]) for i in keep])
        texts = {i: (str(t), float(sc)) for i, (t, sc) in zip(keep, first, strict=True)}
        rich = [found_boxes[i] for i, (t, _) in texts.items() if _digit_count(t) >= 6 or _PREFIX.search(t)]
        readings: list[DigitReading] = []
        uncertain: list[Uncertain] = []
        ch, cw = gray.shape
        for line_quad, first_look, line_doubt in _code_lines(texts, quads, deadline):
            quad, look, doubt = line_quad, first_look, line_doubt
            if time.perf_counter() > deadline:
                break
            # A line read a few digits short of a code may have been boxed short: it is
            # followed along the whole photo (past a closer look's region too) to where its
            # print ends, and read again.
            source, shift, ends = gray, np.zeros(2, np.float32), (False, False)
            if look is not None and _short_of_a_code(look[0]):
                whole = photo if photo is not None else gray
                at = np.asarray(offset, np.float32) if photo is not None else shift
                longer = _extended_to_ink(whole, quad + at)
                if longer is not None:
                    quad, look, ends = longer[0] - at, None, longer[1:]
                    source, shift = whole, at
            line = _straighten(_cut_line(source, quad + shift, 0.15))
            if not line.size:
                continue
            if look is None:
                # A line joined from several boxes took its direction from one of them:
                # the classifier decides for the whole line, as for single boxes; then
                # all five looks are new.
                _, (turn,), _ = engine.text_cls([_bgr(line)])
                if _turned(turn):
                    quad = np.roll(quad, 2, axis=0)
                    line = cv2.rotate(line, cv2.ROTATE_180)
                    ends = (ends[1], ends[0])
                looks, _ = engine.text_rec([_bgr(v) for v in _variants(line)])
            elif line.shape[1] < _PADDED * line.shape[0]:
                # A line shorter than the engine's padding was first looked at padded to
                # its own width (`_Engine`): that look does not vote; five new ones do.
                looks, _ = engine.text_rec([_bgr(v) for v in _variants(line)])
            else:
                more, _ = engine.text_rec([_bgr(v) for v in _variants(line)[1:]])
                looks = [look, *more]
            reading = self._decide(
                [str(t) for t, _ in looks],
                [float(sc) for _, sc in looks],
                quad,
                offset,
                [line],
            )
            height = float(np.linalg.norm(quad[3] - quad[0]))
            # A line followed to where its print ends on the whole photo is not cut short by
            # a region's edge; nor is its start when it starts with 有机码.
            prefixed = isinstance(reading, DigitReading) and reading.prefixed
            ended = ends[1] and (ends[0] or prefixed)
            if doubt is None and not ended and _at_inner_edge(quad, (cw, ch), inner, height):
                # A closer look's region ends here while the photo goes on: the line may
                # run past it, and every look would agree on the digits cut short.
                doubt = "region_edge"
            if isinstance(reading, DigitReading) and doubt is not None:
                reading = Uncertain(reading.code, doubt)
            if isinstance(reading, DigitReading):
                readings.append(reading)
            elif reading is not None:
                uncertain.append(reading)
        if not readings:
            for top, bottom in _stacked_lines(texts, quads, deadline):
                if time.perf_counter() > deadline:
                    break
                reading = self._read_stacked(engine, gray, top, bottom, offset)
                doubt = None
                for q in (top, bottom):
                    if _at_inner_edge(q, (cw, ch), inner, float(np.linalg.norm(q[3] - q[0]))):
                        doubt = "region_edge"
                if isinstance(reading, DigitReading) and doubt is not None:
                    reading = Uncertain(reading.code, doubt)
                if isinstance(reading, DigitReading):
                    readings.append(reading)
                elif reading is not None:
                    uncertain.append(reading)
        readings.sort(key=lambda r: (not r.prefixed, -r.confidence))
        return readings, uncertain, found_boxes, rich

    def _read_stacked(
        self, engine: Any, gray: np.ndarray, top: np.ndarray, bottom: np.ndarray, offset: tuple[int, int]
    ) -> DigitReading | Uncertain | None:
        """A code printed over two lines: each look reads both lines the same way, and the
        look's text is the upper line's followed by the lower line's; then the same vote."""
        upper, lower = _straighten(_cut_line(gray, top, 0.15)), _straighten(_cut_line(gray, bottom, 0.15))
        if not upper.size or not lower.size:
            return None
        _, turns, _ = engine.text_cls([_bgr(upper), _bgr(lower)])
        if _turned(turns[0]) and _turned(turns[1]):
            # Upside down: what lies above in the photo is the second line.
            top, bottom = np.roll(bottom, 2, axis=0), np.roll(top, 2, axis=0)
            upper, lower = cv2.rotate(lower, cv2.ROTATE_180), cv2.rotate(upper, cv2.ROTATE_180)
        a, b = _variants(upper), _variants(lower)
        looks, _ = engine.text_rec([_bgr(v) for v in a + b])
        n = len(a)
        texts = [str(looks[k][0]) + str(looks[n + k][0]) for k in range(n)]
        scores = [min(float(looks[k][1]), float(looks[n + k][1])) for k in range(n)]
        points = np.vstack([top, bottom]).astype(np.float32)
        box = cv2.boxPoints(cv2.minAreaRect(points)).astype(np.float32)
        return self._decide(texts, scores, box, offset, [upper, lower])

    def _settled(
        self,
        best: str,
        votes: dict[str, list[float]],
        lines: list[np.ndarray] | None,
        prefixed: bool = False,
    ) -> bool:
        """Whether a reading the first looks dispute is settled after all.

        Never unless most of the five looks (three) read it, and never when another
        reading is as often read, or longer: a look that finds an extra digit may be the
        only one that parted two narrow glyphs (a 19-digit number read as an 18-digit
        code by every other look), and a second model can merge them the same way. Then
        only the second recognizer (another model) settles it, by reading this code where
        the looks dispute it (`_agrees_where_disputed`), when the looks only dispute single
        digits (every rival as long, or one that read a doubled digit once: `_collapsed`);
        on blurred print it agreed with a dissenting look as often as with the others, so
        it decides nothing alone. Where Tesseract does not settle it and did not read a
        rival, a third recognizer of another lineage (ddddocr's model, `scanner.third`) is
        asked the same question under the same gate: on the development seeds (unseen-dev 7
        and 11, the development set) it settled right readings on inkjet print Tesseract
        misread, and agreed with no plausible wrong majority (seed 11 photo 57 included).

        More looks of the same model never settle it: they are not independent of the
        first five. On a 10 px DotGothic16 line (unseen-dev seed 11, photo 57) four looks
        and all six fresh ones read a 7 as 1, so "the fresh looks all agree" confirmed a
        wrong code."""
        agree = len(votes[best])
        rivals = [d for d in votes if d != best]
        if agree < 3 or any(len(d) > len(best) or len(votes[d]) >= agree for d in rivals):
            return False
        if not lines or not all(len(d) == len(best) or _collapsed(d, best) for d in rivals):
            return False
        second = self.second.read(lines)
        if second and _agrees_where_disputed(best, rivals, second, prefixed):
            return True
        # Where Tesseract read too little (or nothing), the third recognizer is asked the
        # same question, under the same gate; never where Tesseract read the disputed
        # digits as a rival does: two other models would then disagree, and which side
        # was printed is a guess.
        if second and any(
            len(d) == len(best) and _agrees_where_disputed(d, [best], second, prefixed) for d in rivals
        ):
            return False
        third = self.third.read(lines)
        return third is not None and third != "" and _agrees_where_disputed(best, rivals, third, prefixed)

    def _decide(
        self,
        texts: list[str],
        scores: list[float],
        quad: np.ndarray,
        offset: tuple[int, int],
        lines: list[np.ndarray] | None = None,
    ) -> DigitReading | Uncertain | None:
        """The reading the looks `texts` settle on, if any. `lines`: the printed line(s) the
        looks were taken of, for the second recognizer (`_settled`)."""
        # Each look votes once per string it holds (a look reading one code twice is still
        # one look); a code-length string of any other value from any look is dissent.
        votes: dict[str, list[float]] = {}
        prefixed: dict[str, bool] = {}
        for text, score in zip(texts, scores, strict=True):
            seen: set[str] = set()
            for digits, pre in candidates(text):
                if not 15 <= len(digits) <= 20:
                    continue
                votes.setdefault(digits, [])
                prefixed[digits] = prefixed.get(digits, False) or pre
                if digits not in seen and len(digits) in (17, 18):
                    seen.add(digits)
                    votes[digits].append(float(score))
        if not votes:
            return None
        best = max(votes, key=lambda d: len(votes[d]))
        agree = len(votes[best])
        if len(best) not in (17, 18):
            return Uncertain(best, "length")
        # Every look that saw a code-length string must have seen this one, and at least
        # two did: one dissenting look means the print does not settle the digits...
        rivals = [d for d in votes if d != best]
        if (agree < 2 or rivals) and not self._settled(best, votes, lines, prefixed[best]):
            return Uncertain(best, "disagreement")
        why = self.plausibility.check(best)
        if why:
            return Uncertain(best, why)
        ox, oy = offset
        corners = tuple((round(float(x) + ox), round(float(y) + oy)) for x, y in _order(quad))
        confidence = round(min(votes[best]) * agree / len(texts), 3) if votes[best] else 0.0
        return DigitReading(best, confidence, corners, prefixed[best])


@dataclass(frozen=True, slots=True)
class _Frame:
    """A box in its own text frame: origin, direction along the line, towards its bottom.
    Plain floats: grouping compares every pair of boxes, and numpy per pair was the
    slowest part of reading a busy photo."""

    ox: float
    oy: float
    ux: float
    uy: float
    length: float
    height: float
    corners: tuple[tuple[float, float], ...]

    @classmethod
    def of(cls, quad: np.ndarray) -> _Frame | None:
        pts = tuple((float(x), float(y)) for x, y in quad)
        (x0, y0), (x1, y1), _, (x3, y3) = pts
        length = math.hypot(x1 - x0, y1 - y0)
        height = math.hypot(x3 - x0, y3 - y0)
        if length < 1 or height < 1:
            return None
        return cls(x0, y0, (x1 - x0) / length, (y1 - y0) / length, length, height, pts)

    def span(self, other: _Frame) -> tuple[float, float, float]:
        """`other` along this line (start, end) and its mean offset across it (towards
        the bottom of the text)."""
        along = [(x - self.ox) * self.ux + (y - self.oy) * self.uy for x, y in other.corners]
        across = sum((y - self.oy) * self.ux - (x - self.ox) * self.uy for x, y in other.corners) / 4
        return min(along), max(along), across


def _continues(a: _Frame, b: _Frame) -> bool:
    """Box b continues the printed line of box a: same direction, height and baseline, at
    most 2.5 heights beyond either end, or reaching back over a's end by up to one height.

    The detector splits a line on a wide gap ("015723  643682  816405") and can give the
    digit at the split to both boxes ("…643682 8" and "816405"): the joined line is cut
    and read again whole, so the digit is read once."""
    if not 0.6 * a.height < b.height < 1.6 * a.height or abs(a.ux * b.ux + a.uy * b.uy) < 0.9:
        return False
    lo, hi, across = a.span(b)
    if abs(across - a.height / 2) > 0.5 * a.height:
        return False
    return -a.height < lo - a.length < 2.5 * a.height or -a.height < -hi < 2.5 * a.height


def _code_lines(
    texts: dict[int, tuple[str, float]], quads: list[np.ndarray], deadline: float
) -> list[tuple[np.ndarray, tuple[str, float] | None, str | None]]:
    """The lines worth a closer look: (box, its first look or None when the box is new,
    why it cannot be trusted or None).

    Detection often splits one printed line into several boxes on one baseline —
    "有机码：" from the digits, the digit groups of "0123 24 1234 5678 90" from each other,
    or a few digits at the end (too short a box to be read alone). Boxes that continue one
    another (either way round) form one line, and every box belongs to one line only, so
    a line is never also offered cut short; the whole line is cut and read again as one.
    A line with a box of another size just beyond either end may be missing digits: it
    is read, but only to be reported as uncertain."""
    frames, grouped = _line_groups(quads, deadline)
    if grouped is None:
        return []
    groups = dict(enumerate(grouped))
    out: list[tuple[np.ndarray, tuple[str, float] | None, str | None]] = []
    for members in groups.values():
        rich = [i for i in members if i in texts and _digit_rich(texts[i][0])]
        if not rich:
            continue
        main = max(rich, key=lambda i: frames[i].length)  # type: ignore[union-attr]
        frame = frames[main]
        assert frame is not None
        spans = {i: frame.span(frames[i]) for i in members}  # type: ignore[arg-type]
        lo, hi = min(v[0] for v in spans.values()), max(v[1] for v in spans.values())
        if len(members) == 1:
            text = texts[main][0]
            if not any(15 <= len(d) <= 20 for d, _ in candidates(text)):
                continue
            box, look = quads[main], texts[main]
        else:
            order = sorted(members, key=lambda i: spans[i][0])
            joined = "".join(texts[i][0] for i in order if i in texts)
            if not (_PREFIX.search(joined) or max((len(d) for d, _ in candidates(joined)), default=0) >= 12):
                continue
            box = _group_box(frame, [quads[i] for i in members], lo, hi)
            look = None
        doubt = None
        for j, fj in enumerate(frames):
            if j in members or fj is None:
                continue
            j_lo, j_hi, across = frame.span(fj)
            on_line = abs(across - frame.height / 2) < 0.6 * frame.height
            near = lo - 1.5 * frame.height < j_hi <= lo + 0.2 * frame.height or (
                hi - 0.2 * frame.height <= j_lo < hi + 1.5 * frame.height
            )
            if on_line and near:
                doubt = "neighbour"
                break
        out.append((box, look, doubt))
    return out


def _group_box(frame: _Frame, quads: list[np.ndarray], lo: float, hi: float) -> np.ndarray:
    """One box along `frame`'s line from `lo` to `hi`, as tall as `quads` reach across it."""
    o = np.array([frame.ox, frame.oy], np.float32)
    u = np.array([frame.ux, frame.uy], np.float32)
    n = np.array([-frame.uy, frame.ux], np.float32)
    rel = np.vstack(quads) - o
    t0, t1 = float((rel @ n).min()), float((rel @ n).max())
    return np.array(
        [o + lo * u + t0 * n, o + hi * u + t0 * n, o + hi * u + t1 * n, o + lo * u + t1 * n], np.float32
    )


def _stacked_lines(
    texts: dict[int, tuple[str, float]], quads: list[np.ndarray], deadline: float
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Codes printed over two lines (small round labels): (upper line, lower line) pairs of
    digit lines, one just below the other, as tall and as turned, overlapping along the
    line, holding 16-19 digits together at the first look. A line that could pair with
    more than one other is left alone: which two belong together would be a guess."""
    frames, grouped = _line_groups(quads, deadline)
    if grouped is None:
        return []
    lines: list[tuple[np.ndarray, _Frame, int, bool]] = []
    for members in grouped:
        main = max(members, key=lambda i: frames[i].length)  # type: ignore[union-attr]
        frame = frames[main]
        assert frame is not None
        spans = {i: frame.span(frames[i]) for i in members}  # type: ignore[arg-type]
        joined = "".join(texts[i][0] for i in sorted(members, key=lambda i: spans[i][0]) if i in texts)
        folded = unicodedata.normalize("NFKC", joined)
        rest = _SEPARATORS.sub("", _PREFIX.sub("", folded).translate(_CONFUSABLE))
        remnant = _PREFIX_REMNANT.match(rest)
        if remnant:
            rest = rest[remnant.end() :]
        count = _digit_count(folded)
        if not 3 <= count <= 15 or not rest.isdigit():
            continue  # not a line of digits (another script, letters, a lone word)
        lo, hi = min(v[0] for v in spans.values()), max(v[1] for v in spans.values())
        box = _group_box(frame, [quads[i] for i in members], lo, hi)
        box_frame = _Frame.of(box)
        if box_frame is not None:
            lines.append((box, box_frame, count, bool(_PREFIX.search(folded) or remnant)))
    pairs: list[tuple[int, int]] = []
    for a, (_, fa, na, a_prefixed) in enumerate(lines):
        # A line led by 有机码 is boxed as tall as the CJK characters, which reach further
        # above and below than the digits: the line of digits under it is shorter.
        least = 0.6 if a_prefixed else 0.75
        for b, (_, fb, nb, b_prefixed) in enumerate(lines):
            if a == b or b_prefixed or not 16 <= na + nb <= 19:
                continue
            if not least * fa.height < fb.height < 1.33 * fa.height or fa.ux * fb.ux + fa.uy * fb.uy < 0.97:
                continue
            lo, hi, across = fa.span(fb)
            drop = across - fa.height / 2  # from the middle of a to the middle of b
            overlap = min(hi, fa.length) - max(lo, 0.0)
            # Boxes of print blurred or bent on a bag are taller than its ink, so lines set
            # close lie as little as 0.55 box heights apart (less would be one line boxed twice).
            if 0.55 * fa.height <= drop <= 2.6 * fa.height and overlap >= 0.3 * min(fa.length, hi - lo):
                pairs.append((a, b))
    out = []
    for a, b in pairs:
        if sum(1 for p in pairs if a in p or b in p) == 1:
            out.append((lines[a][0], lines[b][0]))
    return out


def _line_groups(
    quads: list[np.ndarray], deadline: float
) -> tuple[list[_Frame | None], list[list[int]] | None]:
    """Boxes that continue one another (either way round) as printed lines: each box's
    frame, and the lines as lists of box indices (None when the deadline passed)."""
    frames = [_Frame.of(q) for q in quads]
    parent = list(range(len(quads)))
    root = functools.partial(_root, parent)
    for a, fa in enumerate(frames):
        if time.perf_counter() > deadline:
            return frames, None
        if fa is None:
            continue
        for b in range(a):
            fb = frames[b]
            if fb is not None and root(a) != root(b) and (_continues(fa, fb) or _continues(fb, fa)):
                parent[root(a)] = root(b)
    groups: dict[int, list[int]] = {}
    for i, f in enumerate(frames):
        if f is not None:
            groups.setdefault(root(i), []).append(i)
    return frames, list(groups.values())


def _root(parent: list[int], i: int) -> int:
    """The representative of i's group in a union-find forest (path halving)."""
    while parent[i] != i:
        parent[i] = parent[parent[i]]
        i = parent[i]
    return i


def _turned(turn: Any) -> bool:
    """The orientation classifier's (label, confidence) says upside down, and is sure."""
    return "180" in str(turn[0]) and float(turn[1]) > _TURN_CONFIDENCE


def _at_inner_edge(
    quad: np.ndarray, size: tuple[int, int], inner: tuple[bool, bool, bool, bool], height: float
) -> bool:
    """Whether `quad` comes within half a text height of an edge that lies inside the photo."""
    w, h = size
    margin = 0.5 * height
    x0, y0 = quad.min(axis=0)
    x1, y1 = quad.max(axis=0)
    left, top, right, bottom = inner
    return (
        (left and x0 < margin)
        or (top and y0 < margin)
        or (right and x1 > w - margin)
        or (bottom and y1 > h - margin)
    )


def _first_scale(h: int, w: int) -> float:
    """The scale of the first detection: a large photo reduced to `_DET_SIDE`, a small one
    enlarged (small photos carry small print)."""
    if max(h, w) > _DET_SIDE:
        return _DET_SIDE / max(h, w)
    return max(1.0, min(_DET_SHORT / min(h, w), _SMALL_SIDE / max(h, w)))


def _regions(
    boxes: list[np.ndarray],
    hints: list[np.ndarray],
    size: tuple[int, int],
    proposals: list[np.ndarray] | None = None,
    max_side: float = math.inf,
) -> list[tuple[int, int, int, int]]:
    """Places to look closer: (left, top, right, bottom), places holding a symbol first,
    then the smallest (seen the finest), none longer than `max_side` px.

    What the detector found at a label is often only the organic mark or the QR (a
    blob, not a line), and the code line runs beside or under it, up to a few times its
    size away: each box (and each symbol) is widened by twice its short side all round,
    and widened boxes that overlap make one place. Package print elsewhere in the photo
    makes a place of its own instead of stretching one region over the whole photo."""
    rects = [(_widen(q, _WIDEN), k >= len(boxes)) for k, q in enumerate([*boxes, *hints])]
    parent = list(range(len(rects)))
    root = functools.partial(_root, parent)

    for i, (ri, _) in enumerate(rects):
        for j in range(i):
            rj = rects[j][0]
            if (
                ri[0, 0] <= rj[2, 0]
                and rj[0, 0] <= ri[2, 0]
                and ri[0, 1] <= rj[2, 1]
                and rj[0, 1] <= ri[2, 1]
            ):
                parent[root(i)] = root(j)
    groups: dict[int, list[int]] = {}
    for i in range(len(rects)):
        groups.setdefault(root(i), []).append(i)
    w, h = size
    out: list[tuple[bool, float, tuple[int, int, int, int]]] = []
    for members in groups.values():
        symbol = any(rects[i][1] for i in members)
        place = _bounds([rects[i][0] for i in members], size)
        if place is not None and max(place[2] - place[0], place[3] - place[1]) > max_side:
            # Widened, the place is too large to be seen any finer: a large box (a whole
            # label the first look took for one blob of text) is looked at as it is.
            place = _bounds([_widen(q, 0.25) for q in [*boxes, *hints] if _centre_in(q, place)], size)
        if place is not None and max(place[2] - place[0], place[3] - place[1]) <= max_side:
            out.append((not symbol, float((place[2] - place[0]) * (place[3] - place[1])), place))
    # A proposed patch of print already covers the label's text: it is widened a little
    # and never merged with others (a large box nearby would make it too coarse to see).
    for q in proposals or []:
        r = _widen(q, 0.5)
        left, top = int(max(0, r[0, 0])), int(max(0, r[0, 1]))
        right, bottom = int(min(w, r[2, 0])), int(min(h, r[2, 1]))
        if right - left >= 8 and bottom - top >= 8 and max(right - left, bottom - top) <= max_side:
            out.append((True, float((right - left) * (bottom - top)), (left, top, right, bottom)))
    out.sort(key=lambda r: (r[0], r[1]))
    return [r[2] for r in out]


def _bounds(quads: list[np.ndarray], size: tuple[int, int]) -> tuple[int, int, int, int] | None:
    """The upright rectangle around `quads`, inside the photo; None when under 8 px."""
    if not quads:
        return None
    pts = np.vstack(quads)
    x0, y0 = pts.min(axis=0)
    x1, y1 = pts.max(axis=0)
    left, top = int(max(0, x0)), int(max(0, y0))
    right, bottom = int(min(size[0], x1)), int(min(size[1], y1))
    if right - left < 8 or bottom - top < 8:
        return None
    return left, top, right, bottom


def _widen(quad: np.ndarray, factor: float) -> np.ndarray:
    """`quad` with `factor` times its short side added on every side."""
    q = np.asarray(quad, np.float32)
    short = min(float(np.linalg.norm(q[1] - q[0])), float(np.linalg.norm(q[3] - q[0])))
    x0, y0 = q.min(axis=0) - factor * short
    x1, y1 = q.max(axis=0) + factor * short
    return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], np.float32)


def _short_of_a_code(text: str) -> bool:
    """A line read as 13-16 digits: too few for a code as read, so a box that ended before
    the print did loses nothing by being looked at longer."""
    return any(13 <= len(d) <= 16 for d, _ in candidates(text)) and not any(
        len(d) >= 17 for d, _ in candidates(text)
    )


def _extended_to_ink(gray: np.ndarray, quad: np.ndarray) -> tuple[np.ndarray, bool, bool] | None:
    """`quad` (corners in reading order) lengthened along its line over print that goes on
    past either end, and whether the print's start and its end were found (a gap wider
    than a digit's height, within the photo); None when no print goes on.

    On blurred inkjet print the detector's box can end a few digits before the line does
    ("801124-818841068" of "8011-24-818841068204"). Past each end, columns of the line's
    middle band that hold ink, with gaps narrower than a digit's height between them,
    still belong to the line; a column inked through the margins above and below as well
    is the label's edge or a dark ground, not print, and ends it. At most four text heights
    each way."""
    q = quad.astype(np.float32)
    u = q[1] - q[0]
    length = float(np.linalg.norm(u))
    height = float(np.linalg.norm(q[3] - q[0]))
    if length < 1 or height < 4:
        return None
    u /= length
    reach = 4 * height
    wide = np.array([q[0] - reach * u, q[1] + reach * u, q[2] + reach * u, q[3] - reach * u], np.float32)
    # Cut with half a text height above and below: a digit's stroke inks the text's own
    # rows through, an edge or a dark ground the margins as well.
    strip = _cut_line(gray, wide, 0.5)
    if strip.size == 0:
        return None
    scale = strip.shape[1] / (length + 2 * reach + height)  # strip px per photo px
    _, mask = cv2.threshold(strip, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    ink = mask == 0
    if ink.mean() > 0.5:
        ink = ~ink
    rows = ink.shape[0]
    band = ink[int(0.3 * rows) : max(int(0.3 * rows) + 1, int(0.7 * rows))]
    share = band.mean(axis=0)
    inked, solid = share > 0.08, ink.mean(axis=0) > 0.9
    gap = height * scale  # the widest gap that still parts two digits of one line
    start, end = int((reach + height / 2) * scale), int((reach + height / 2 + length) * scale)

    def walk(at: int, step: int) -> tuple[int, bool]:
        last, k, ink_at = at, at, [at]
        while abs(k + step - last) <= gap:
            if not 0 <= k + step < len(share):
                return last, False  # print up to the end of what could be looked at
            k += step
            if solid[k]:
                # An edge (the label's) or a dark ground, its blurred rim inked too: the
                # print ended before it when blank paper lies between them.
                printed = next((i for i in reversed(ink_at) if abs(k - i) > 0.15 * gap), at)
                return printed, abs(k - printed) >= gap / 2
            if inked[k]:
                last = k
                ink_at.append(k)
        return last, True

    (new_start, found_start), (new_end, found_end) = walk(start, -1), walk(end, 1)

    margin = 0.15 * height * scale
    before = max(0.0, (start - new_start - margin) / scale) if new_start < start else 0.0
    after = max(0.0, (new_end - end + margin) / scale) if new_end > end else 0.0
    if before < 0.3 * height and after < 0.3 * height:
        return None
    longer = np.array([q[0] - before * u, q[1] + after * u, q[2] + after * u, q[3] - before * u], np.float32)
    # Past the photo's edge the strip repeats its border, which tells nothing: the gap that
    # ends the print at either end must lie inside the photo.
    seen = longer + height * np.stack([-u, u, u, -u])
    h, w = gray.shape
    inside = bool((seen >= 0).all() and (seen[:, 0] < w).all() and (seen[:, 1] < h).all())
    return longer, found_start and inside, found_end and inside


def _agrees_where_disputed(best: str, rivals: list[str], second: str, prefixed: bool) -> bool:
    """Whether the second recognizer's digits `second` read `best` where its rivals dispute
    it: every digit a rival of the same length reads otherwise lies in a run of four or more
    digits `second` reads as `best` does, such runs cover at least half of `best`, and
    `second` reads nothing past either end of `best` (digits there may be the code going on;
    before a code printed after 有机码, Tesseract reads the prefix as digits, so there they
    are allowed).

    Tesseract reads blurred or small print partly (a digit lost or misread away from the
    disputed one, a line of two read half). Of 27 disputed readings `_settled` asks it about
    (the unseen generator's development seeds 7 and 11 and the development set), 20 right
    and 7 wrong, the whole code read exactly settled 5, this 6, none of the wrong ones; "the
    code appears in what it read" also passed a reading one digit short of Tesseract's.
    A look that lost a doubled digit (`_collapsed`) disputes no single digit: then the
    whole code must be read exactly."""
    if second == best:
        return True
    disputed = {i for d in rivals if len(d) == len(best) for i, ch in enumerate(d) if ch != best[i]}
    if not disputed or any(len(d) != len(best) for d in rivals):
        return False
    blocks = [b for b in SequenceMatcher(None, best, second, autojunk=False).get_matching_blocks() if b.size]
    if not blocks:
        return False
    first, last = blocks[0], blocks[-1]
    if last.a + last.size == len(best) and last.b + last.size < len(second):
        return False  # digits read past the code's end
    if first.a == 0 and first.b > 0 and not prefixed:
        return False  # digits read before the code's start
    covered = {i for b in blocks if b.size >= 4 for i in range(b.a, b.a + b.size)}
    return disputed <= covered and 2 * len(covered) >= len(best)


def _collapsed(rival: str, best: str) -> bool:
    """Whether `rival` is `best` with one digit of a doubled pair read once: the
    recognizer's decoder merges repeated characters that no gap parts ("66" -> "6"), so a
    look reading one digit fewer where two alike stand together lost a digit, and does
    not dispute which digits were printed."""
    return len(rival) == len(best) - 1 and any(
        best[i] == best[i + 1] and rival == best[:i] + best[i + 1 :] for i in range(len(best) - 1)
    )


def _digit_count(text: str) -> int:
    return sum(ch.isdigit() for ch in unicodedata.normalize("NFKC", text))


def _lean(quads: list[np.ndarray]) -> float:
    """The angle (degrees, clockwise from level) most of the text in `quads` leans by: the
    length-weighted median direction of the boxes long enough to have one."""
    angles: list[tuple[float, float]] = []
    for q in quads:
        along, across = q[1] - q[0], q[3] - q[0]
        length, height = float(np.hypot(*along)), float(np.hypot(*across))
        if length >= 2.5 * height > 0:
            angles.append((math.degrees(math.atan2(float(along[1]), float(along[0]))), length))
    if not angles:
        return 0.0
    angles.sort()
    half, acc = sum(w for _, w in angles) / 2, 0.0
    for angle, weight in angles:
        acc += weight
        if acc >= half:
            return angle
    return angles[-1][0]  # pragma: no cover


def _levelled(img: np.ndarray, lean: float) -> tuple[np.ndarray, np.ndarray]:
    """`img` turned by `lean` degrees so text leaning that much lies level (on a canvas
    large enough to keep every corner), and the affine map back to `img`'s pixels."""
    h, w = img.shape[:2]
    matrix = cv2.getRotationMatrix2D((w / 2, h / 2), lean, 1.0)
    cos, sin = abs(matrix[0, 0]), abs(matrix[0, 1])
    out_w, out_h = int(h * sin + w * cos + 0.5), int(h * cos + w * sin + 0.5)
    matrix[0, 2] += out_w / 2 - w / 2
    matrix[1, 2] += out_h / 2 - h / 2
    level = cv2.warpAffine(
        img, matrix, (out_w, out_h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )
    return level, cv2.invertAffineTransform(matrix)


def _proposals(gray: np.ndarray, limit: int = 4) -> list[np.ndarray]:
    """Places that look like print, as boxes along their longer side (full-image pixels),
    the most print-like first: on a ~1000 px copy, patches where most pixels are strong
    edges (text on a label), not a lone line or an outline.

    The outline of a shape on the package (a lid, a bowl, a sticker's edge) also makes a
    dense band of edge pixels, and several such bands used up every closer look while the
    label itself waited (the never-tuned generator's development seeds: most "nothing
    found" misses on 5-12 MP photos). An outline is a band of edges with flat paper
    either side; print is edges through and through: the share of a patch's pixels that
    are edges tells them apart (print about 0.45 and up, outlines 0.34-0.40)."""
    h, w = gray.shape
    q = min(1.0, _PROPOSAL_SIDE / max(h, w))
    small = cv2.resize(gray, None, fx=q, fy=q, interpolation=cv2.INTER_AREA) if q < 1 else gray
    grad = cv2.morphologyEx(small, cv2.MORPH_GRADIENT, np.ones((3, 3), np.uint8))
    edges = (grad > _EDGE_CONTRAST).astype(np.uint8)
    density = cv2.boxFilter(edges.astype(np.float32), -1, (9, 9))
    dense = cv2.dilate((density > 0.35).astype(np.uint8), np.ones((5, 5), np.uint8))
    n, labels, stats, _ = cv2.connectedComponentsWithStats(dense, connectivity=8)
    edge_count = np.bincount(labels.ravel(), weights=edges.ravel(), minlength=n)
    found = []
    for k in range(1, n):
        x, y, bw, bh, area = (int(v) for v in stats[k])
        share = float(edge_count[k]) / area
        if area >= 150 and bw * bh <= 0.25 * small.size and share >= _PRINT_EDGE_SHARE:
            found.append((share, k, x, y, bw, bh))
    found.sort(reverse=True)
    out = []
    for _, k, x, y, bw, bh in found[:limit]:
        ys, xs = np.nonzero(labels[y : y + bh, x : x + bw] == k)
        rect = cv2.minAreaRect(np.c_[xs + x, ys + y].astype(np.float32))
        out.append(_along(cv2.boxPoints(rect) / q))
    return out


def _centre_in(quad: np.ndarray, rect: tuple[int, int, int, int]) -> bool:
    x, y = (float(v) for v in quad.mean(axis=0))
    return rect[0] <= x < rect[2] and rect[1] <= y < rect[3]


def _digit_rich(text: str) -> bool:
    return sum(ch.isdigit() for ch in unicodedata.normalize("NFKC", text)) >= 8 or bool(_PREFIX.search(text))
