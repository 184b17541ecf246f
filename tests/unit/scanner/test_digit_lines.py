"""The digit reader's decisions without the OCR engine: how looks vote, how detected
boxes become lines, and when a line cannot be trusted (from a review that made the old
rules return a code cut short)."""

from __future__ import annotations

import time

import numpy as np
import pytest
from PIL import Image

from scanner import Scanner
from scanner.digits import DigitReader, DigitReading, Plausibility, Uncertain, _code_lines, _line_groups
from tests.images import encode

CODE = "012325123456789012"


def _box(x0: float, x1: float, y0: float, y1: float) -> np.ndarray:
    return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], np.float32)


def _decide(looks: list[str]) -> DigitReading | Uncertain | None:
    reader = DigitReader(Plausibility(frozenset({"0123", "081"})))
    return reader._decide(looks, [0.9] * len(looks), _box(0, 100, 0, 10), (0, 0))


def test_a_look_that_reads_the_code_twice_is_one_vote() -> None:
    assert isinstance(_decide([f"{CODE};{CODE}", "", "", ""]), Uncertain)
    assert isinstance(_decide([CODE, CODE, "", ""]), DigitReading)


@pytest.mark.parametrize("other", [CODE[:-1], CODE[:-2], CODE + "4", CODE[:-1] + "9"])
def test_any_other_code_length_reading_is_dissent(other: str) -> None:
    assert isinstance(_decide([CODE, CODE, CODE, other]), Uncertain)


def test_boxes_of_one_line_join_whichever_box_is_seen_first() -> None:
    # Heights 10, 15 and 9.5: the prefix and the last digit each continue the digits,
    # but not the other way round. One line, covering all three, never a shorter one.
    quads = [_box(0, 40, 2.5, 12.5), _box(45, 200, 0, 15), _box(203, 215, 3, 12.5)]
    texts = {0: ("有机码:", 0.9), 1: ("08122412345678901", 0.9), 2: ("2", 0.9)}
    for order in ([0, 1, 2], [2, 1, 0], [1, 0, 2]):
        lines = _code_lines(
            {order.index(i): texts[i] for i in texts}, [quads[i] for i in order], time.perf_counter() + 5
        )
        assert len(lines) == 1
        box, look, doubt = lines[0]
        assert look is None and doubt is None
        assert box[:, 0].min() <= 0.5 and box[:, 0].max() >= 214.5


def test_a_line_with_an_unjoined_box_at_its_end_is_doubted() -> None:
    # The last digits detected as a box too small to continue the line (5 vs 15 high).
    quads = [_box(0, 200, 0, 15), _box(204, 212, 5, 10)]
    lines = _code_lines({0: ("08122412345678901", 0.9)}, quads, time.perf_counter() + 5)
    assert [doubt for _, _, doubt in lines] == ["neighbour"]


def test_grouping_gives_up_at_the_deadline() -> None:
    # Dense numeric print (a receipt, a table) is many boxes: grouping them must stop when
    # the scan's time is up rather than run past it.
    rng = np.random.default_rng(1)
    quads = [_box(x, x + 60, y, y + 12) for x, y in rng.uniform(0, 2000, size=(400, 2))]
    texts = {i: ("1234567890123456", 0.9) for i in range(len(quads))}
    assert _code_lines(texts, quads, time.perf_counter() - 1) == []
    assert _code_lines(texts, quads, time.perf_counter() + 60) != []


def test_a_sliver_of_an_image_is_no_crash() -> None:
    result = Scanner(ocr="always").scan(encode(Image.new("L", (1700, 1), 255), "PNG"))
    assert [f for f in result.found if f.symbology == "digits"] == []


def test_boxes_that_share_the_digit_where_the_detector_split_the_line_join() -> None:
    # "有机码：015723  643682  816405" detected as "…643682 8" and "816405": the 8 is in
    # both boxes. Joined, the line is cut again whole and read once.
    quads = [_box(0, 300, 0, 20), _box(285, 380, 2, 18)]
    texts = {0: ("有机码：015723 643682 8", 0.9), 1: ("816405", 0.9)}
    lines = _code_lines(texts, quads, time.perf_counter() + 5)
    assert len(lines) == 1
    box, look, doubt = lines[0]
    assert look is None and doubt is None
    assert box[:, 0].min() <= 0.5 and box[:, 0].max() >= 379.5
    # A box reaching back further than a digit is not the same line's continuation.
    _, groups = _line_groups([_box(0, 300, 0, 20), _box(250, 380, 2, 18)], time.perf_counter() + 5)
    assert groups is not None and sorted(map(sorted, groups)) == [[0], [1]]
    _, groups = _line_groups(quads, time.perf_counter() + 5)
    assert groups is not None and sorted(map(sorted, groups)) == [[0, 1]]
