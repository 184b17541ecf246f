"""The third recognizer (ddddocr's model, digits only) settles a dispute Tesseract leaves
open, under the same gate, and never against Tesseract (issue 18: an independent
recognizer that does not share the main model's errors)."""

from __future__ import annotations

import numpy as np

from scanner import Scanner, third
from scanner.digits import DigitReader, DigitReading, Plausibility, Uncertain
from scanner.second import SecondReader
from tests.unit.scanner.test_second_reader import BODIES, CODE, _box, _crowded, _line

OTHER = CODE[:-3] + "5" + CODE[-2:]  # a rival disputing the third digit from the end


class _Reads(SecondReader):
    """A recognizer that read `text` (what Tesseract returned on a line where it fails is
    the point of these tests; the real one cannot be made to fail on demand)."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text

    def read(self, lines: list[np.ndarray]) -> str | None:
        return self.text


def _decide(looks: list[str], line: np.ndarray, tesseract: str) -> DigitReading | Uncertain | None:
    reader = DigitReader(Plausibility(BODIES), _Reads(tesseract))
    return reader._decide(looks, [0.9] * len(looks), _box(), (0, 0), [line])


def test_the_third_reader_reads_a_printed_code() -> None:
    reader = third.ThirdReader()
    assert reader.read([_line(f"{CODE[:4]} {CODE[4:6]} {CODE[6:]}")]) == CODE
    assert reader.read([_line(CODE[:8]), _line(CODE[8:])]) == CODE
    assert reader.read([255 - _line(CODE)]) == CODE  # light print on a dark ground


def test_the_lines_above_and_below_are_cut_away() -> None:
    line = _crowded()
    cut = third.prepared(line)
    assert cut.shape[0] < 0.7 * line.shape[0]
    assert third.ThirdReader().read([line]) == CODE


def test_a_dispute_tesseract_reads_nothing_of_is_settled_by_the_third_reader() -> None:
    looks = [CODE, CODE, CODE, OTHER, ""]
    reading = _decide(looks, _line(CODE), tesseract="")
    assert isinstance(reading, DigitReading) and reading.code == CODE
    # The print says otherwise: the third reader reads the rival, nothing is settled.
    assert isinstance(_decide(looks, _line(OTHER), tesseract=""), Uncertain)


def test_the_third_reader_never_overrules_tesseract_reading_the_rival() -> None:
    looks = [CODE, CODE, CODE, OTHER, ""]
    assert isinstance(_decide(looks, _line(CODE), tesseract=OTHER), Uncertain)
    # Tesseract reading too little to say either way leaves the question to the third.
    assert isinstance(_decide(looks, _line(CODE), tesseract=CODE[:6]), DigitReading)


def test_the_third_reader_answers_only_where_the_gate_lets_tesseract_answer() -> None:
    # Two looks of five, or a rival as long as the code: never settled, whoever agrees.
    assert isinstance(_decide([CODE, CODE, OTHER, "", ""], _line(CODE), tesseract=""), Uncertain)
    assert isinstance(_decide([CODE, CODE, CODE, "1" + CODE], _line(CODE), tesseract=""), Uncertain)


def test_inkjet_print_tesseract_misreads_is_read() -> None:
    # Photo 48 of the unseen generator's development seed 7: continuous-inkjet dots, 20 px.
    # Four looks read the code, one reads its last 0 as 8; Tesseract read
    # "6421946638777498" (two digits lost, the disputed one read as 8), so the code stayed
    # uncertain; ddddocr's model reads the end of the line as printed.
    from bench.labels_unseen import ALL_BODY_CODES, make_sample

    sample = make_sample(48, 7)
    assert sample.truth_digits == "64210406387877400"
    result = Scanner(known_body_codes=ALL_BODY_CODES, ocr="always", time_budget_ms=30_000).scan(sample.image)
    assert {f.payload for f in result.found if f.symbology == "digits"} == {sample.truth_digits}
