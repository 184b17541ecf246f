"""The vendored China map (dashboard/static/vendor/china-map/china.json) for Python readers.

The file is ECharts' compressed GeoJSON, which the browser's ECharts decodes itself. Python
readers (an evidence pack's map, tests) call `china_geojson()` for plain GeoJSON: the same
decoding ECharts does (zigzag-delta coordinates from `encodeOffsets`, scaled by 1024), plus
each feature's full province name as our places name it ("浙江" -> "浙江省"), since scans
carry full names (anomaly/data/places.csv).
"""

from __future__ import annotations

import copy
import functools
import json
from pathlib import Path
from typing import Any

CHINA_JSON = Path(__file__).with_name("static") / "vendor" / "china-map" / "china.json"

# The map names provinces by their short names; the places table (and every scan) by the
# full ones. Everything not listed is a 省.
_FULL_NAMES = {
    "北京": "北京市",
    "天津": "天津市",
    "上海": "上海市",
    "重庆": "重庆市",
    "内蒙古": "内蒙古自治区",
    "广西": "广西壮族自治区",
    "西藏": "西藏自治区",
    "宁夏": "宁夏回族自治区",
    "新疆": "新疆维吾尔自治区",
    "香港": "香港特别行政区",
    "澳门": "澳门特别行政区",
}


def full_province_name(short: str) -> str:
    """The full name of a province-level division from the map's short one."""
    return _FULL_NAMES.get(short, short + "省")


def _decode_ring(ring: str, offsets: list[int], scale: float) -> list[list[float]]:
    points: list[list[float]] = []
    x, y = offsets[0], offsets[1]
    for i in range(0, len(ring) - 1, 2):
        dx, dy = ord(ring[i]) - 64, ord(ring[i + 1]) - 64
        x += (dx >> 1) ^ -(dx & 1)  # zigzag: 0, -1, 1, -2, 2 ...
        y += (dy >> 1) ^ -(dy & 1)
        points.append([x / scale, y / scale])
    return points


def decode(data: dict[str, Any]) -> dict[str, Any]:
    """Plain GeoJSON from ECharts' compressed form (a plain one is returned as it is)."""
    if not data.get("UTF8Encoding"):
        return data
    out = copy.deepcopy(data)
    scale = float(out.get("UTF8Scale") or 1024)
    for feature in out["features"]:
        geometry = feature["geometry"]
        offsets = geometry.pop("encodeOffsets", None)
        if offsets is None:
            continue
        coords = geometry["coordinates"]
        kind = geometry["type"]
        if kind == "LineString":
            geometry["coordinates"] = _decode_ring(coords, offsets, scale)
        elif kind in ("Polygon", "MultiLineString"):
            rings = zip(coords, offsets, strict=True)
            geometry["coordinates"] = [_decode_ring(r, o, scale) for r, o in rings]
        elif kind == "MultiPolygon":
            geometry["coordinates"] = [
                [_decode_ring(r, o, scale) for r, o in zip(rings, ring_offsets, strict=True)]
                for rings, ring_offsets in zip(coords, offsets, strict=True)
            ]
    out["UTF8Encoding"] = False
    return out


@functools.cache
def _china() -> dict[str, Any]:
    data = decode(json.loads(CHINA_JSON.read_text(encoding="utf-8")))
    for feature in data["features"]:
        props = feature["properties"]
        props["full_name"] = full_province_name(props["name"])
    return data


def china_geojson() -> dict[str, Any]:
    """China's provinces as plain GeoJSON (lon, lat), each feature's properties with `name`
    (short, as on the map) and `full_name` (as scans name it). A copy: callers may change it."""
    return copy.deepcopy(_china())
