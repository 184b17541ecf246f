"""Offline places: coordinates and IPs to Chinese city and province names, from data that
ships with the code, in microseconds rather than file reads."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from anomaly.geo import IpPlaces, distance_km, ip_places, locate, locate_ip, places, shipped_xdb


@pytest.mark.parametrize(
    ("lat", "lng", "city", "province"),
    [
        (39.9042, 116.4074, "北京市", "北京市"),  # Tiananmen
        (31.2304, 121.4737, "上海市", "上海市"),  # People's Square
        (30.2741, 120.1551, "杭州市", "浙江省"),  # West Lake
        (22.5431, 114.0579, "深圳市", "广东省"),
        (30.5728, 104.0668, "成都市", "四川省"),
        (43.8256, 87.6168, "乌鲁木齐市", "新疆维吾尔自治区"),
        (29.6520, 91.1721, "拉萨市", "西藏自治区"),
        (45.8038, 126.5349, "哈尔滨市", "黑龙江省"),
        (22.8170, 108.3665, "南宁市", "广西壮族自治区"),
        (31.2989, 120.5853, "苏州市", "江苏省"),
    ],
)
def test_coordinates_resolve_to_the_city_and_province(
    lat: float, lng: float, city: str, province: str
) -> None:
    assert locate(lat, lng) == (city, province)


@pytest.mark.parametrize(
    ("lat", "lng"),
    [(35.6762, 139.6503), (37.5665, 126.9780), (1.3521, 103.8198), (48.8566, 2.3522), (30.0, 135.0)],
)
def test_places_abroad_or_at_sea_have_no_city(lat: float, lng: float) -> None:
    assert locate(lat, lng) == (None, None)  # Tokyo, Seoul, Singapore, Paris, the Pacific


@pytest.mark.parametrize(("lat", "lng"), [(None, 120.0), (30.0, None), (math.nan, 120.0), (95.0, 120.0)])
def test_missing_or_impossible_coordinates_have_no_city(lat: float | None, lng: float | None) -> None:
    assert locate(lat, lng) == (None, None)


def _seats() -> list[tuple[float, float, str, str]]:
    return [row for rows in places().grid.values() for row in rows]


@settings(max_examples=300, deadline=None)
@given(st.floats(18.0, 54.0), st.floats(73.0, 135.0))
def test_the_grid_search_finds_the_nearest_seat_like_a_full_scan(lat: float, lng: float) -> None:
    by_km = sorted((distance_km(lat, lng, r[0], r[1]), r[2], r[3]) for r in _seats())
    nearest_km = by_km[0][0]
    found = places().locate(lat, lng)
    limit = places().max_km
    if nearest_km > limit + 1:
        assert found is None
    elif nearest_km < limit - 1:
        # The flat-earth distance it ranks by is within a fraction of a km of haversine:
        # the answer is the nearest seat's place, or one of a seat equally near.
        assert found is not None
        assert any((city, province) == found for km, city, province in by_km if km - nearest_km < 0.5)


def test_after_loading_once_a_lookup_reads_no_file(monkeypatch: pytest.MonkeyPatch) -> None:
    places()
    ip_places()
    import builtins

    def no_open(*_a: object, **_k: object) -> None:
        raise AssertionError("a lookup must not open a file")

    monkeypatch.setattr(builtins, "open", no_open)
    monkeypatch.setattr("pathlib.Path.open", no_open)
    assert locate(30.27, 120.15) == ("杭州市", "浙江省")
    assert locate_ip("223.5.5.5") == ("杭州市", "浙江省")


def test_distance_is_great_circle() -> None:
    assert distance_km(39.90, 116.40, 31.23, 121.47) == pytest.approx(1067, abs=5)  # Beijing–Shanghai
    assert distance_km(30.0, 120.0, 30.0, 120.0) == 0


# -- IP ---------------------------------------------------------------------------------


def test_the_ip_database_ships_with_a_registry_package() -> None:
    path = shipped_xdb()
    assert path is not None and path.name == "ip2region.xdb" and path.stat().st_size > 1_000_000


@pytest.mark.parametrize(
    ("ip", "city", "province"),
    [
        ("223.5.5.5", "杭州市", "浙江省"),  # Alibaba public DNS
        ("114.114.114.114", "南京市", "江苏省"),
        ("202.96.209.133", "上海市", "上海市"),  # short form "上海" in the data
        ("202.106.0.20", "北京市", "北京市"),
        ("61.139.2.69", "成都市", "四川省"),
        ("113.16.0.1", "南宁市", "广西壮族自治区"),  # short form "广西"
    ],
)
def test_chinese_ips_resolve_to_the_same_names_as_coordinates(ip: str, city: str, province: str) -> None:
    assert locate_ip(ip) == (city, province)


@pytest.mark.parametrize("ip", ["8.8.8.8", "10.1.2.3", "192.168.1.1", "127.0.0.1", "2400:3200::1", "x", ""])
def test_foreign_private_ipv6_and_garbage_ips_have_no_city(ip: str) -> None:
    assert locate_ip(ip) == (None, None)


def test_a_configured_xdb_path_is_used_and_a_bad_file_refused(tmp_path: Path) -> None:
    shipped = shipped_xdb()
    assert shipped is not None
    copy = tmp_path / "ip2region.xdb"
    copy.write_bytes(shipped.read_bytes())
    table = ip_places(str(copy))
    assert table is not None and table.path == copy
    assert table.locate("223.5.5.5") == ("杭州市", "浙江省")
    bad = tmp_path / "bad.xdb"
    bad.write_bytes(b"\x00" * 1024)
    with pytest.raises(ValueError, match="not an ip2region"):
        IpPlaces(bad)


@given(
    st.one_of(
        st.ip_addresses(v=4).map(str),
        st.ip_addresses(v=6).map(str),
        st.sampled_from(["010.1.2.3", "1.2.3", "1.2.3.4 ", "1.2.3.4.5", "256.1.1.1", "", "1.2.3.04"]),
        st.text(max_size=20),
    )
)
def test_an_ipv4_address_is_read_as_the_ipaddress_module_reads_it(ip: str) -> None:
    # The fast path for dotted addresses must find the same row as the general one.
    import ipaddress

    from anomaly.geo import _ipv4_int

    try:
        addr = ipaddress.ip_address(ip)
        expected = int(addr) if addr.version == 4 else None
    except ValueError:
        expected = None
    assert _ipv4_int(ip) == expected
