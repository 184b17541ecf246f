"""The evidence pack as a PDF (domain.evidence.EvidenceRenderer) with fpdf2 (pinned): the
flag, the code's record, a map of the scans over China's provinces, the scan table and
the shoppers' reports with their photos; bilingual headings, Chinese text in WenQuanYi
Micro Hei (Debian's fonts-wqy-microhei, scripts/apt-packages.txt; it has Latin glyphs
too). The map's outline is the China GeoJSON the dashboard vendors
(dashboard/static/vendor/china-map, read through dashboard.chinamap); scans without
coordinates are drawn at their city (anomaly.geo's county seats)."""

from __future__ import annotations

import functools
import io
import itertools
import logging
import math
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fpdf import FPDF
from fpdf.drawing_primitives import Transform
from fpdf.enums import XPos, YPos
from fpdf.fonts import TTFFont
from PIL import Image

from domain.china_time import china_minute, parse_instant
from domain.evidence import EvidencePack, EvidenceScan

FONT = Path("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc")
log = logging.getLogger(__name__)


def _common_characters() -> set[int]:
    """GB 2312 (every simplified character of names and places in common use, with its
    punctuation, Greek and Cyrillic), Latin-1 and the punctuation blocks."""
    chars = set(range(0x20, 0x7F)) | set(range(0xA0, 0x100))
    chars |= set(range(0x2000, 0x2070)) | set(range(0x3000, 0x3040)) | set(range(0xFF00, 0xFFF0))
    for cp in range(0x80, 0x10000):
        try:
            chr(cp).encode("gb2312")
        except UnicodeEncodeError:
            continue
        chars.add(cp)
    return chars


def _private_dir() -> Path | None:
    """A directory of this user's only (0700, theirs), where worker processes share the cut."""
    folder = Path(tempfile.gettempdir()) / f"organic-verify-fonts-{os.getuid()}"
    try:
        folder.mkdir(mode=0o700, exist_ok=True)
        st = folder.stat()
    except OSError:
        return None
    return folder if st.st_uid == os.getuid() and not st.st_mode & 0o077 else None


@functools.cache
def _common_cut(font: Path) -> Path | None:
    """`font` cut to `_common_characters`: fpdf2 parses the font a pack names on every pack,
    and WenQuanYi's 30 k glyphs took 260 ms of a pack's CPU, its 7.5 k common ones (13 k
    glyphs with the pieces they are built of) 60-100.
    Cutting takes ~3.5 s of CPU, so the cut is kept on disk, in a directory private to this
    user, for every worker and restart (named by the font's size and time: a new font is cut
    again). None when the cut cannot be made: the whole font serves.

    fpdf2's cost is per glyph the font holds, so the cut holds as few as it can, and only
    what fpdf2 reads (together ~70 ms of a pack's 150):
    - its glyph names (post format 2): without them fontTools makes up all of them from the
      character map on every pack (the glyph order, which fpdf2 asks for);
    - no layout or vertical-metrics tables (GSUB, GPOS, GDEF, vhea, vmtx: fpdf2 writes
      horizontal text unshaped), which were subset on every pack only to be dropped (GPOS)
      or embedded unused (vmtx);
    - composite glyphs drawn out whole, so the 5.6 k pieces 6 k characters were built of
      are gone (13.4 k glyphs -> 7.7 k; the outlines are the same, a pack's PDF as large).
    """
    from fontTools import subset, ttLib
    from fontTools.pens.recordingPen import DecomposingRecordingPen
    from fontTools.pens.ttGlyphPen import TTGlyphPen

    try:
        st = font.stat()
        folder = _private_dir()
        kept = folder / f"{font.stem}-{st.st_size}-{st.st_mtime_ns}-v3.ttf" if folder else None
        if kept is not None and kept.exists():
            return kept
        whole = ttLib.TTFont(font, fontNumber=0, lazy=False)
        options = subset.Options()
        options.notdef_outline = True
        options.name_IDs = ["*"]
        options.glyph_names = True
        options.layout_features = []
        options.drop_tables += ["GSUB", "GPOS", "GDEF", "vhea", "vmtx"]
        cutter = subset.Subsetter(options)
        cutter.populate(unicodes=_common_characters())
        cutter.subset(whole)
        glyphs, drawn = whole["glyf"], whole.getGlyphSet()
        for glyph_name in whole.getGlyphOrder():
            if glyphs[glyph_name].isComposite():
                recording = DecomposingRecordingPen(drawn)
                drawn[glyph_name].draw(recording)
                pen = TTGlyphPen(None)
                recording.replay(pen)
                glyphs[glyph_name] = pen.glyph()
        again = subset.Subsetter(options)  # the pieces no glyph refers to now
        again.populate(unicodes=_common_characters())
        again.subset(whole)
        fd, name = tempfile.mkstemp(prefix="evidence-font-", suffix=".ttf", dir=folder)
        with os.fdopen(fd, "wb") as fh:
            whole.save(fh)
        if kept is None:
            return Path(name)
        os.replace(name, kept)  # whole or not at all, should two workers cut at once
        return kept
    except Exception:  # the whole font still serves
        log.warning("evidence_font_cut_failed", exc_info=True)
        return None


# The mainland and Hainan; the South China Sea islands fall outside the frame.
LNG0, LNG1, LAT0, LAT1 = 73.0, 135.5, 17.5, 54.0
SCAN_ROWS = 400  # rows of the scan table in the PDF (the total is stated)

RULES_ZH = {
    "distinct_scanners": "多人扫描同一码",
    "impossible_travel": "不可能的移动",
    "province_spread": "跨省扩散",
    "velocity": "扫描过快",
    "shopper_report": "消费者举报",
    "over_quantity": "超出认证数量",
    "off_market": "销售区域外",
    "not_in_use": "未领用即被扫描",
    "identity_mismatch": "身份码与有机码不符",
}
RECORD_LABELS = {
    "code": "编码 Code",
    "record": "记录 Record",
    "certificate": "证书 Certificate",
    "certificate_status": "证书状态 Status",
    "valid": "有效期 Valid",
    "holder": "获证组织 Holder",
    "producer": "生产者 Producer",
    "body": "认证机构 Body",
    "product": "产品 Product",
    "package": "包装 Package",
    "label_spec": "标签规格 Label",
    "order": "订单 Order",
    "order_status": "订单状态 Order status",
    "issued_on": "发放日期 Issued",
    "identity_code": "标识码 Identity code",
    "batch": "批次 Batch",
    "role": "码类型 Role",
    "activated_at": "激活 Activated",
}


class EvidencePdf:
    def __init__(
        self,
        provinces: Callable[[], dict[str, Any]],
        city_point: Callable[[str, str], tuple[float, float] | None],
        font: Path = FONT,
    ) -> None:
        """`provinces`: China's provinces as GeoJSON (lon, lat); `city_point`: (province,
        city) -> (lng, lat) for scans without coordinates."""
        self.provinces = provinces
        self.city_point = city_point
        self.font = font
        self._outlines: dict[tuple[float, float, float, float], bytes] = {}

    # -- pieces -----------------------------------------------------------------------------

    def _pdf(self, pack: EvidencePack, font: Path) -> FPDF:
        pdf = FPDF(orientation="P", unit="mm", format="A4")
        pdf.set_title(f"Evidence pack, flag {pack.flag['id']}")
        pdf.set_creator("organic-verify")
        pdf.add_font("cjk", "", str(font), collection_font_number=0)
        embedded = pdf.fonts["cjk"]
        if isinstance(embedded, TTFFont):
            # The glyphs a pack uses are copied as they are into the PDF's subset: fontTools
            # would otherwise unpack and re-encode each to recompute bounding boxes the font
            # already states (its own subsetter does not either: recalc_bounds is off).
            embedded.ttfont.recalcBBoxes = False
        pdf.set_auto_page_break(auto=True, margin=15)
        pdf.set_margins(15, 15, 15)
        code = pack.flag["code"]

        def footer() -> None:
            pdf.set_y(-10)
            pdf.set_font("cjk", size=7)
            pdf.set_text_color(110)
            pdf.cell(0, 4, f"{code} · flag {pack.flag['id']} · {pdf.page_no()}/{{nb}}", align="C")

        pdf.footer = footer  # type: ignore[method-assign]
        pdf.add_page()
        return pdf

    @staticmethod
    def _heading(pdf: FPDF, text: str) -> None:
        pdf.ln(3)
        pdf.set_font("cjk", size=12)
        pdf.set_text_color(20, 60, 40)
        pdf.cell(0, 7, text, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        pdf.set_draw_color(20, 60, 40)
        pdf.line(pdf.l_margin, pdf.get_y(), pdf.w - pdf.r_margin, pdf.get_y())
        pdf.ln(2)
        pdf.set_text_color(0)

    @staticmethod
    def _pairs(pdf: FPDF, pairs: list[tuple[str, str]]) -> None:
        pdf.set_font("cjk", size=9)
        width = pdf.w - pdf.l_margin - pdf.r_margin
        for label, value in pairs:
            pdf.set_text_color(90)
            pdf.cell(45, 5.5, label)
            pdf.set_text_color(0)
            pdf.multi_cell(width - 45, 5.5, value or "—", new_x=XPos.LMARGIN, new_y=YPos.NEXT)

    def _where(self, scan: EvidenceScan) -> tuple[float, float] | None:
        if scan.lat is not None and scan.lng is not None:
            return scan.lng, scan.lat
        if scan.province and scan.city:
            return self.city_point(scan.province, scan.city)
        return None

    def _outline(self, pdf: FPDF, width: float, sx: float, sy: float) -> bytes:
        """The provinces' outline as PDF path operators, drawn by fpdf2 (polygon) on a page
        of `pdf`'s size with the map's corner at the page's, `sx`, `sy` mm per degree; kept
        for every pack of this size (the provinces are read once)."""
        key = (pdf.w, pdf.h, pdf.k, width)
        kept = self._outlines.get(key)
        if kept is not None:
            return kept
        page = FPDF(orientation="P", unit="mm", format=(pdf.w, pdf.h))
        page.add_page()
        contents = page.pages[page.page].contents
        if not isinstance(contents, bytearray):  # fpdf2 writes a page's operators here
            raise TypeError(f"fpdf2 page contents are {type(contents).__name__}, not bytes")
        start = len(contents)
        for feature in self.provinces().get("features", []):
            geometry = feature["geometry"]
            polygons = geometry["coordinates"]
            if geometry["type"] == "Polygon":
                polygons = [polygons]
            for polygon in polygons:
                for ring in polygon:
                    points = [((lng - LNG0) * sx, (LAT1 - lat) * sy) for lng, lat in ring]
                    if len(points) > 2:
                        page.polygon(points, style="D")
        kept = bytes(contents[start:])
        self._outlines[key] = kept
        return kept

    def _map(self, pdf: FPDF, scans: list[EvidenceScan]) -> None:
        width = pdf.w - pdf.l_margin - pdf.r_margin
        # Equirectangular, x scaled by the cosine of the middle latitude (China looks right).
        kx = math.cos(math.radians((LAT0 + LAT1) / 2))
        scale = width / ((LNG1 - LNG0) * kx)
        height = (LAT1 - LAT0) * scale
        if pdf.get_y() + height > pdf.h - pdf.b_margin:
            pdf.add_page()
        x0, y0 = pdf.l_margin, pdf.get_y()

        def at(lng: float, lat: float) -> tuple[float, float]:
            return x0 + (lng - LNG0) * kx * scale, y0 + (LAT1 - lat) * scale

        pdf.set_draw_color(200)
        pdf.set_fill_color(248, 250, 247)
        pdf.rect(x0, y0, width, height, style="DF")
        pdf.set_draw_color(150, 165, 155)
        pdf.set_line_width(0.15)
        with pdf.rect_clip(x0, y0, width, height):
            # The outline is the same on every pack but where the map starts: drawn once, at
            # the page's corner, and placed by a translation (16 k points cost ~30 ms a pack).
            # fpdf2 has no public call to add operators it wrote before; `_out` is the one its
            # own drawing calls write through (tests/unit/test_evidence_pdf_map.py checks the
            # outline lands in each pack's frame).
            with pdf.transform(Transform.translation(x0, y0)):
                pdf._out(self._outline(pdf, width, kx * scale, scale))
            placed = [p for p in (self._where(s) for s in scans) if p is not None]
            # The code's path in time order, then the scans over it (the first one larger).
            pdf.set_draw_color(190, 60, 50)
            pdf.set_line_width(0.3)
            for (a_lng, a_lat), (b_lng, b_lat) in itertools.pairwise(placed):
                if (a_lng, a_lat) != (b_lng, b_lat):
                    pdf.line(*at(a_lng, a_lat), *at(b_lng, b_lat))
            pdf.set_fill_color(200, 40, 30)
            for i, (lng, lat) in enumerate(placed):
                x, y = at(lng, lat)
                r = 1.6 if i == 0 else 1.0
                pdf.ellipse(x - r, y - r, 2 * r, 2 * r, style="F")
        pdf.set_y(y0 + height + 1)
        pdf.set_font("cjk", size=7.5)
        pdf.set_text_color(90)
        pdf.multi_cell(
            width,
            4,
            f"红点：扫描地点（{len(placed)}/{len(scans)} 次扫描有地点；首次扫描为大点），"
            "红线：按时间顺序的移动。"
            "Red dots: scan places (the first one larger); red lines: the code's path in time order. "
            "Map: China GeoJSON vendored by the dashboard (Apache-2.0).",
            new_x=XPos.LMARGIN,
            new_y=YPos.NEXT,
        )
        pdf.set_text_color(0)

    def _scans(self, pdf: FPDF, pack: EvidencePack) -> None:
        widths = (8, 32, 24, 34, 20, 30, 32)
        heads = (
            "#",
            "时间 Time (UTC+8)",
            "城市 City",
            "省 Province",
            "渠道 Channel",
            "结果 Verdict",
            "扫描者 Scanner",
        )
        pdf.set_font("cjk", size=7.5)
        pdf.set_fill_color(230, 238, 232)

        def head() -> None:
            for w, h in zip(widths, heads, strict=True):
                pdf.cell(w, 5.5, h, border=1, fill=True)
            pdf.ln()

        head()
        shown = pack.scans[:SCAN_ROWS]
        for i, scan in enumerate(shown, 1):
            if pdf.get_y() + 5 > pdf.h - pdf.b_margin:
                pdf.add_page()
                head()
            values = (
                str(i),
                china_minute(scan.at) or "",
                scan.city or "—",
                scan.province or "—",
                scan.channel,
                scan.verdict,
                scan.scanner or "—",
            )
            for w, v in zip(widths, values, strict=True):
                pdf.cell(w, 5, v[:24], border=1)
            pdf.ln()
        pdf.set_font("cjk", size=8)
        note = f"共 {pack.scans_total} 次扫描 / {pack.scans_total} scans in all"
        if pack.scans_total > len(shown):
            note += (
                f"；表中为其中最早的 {len(shown)} 次 / the first {len(shown)} of the newest {len(pack.scans)}"
            )
        pdf.cell(0, 6, note, new_x=XPos.LMARGIN, new_y=YPos.NEXT)

    def _reports(self, pdf: FPDF, pack: EvidencePack) -> None:
        width = pdf.w - pdf.l_margin - pdf.r_margin
        if not pack.reports:
            pdf.set_font("cjk", size=9)
            pdf.cell(0, 6, "无 / none", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
            return
        for report in pack.reports:
            pdf.set_font("cjk", size=9)
            where = " ".join(p for p in (report.province, report.city) if p) or "—"
            line = f"{china_minute(report.created_at)} · {where} · 店铺 Shop: {report.shop or '—'}"
            pdf.multi_cell(width, 5, line, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
            if report.text:
                pdf.set_text_color(60)
                pdf.multi_cell(width, 5, report.text, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
                pdf.set_text_color(0)
            if report.photo:
                try:
                    image = Image.open(io.BytesIO(report.photo))
                    image.load()
                except Exception:  # a photo that does not decode is named, not drawn
                    pdf.cell(
                        0,
                        5,
                        "（照片无法显示 / the photo cannot be shown）",
                        new_x=XPos.LMARGIN,
                        new_y=YPos.NEXT,
                    )
                    continue
                rgb = image.convert("RGB")
                rgb.thumbnail((1200, 1200))
                w = min(80.0, width)
                h = w * rgb.height / rgb.width
                if pdf.get_y() + h > pdf.h - pdf.b_margin:
                    pdf.add_page()
                pdf.image(rgb, x=pdf.l_margin, y=pdf.get_y(), w=w, h=h)
                pdf.set_y(pdf.get_y() + h + 2)
            pdf.ln(2)

    # -- the document -----------------------------------------------------------------------

    def render(self, pack: EvidencePack) -> bytes:
        """The pack drawn with the font cut to common characters, or again with the whole
        font when the text needs a character the cut lacks (a rare name's)."""
        cut = _common_cut(self.font)
        if cut is not None and cut.exists():
            pdf = self._draw(pack, cut)
            font = pdf.fonts["cjk"]
            if isinstance(font, TTFFont) and not font.missing_glyphs:
                return bytes(pdf.output())
            if isinstance(font, TTFFont):
                font.ttfont.close()  # the draft is dropped: its font file too, now
        return bytes(self._draw(pack, self.font).output())

    def _draw(self, pack: EvidencePack, font: Path) -> FPDF:
        pdf = self._pdf(pack, font)
        flag = pack.flag
        pdf.set_font("cjk", size=16)
        pdf.cell(0, 9, "证据包 Evidence pack", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        pdf.set_font("cjk", size=9)
        pdf.set_text_color(90)
        pdf.cell(
            0,
            5,
            f"生成时间 Generated {china_minute(pack.generated_at)} (UTC+8) · 标志 Flag #{flag['id']}",
            new_x=XPos.LMARGIN,
            new_y=YPos.NEXT,
        )
        pdf.set_text_color(0)

        self._heading(pdf, "1 标志 The flag")
        rule = str(flag["rule"])
        self._pairs(
            pdf,
            [
                ("编码 Code", str(flag["code"])),
                ("规则 Rule", f"{RULES_ZH.get(rule, rule)} ({rule})"),
                ("级别 Severity", str(flag["severity"])),
                ("状态 Status", str(flag["status"])),
                ("提出 Raised", f"{china_minute(parse_instant(flag['raised_at']))} (UTC+8)"),
                ("更新 Updated", f"{china_minute(parse_instant(flag['updated_at']))} (UTC+8)"),
                ("备注 Note", flag.get("note") or ""),
            ],
        )

        self._heading(pdf, "2 编码记录 The code's record")
        self._pairs(
            pdf, [(RECORD_LABELS.get(k, k), "" if v is None else str(v)) for k, v in pack.record.items()]
        )

        self._heading(pdf, "3 扫描地图 Where the code was scanned")
        self._map(pdf, pack.scans)

        self._heading(pdf, "4 扫描记录 Scans")
        self._scans(pdf, pack)

        self._heading(pdf, "5 消费者举报 Shoppers' reports")
        self._reports(pdf, pack)

        pdf.set_font("cjk", size=7.5)
        pdf.set_text_color(110)
        pdf.ln(3)
        pdf.multi_cell(
            0,
            4,
            "扫描者以密钥哈希前缀表示，不含个人信息；坐标取至 0.01°。"
            "Scanners appear as prefixes of keyed hashes, never their ids; coordinates rounded to 0.01°.",
            new_x=XPos.LMARGIN,
            new_y=YPos.NEXT,
        )
        return pdf
