"""Anomaly rules as pure functions: each fires on copies, never on one shopper's repeats."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from anomaly.geo import distance_km, locate
from anomaly.rules import (
    DAY_MS,
    HOUR_MS,
    CodeScanState,
    RecentScan,
    RuleConfig,
    distinct_scanners,
    enumeration,
    evaluate,
    impossible_travel,
    off_market,
    over_quantity,
    province_spread,
    velocity,
)
from domain.records import parse_package_kg

NOW = 1_790_000_000_000
CFG = RuleConfig()
HANGZHOU, BEIJING, GUANGZHOU, SHANGHAI = (30.27, 120.15), (39.90, 116.40), (23.13, 113.26), (31.23, 121.47)
PLACES = {
    HANGZHOU: ("杭州市", "浙江省"),
    BEIJING: ("北京市", "北京市"),
    GUANGZHOU: ("广州市", "广东省"),
    SHANGHAI: ("上海市", "上海市"),
}


def scan(i: int, scanner: str, ago_ms: int, where: tuple[float, float] | None = HANGZHOU) -> RecentScan:
    city, province = PLACES[where] if where else (None, None)
    lat, lng = where if where else (None, None)
    return RecentScan(NOW - ago_ms, scanner, city, province, lat, lng, f"e{i}")


def state(scans: list[RecentScan], distinct: int | None = None) -> CodeScanState:
    scanners = {s.scanner for s in scans}
    return CodeScanState(
        "012326100000000001",
        NOW,
        len(scans),
        min(s.at_ms for s in scans),
        scans[-1].city,
        len(scanners) if distinct is None else distinct,
        tuple(sorted(scans, key=lambda s: s.at_ms, reverse=True)),
    )


def test_one_shopper_rescanning_everywhere_is_never_flagged() -> None:
    places = [HANGZHOU, BEIJING, GUANGZHOU, SHANGHAI] * 10
    scans = [scan(i, "me", i * 60_000, p) for i, p in enumerate(places)]
    assert evaluate(state(scans), CFG) == []


def test_distinct_scanners_warn_then_suspicious_with_evidence() -> None:
    assert distinct_scanners(state([scan(i, f"s{i}", i * HOUR_MS) for i in range(2)]), CFG) is None
    warn = distinct_scanners(state([scan(i, f"s{i}", i * HOUR_MS) for i in range(3)]), CFG)
    assert warn is not None and warn.severity == "warn"
    flag = distinct_scanners(state([scan(i, f"s{i}", i * HOUR_MS) for i in range(5)]), CFG)
    assert flag is not None and flag.severity == "suspicious"
    assert flag.evidence["distinct_scanners"] == 5 and len(flag.evidence["scans"]) == 5
    assert all(len(s["scanner"]) <= 8 for s in flag.evidence["scans"])


def test_impossible_travel_needs_two_scanners_far_apart_too_fast() -> None:
    fast = state([scan(1, "a", 2 * HOUR_MS, HANGZHOU), scan(2, "b", HOUR_MS, BEIJING)])
    flag = impossible_travel(fast, CFG)
    assert flag is not None and flag.evidence["km"] > 1000 and flag.evidence["km_per_hour"] > 250
    slow = state([scan(1, "a", 3 * DAY_MS, HANGZHOU), scan(2, "b", HOUR_MS, BEIJING)])
    assert impossible_travel(slow, CFG) is None
    near = state([scan(1, "a", HOUR_MS + 60_000, HANGZHOU), scan(2, "b", HOUR_MS, SHANGHAI)])
    assert impossible_travel(near, CFG) is not None  # 165 km in a minute
    same = state([scan(1, "a", 2 * HOUR_MS, HANGZHOU), scan(2, "a", HOUR_MS, BEIJING)])
    assert impossible_travel(same, CFG) is None
    unlocated = state([scan(1, "a", 2 * HOUR_MS, None), scan(2, "b", HOUR_MS, BEIJING)])
    assert impossible_travel(unlocated, CFG) is None


def test_province_spread_counts_each_scanner_once_at_its_first_place() -> None:
    three = state(
        [
            scan(1, "a", 3 * DAY_MS, HANGZHOU),
            scan(2, "b", 2 * DAY_MS, BEIJING),
            scan(3, "c", DAY_MS, GUANGZHOU),
        ]
    )
    flag = province_spread(three, CFG)
    assert flag is not None and flag.evidence["provinces"] == ["北京市", "广东省", "浙江省"]
    traveller = state(
        [
            scan(1, "a", 3 * DAY_MS, HANGZHOU),
            scan(2, "a", 2 * DAY_MS, BEIJING),
            scan(3, "b", DAY_MS, GUANGZHOU),
        ]
    )
    assert province_spread(traveller, CFG) is None
    old = state(
        [
            scan(1, "a", 30 * DAY_MS, HANGZHOU),
            scan(2, "b", 20 * DAY_MS, BEIJING),
            scan(3, "c", DAY_MS, GUANGZHOU),
        ]
    )
    assert province_spread(old, CFG) is None


def test_velocity_folds_repeats() -> None:
    burst = state([scan(i, f"s{i}", i * 60_000) for i in range(11)])
    assert velocity(burst, CFG) is not None
    repeats = state([scan(i, f"s{i % 3}", i * 60_000) for i in range(40)])
    assert velocity(repeats, CFG) is None


def test_enumeration_over_quantity_and_off_market() -> None:
    assert not enumeration(10, CFG) and enumeration(11, CFG)
    now = datetime.now(UTC)
    assert over_quantity({5.0: 1000}, 10, now) is None
    flag = over_quantity({5.0: 3000}, 10, now)
    assert flag is not None and flag.evidence["seen_tonnes"] == 15
    one = scan(1, "a", 0, BEIJING)
    assert off_market("北京市", frozenset({"浙江省"}), one, now) is not None
    assert off_market("北京市", frozenset(), one, now) is None
    assert off_market("浙江省", frozenset({"浙江省"}), one, now) is None


@pytest.mark.parametrize(
    ("text", "kg"), [("5kg 真空袋", 5), ("500g", 0.5), ("2.5 公斤", 2.5), ("10斤", 5), ("礼盒", None)]
)
def test_package_weights_are_read_from_package_text(text: str, kg: float | None) -> None:
    assert parse_package_kg(text) == kg


def test_rule_thresholds_come_from_configuration() -> None:
    cfg = RuleConfig.from_mapping({"distinct_suspicious": "7", "travel_kmh": "300"})
    assert cfg.distinct_suspicious == 7 and cfg.travel_kmh == 300.0
    with pytest.raises(ValueError, match="must be a number"):
        RuleConfig.from_mapping({"velocity_hour": "many"})


@pytest.mark.parametrize(
    ("where", "city", "province"),
    [
        ((39.9042, 116.4074), "北京市", "北京市"),
        ((31.2304, 121.4737), "上海市", "上海市"),
        ((30.2741, 120.1551), "杭州市", "浙江省"),
        ((23.1291, 113.2644), "广州市", "广东省"),
        ((45.80, 126.53), "哈尔滨市", "黑龙江省"),
        ((44.93, 127.17), "哈尔滨市", "黑龙江省"),  # 五常 is under Harbin
        ((43.8256, 87.6168), "乌鲁木齐市", "新疆维吾尔自治区"),
    ],
)
def test_coordinates_map_to_city_and_province_offline(
    where: tuple[float, float], city: str, province: str
) -> None:
    assert locate(*where) == (city, province)


def test_places_abroad_or_unknown_have_no_city() -> None:
    assert locate(48.85, 2.35) == (None, None)  # Paris
    assert locate(None, None) == (None, None)
    assert 1000 < distance_km(*HANGZHOU, *BEIJING) < 1200
