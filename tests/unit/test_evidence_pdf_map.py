"""The evidence pack's map: the provinces' outline is drawn once per renderer and placed
where each pack's map is, so it sits inside that pack's map frame at the same place as the
scans it is drawn under, wherever the pack's record pushed the map."""

from __future__ import annotations

import io
from datetime import UTC, datetime

from pypdf import PdfReader
from pypdf.generic import ContentStream

from domain.evidence import EvidencePack, EvidenceScan
from webapp.evidence_pdf import LAT1, LNG0, EvidencePdf

AT = datetime(2026, 12, 1, 2, 30, tzinfo=UTC)
# One province, a square from 100°E 30°N to 110°E 40°N.
SQUARE = [[100.0, 30.0], [110.0, 30.0], [110.0, 40.0], [100.0, 40.0], [100.0, 30.0]]
PROVINCES = {"features": [{"geometry": {"type": "Polygon", "coordinates": [SQUARE]}}]}


def _pack(record_lines: int) -> EvidencePack:
    flag = {
        "id": 7,
        "code": "100126000010000001",
        "rule": "velocity",
        "severity": "warn",
        "status": "open",
        "raised_at": "2026-12-01T02:30:00Z",
        "updated_at": "2026-12-01T02:30:00Z",
        "note": None,
    }
    # A scan at a corner of the square: its dot is drawn in page space, not through the cache.
    scan = EvidenceScan(AT, "qr", "genuine", "某市", "某省", 40.0, 100.0, "ab12cd34")
    record = {f"line {i}": "有机大米" for i in range(record_lines)}
    return EvidencePack(flag, record, [scan], 1, generated_at=AT)


def _map_on_page(pdf: bytes) -> tuple[tuple[float, float, float, float], list[tuple[float, float]], float]:
    """(the map frame's x, y, width, height; the outline's points; the first dot's centre x)
    in PDF points on the page, the current transformation applied."""
    reader = PdfReader(io.BytesIO(pdf))
    for page in reader.pages:
        ops = ContentStream(page.get_contents(), reader).operations
        frame = None
        points: list[tuple[float, float]] = []
        dot_x = None
        stack: list[tuple[float, float]] = []
        shift = (0.0, 0.0)
        path: list[tuple[float, float]] = []
        curve: list[float] = []
        for operands, op in ops:
            if op == b"q":
                stack.append(shift)
            elif op == b"Q":
                shift = stack.pop()
            elif op == b"cm":
                a, b, c, d, e, f = (float(v) for v in operands)
                assert (a, b, c, d) == (1, 0, 0, 1)  # translations only
                shift = (shift[0] + e, shift[1] + f)
            elif op == b"re" and frame is None and float(operands[2]) > 400:
                frame = tuple(float(v) for v in operands)
            elif op in (b"m", b"l"):
                path.append((float(operands[0]) + shift[0], float(operands[1]) + shift[1]))
            elif op == b"c":
                curve.append(float(operands[4]) + shift[0])
            elif op in (b"S", b"s", b"f", b"B", b"n"):
                if frame is not None and op in (b"S", b"s") and len(path) == len(SQUARE):
                    points = path
                if frame is not None and op == b"f" and curve and dot_x is None:
                    dot_x = (min(curve) + max(curve)) / 2  # the first dot's centre
                path, curve = [], []
        if frame is not None:
            assert dot_x is not None
            return frame, points, dot_x  # type: ignore[return-value]
    raise AssertionError("no map frame")


def test_the_outline_is_drawn_inside_each_packs_map_frame() -> None:
    renderer = EvidencePdf(lambda: PROVINCES, lambda _p, _c: None)
    frames = []
    for lines in (1, 12):  # the second pack's map starts lower; its outline comes from the cache
        (x, y, w, h), points, dot_x = _map_on_page(renderer.render(_pack(lines)))
        frames.append(y)
        top, h = y, abs(h)  # fpdf2 writes a rectangle from its top edge, height negative
        per_degree = w / (135.5 - LNG0)  # x points per degree of longitude at this scale
        scale_y = h / (LAT1 - 17.5)
        expected = [(x + (lng - LNG0) * per_degree, top - (LAT1 - lat) * scale_y) for lng, lat in SQUARE]
        assert len(points) == len(expected)
        for (px, py), (ex, ey) in zip(points, expected, strict=True):
            assert abs(px - ex) < 0.05 and abs(py - ey) < 0.05, (px, py, ex, ey)
        # The scan at the square's corner (100°E) is drawn on the outline's corner.
        assert abs(dot_x - expected[0][0]) < 0.05
    assert frames[0] != frames[1]
