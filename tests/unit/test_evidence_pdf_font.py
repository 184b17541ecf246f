"""The evidence pack's font: drawn with WenQuanYi cut to common characters, and again with
the whole font when the text needs one the cut lacks, so no character is lost."""

from __future__ import annotations

import io
from datetime import UTC, datetime

import pytest
from pypdf import PdfReader

from domain.evidence import EvidencePack, EvidenceScan
from webapp import evidence_pdf
from webapp.evidence_pdf import FONT, EvidencePdf

AT = datetime(2026, 12, 1, 2, 30, tzinfo=UTC)


def _pack(holder: str) -> EvidencePack:
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
    scan = EvidenceScan(AT, "qr", "genuine", "杭州市", "浙江省", None, None, "ab12cd")
    return EvidencePack(flag, {"holder": holder, "product": "有机大米"}, [scan], 1, generated_at=AT)


def _text(pdf: bytes) -> str:
    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages)


def _drawn_with(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    fonts: list[str] = []
    draw = EvidencePdf._draw

    def spy(self: EvidencePdf, pack: EvidencePack, font: object) -> object:
        fonts.append(str(font))
        return draw(self, pack, font)  # type: ignore[arg-type]

    monkeypatch.setattr(EvidencePdf, "_draw", spy)
    return fonts


def test_a_pack_of_common_characters_is_drawn_once_with_the_cut_font(monkeypatch: pytest.MonkeyPatch) -> None:
    fonts = _drawn_with(monkeypatch)
    pdf = EvidencePdf(lambda: {"features": []}, lambda _p, _c: None).render(_pack("黑龙江五常有机农业公司"))
    assert len(fonts) == 1 and fonts[0] != str(FONT)
    assert "黑龙江五常有机农业公司" in _text(pdf)


def test_a_character_outside_the_cut_is_drawn_with_the_whole_font(monkeypatch: pytest.MonkeyPatch) -> None:
    rare = "王堃䶮"  # 堃 and 䶮 are outside GB 2312
    assert not evidence_pdf._common_characters() >= {ord(c) for c in rare}
    fonts = _drawn_with(monkeypatch)
    pdf = EvidencePdf(lambda: {"features": []}, lambda _p, _c: None).render(_pack(rare))
    assert fonts[-1] == str(FONT) and len(fonts) == 2
    assert "王堃" in _text(pdf)
