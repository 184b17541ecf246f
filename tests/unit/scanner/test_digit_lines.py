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


def _printed(text: str, px: int = 24, edge: int | None = None) -> tuple[np.ndarray, float, float]:
    """`text` printed on light paper (a dark edge `edge` px after its end, if given), and
    where the print starts and ends along x; the text's rows are 100 to 100 + px."""
    from PIL import ImageDraw, ImageFont

    from tests.images import FONT

    assert FONT is not None
    font = ImageFont.truetype(FONT, round(px / 0.73))
    img = Image.new("L", (1200, 260), 235)
    draw = ImageDraw.Draw(img)
    draw.text((200, 100 + px), text, font=font, fill=30, anchor="ls")
    left, _, right, _ = draw.textbbox((200, 100 + px), text, font=font, anchor="ls")
    if edge is not None:
        draw.rectangle((right + edge, 0, 1199, 259), fill=60)
    return np.asarray(img), float(left), float(right)


@pytest.mark.parametrize("edge", [None, 30])
def test_a_line_boxed_short_is_followed_to_where_its_print_ends(edge: int | None) -> None:
    from scanner.digits import _extended_to_ink

    gray, left, right = _printed("8011-24-818841068204", edge=edge)
    short = _box(left - 3, right - 3 * 24, 97, 127)  # the detector's box, three digits short
    found = _extended_to_ink(gray, short)
    assert found is not None
    longer, start_found, end_found = found
    assert start_found and end_found
    assert abs(longer[:, 0].max() - right) < 12 and abs(longer[:, 0].min() - (left - 3)) < 12


def test_print_running_into_an_edge_or_off_the_photo_has_no_end_found() -> None:
    from scanner.digits import _extended_to_ink

    gray, left, right = _printed("8011-24-818841068204", edge=2)
    found = _extended_to_ink(gray, _box(left - 3, right - 3 * 24, 97, 127))
    assert found is not None and not found[2]
    gray, left, right = _printed("8011-24-818841068204")
    cut = np.ascontiguousarray(gray[:, : int(right) - 20])  # the photo ends inside the print
    found = _extended_to_ink(cut, _box(left - 3, right - 3 * 24, 97, 127))
    assert found is not None and not found[2]


def test_a_box_that_covers_its_print_is_not_lengthened() -> None:
    from scanner.digits import _extended_to_ink

    gray, left, right = _printed("8011-24-818841068204")
    assert _extended_to_ink(gray, _box(left - 4, right + 4, 97, 127)) is None
