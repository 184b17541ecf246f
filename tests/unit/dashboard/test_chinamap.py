"""The vendored China map decodes to plain GeoJSON whose provinces are the ones scans name."""

from __future__ import annotations

import csv
from pathlib import Path

from dashboard.chinamap import china_geojson, decode, full_province_name

PLACES = Path(__file__).resolve().parents[3] / "anomaly" / "data" / "places.csv"


def _points(geometry: dict) -> list[list[float]]:
    polygons = geometry["coordinates"] if geometry["type"] == "MultiPolygon" else [geometry["coordinates"]]
    return [point for polygon in polygons for ring in polygon for point in ring]


def test_every_province_scans_can_name_is_on_the_map_and_no_other() -> None:
    with PLACES.open(encoding="utf-8") as f:
        provinces = {row["province"] for row in csv.DictReader(f)}
    on_map = {feature["properties"]["full_name"] for feature in china_geojson()["features"]}
    assert on_map == provinces


def test_decoded_coordinates_are_longitude_latitude_where_the_province_is() -> None:
    zhejiang = next(f for f in china_geojson()["features"] if f["properties"]["name"] == "浙江")
    points = _points(zhejiang["geometry"])
    lngs, lats = [p[0] for p in points], [p[1] for p in points]
    # Zhejiang lies between about 118°E-123°E and 27°N-31.2°N.
    assert 117.5 < min(lngs) < 118.5 and 122 < max(lngs) < 123.5
    assert 26.5 < min(lats) < 27.5 and 30.8 < max(lats) < 31.6


def test_decoding_follows_echarts_zigzag_deltas() -> None:
    # "@@" is (0, 0): the offset itself; "BA" is (+1, -1) after zigzag (2 -> 1, 1 -> -1).
    data = {
        "UTF8Encoding": True,
        "features": [
            {"geometry": {"type": "Polygon", "coordinates": ["@@BA"], "encodeOffsets": [[1024, 2048]]}}
        ],
    }
    ring = decode(data)["features"][0]["geometry"]["coordinates"][0]
    assert ring == [[1.0, 2.0], [1025 / 1024, 2047 / 1024]]
    assert data["UTF8Encoding"] is True  # the input is left as it was


def test_full_names() -> None:
    assert full_province_name("浙江") == "浙江省"
    assert full_province_name("新疆") == "新疆维吾尔自治区"
    assert full_province_name("上海") == "上海市"
