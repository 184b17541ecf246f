"""Each anomaly rule fires on copies, stays quiet on one shopper's repeats, and names the
scans that made it fire (by event id, time and city; never a raw or full client id)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from anomaly.rules import (
    CODE_RULE_NAMES,
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
from tests.unit.anomaly.helpers import (
    BEIJING,
    CHENGDU,
    GUANGZHOU,
    HANGZHOU,
    NOW,
    SHANGHAI,
    SUZHOU,
    scan,
    state,
)

CFG = RuleConfig()
H = timedelta(hours=1)
D = timedelta(days=1)
M = timedelta(minutes=1)


def ids(flag_evidence: dict) -> set[str]:
    return {s["event_id"] for s in flag_evidence["scans"]}


# -- distinct scanners -------------------------------------------------------------------


def test_two_scanners_are_a_household_not_a_flag() -> None:
    assert distinct_scanners(state([scan(1, "mum", 2 * H), scan(2, "dad", H)]), CFG) is None


def test_three_scanners_warn_and_five_are_suspicious() -> None:
    warn = distinct_scanners(state([scan(i, f"s{i}", i * H) for i in range(3)]), CFG)
    assert warn is not None and warn.severity == "warn" and warn.rule == "distinct_scanners"
    four = distinct_scanners(state([scan(i, f"s{i}", i * H) for i in range(4)]), CFG)
    assert four is not None and four.severity == "warn"
    five = distinct_scanners(state([scan(i, f"s{i}", i * H) for i in range(5)]), CFG)
    assert five is not None and five.severity == "suspicious"
    assert five.raised_at == NOW


def test_distinct_scanner_evidence_lists_each_scanners_first_scan_without_full_ids() -> None:
    scans = [scan(i, f"scanner-hash-{i % 5:020d}", i * H) for i in range(10)]
    flag = distinct_scanners(state(scans), CFG)
    assert flag is not None
    evidence = flag.evidence
    assert evidence["distinct_scanners"] == 5 and evidence["window_days"] == 30
    # The earliest scan of each of the five scanners: e5..e9 are the oldest.
    assert ids(evidence) == {"e5", "e6", "e7", "e8", "e9"}
    for item in evidence["scans"]:
        assert set(item) == {"event_id", "at", "city", "province", "place_from", "scanner", "verified"}
        assert item["city"] == "杭州市" and item["at"].endswith("Z")
        assert len(item["scanner"]) == 8 and not item["scanner"].endswith("0" * 8)


def test_one_shopper_scanning_a_hundred_times_counts_once() -> None:
    flag = distinct_scanners(state([scan(i, "me", i * M) for i in range(100)]), CFG)
    assert flag is None


def test_scanners_outside_the_window_are_left_out_of_the_evidence() -> None:
    scans = [scan(1, "old", 40 * D), *[scan(i, f"s{i}", i * H) for i in range(2, 7)]]
    flag = distinct_scanners(state(scans, distinct=5), CFG)
    assert flag is not None and "e1" not in ids(flag.evidence)


# -- impossible travel -------------------------------------------------------------------


def test_two_scanners_a_thousand_km_apart_within_an_hour_is_impossible_travel() -> None:
    flag = impossible_travel(state([scan(1, "a", 2 * H, HANGZHOU), scan(2, "b", H, BEIJING)]), CFG)
    assert flag is not None and flag.severity == "suspicious"
    assert flag.evidence["km"] > 1000 and flag.evidence["km_per_hour"] > 250
    assert [s["event_id"] for s in flag.evidence["scans"]] == ["e1", "e2"]
    assert [s["city"] for s in flag.evidence["scans"]] == ["杭州市", "北京市"]


def test_the_same_shopper_flying_with_the_bag_is_not_impossible_travel() -> None:
    assert impossible_travel(state([scan(1, "a", 2 * H, HANGZHOU), scan(2, "a", H, BEIJING)]), CFG) is None


def test_a_train_ride_in_a_day_is_possible() -> None:
    assert impossible_travel(state([scan(1, "a", 2 * D, HANGZHOU), scan(2, "b", D, BEIJING)]), CFG) is None


def test_neighbours_within_fifty_km_are_never_impossible_travel() -> None:
    # Two people in Hangzhou a minute apart: ~0 km at any speed.
    near = state([scan(1, "a", 2 * M, HANGZHOU), scan(2, "b", M, (30.30, 120.20))])
    assert impossible_travel(near, CFG) is None


def test_eighty_km_in_one_minute_is_over_both_limits() -> None:
    flag = impossible_travel(state([scan(1, "a", 2 * M, SHANGHAI), scan(2, "b", M, SUZHOU)]), CFG)
    assert flag is not None and 50 < flag.evidence["km"] < 100


def test_scans_without_coordinates_or_scanner_do_not_travel() -> None:
    unlocated = state([scan(1, "a", 2 * H, None), scan(2, "b", H, BEIJING)])
    assert impossible_travel(unlocated, CFG) is None
    anonymous = state([scan(1, None, 2 * H, HANGZHOU), scan(2, "b", H, BEIJING)])
    assert impossible_travel(anonymous, CFG) is None


def test_travel_thresholds_come_from_configuration() -> None:
    two_days = state([scan(1, "a", 2 * D + H, HANGZHOU), scan(2, "b", H, BEIJING)])  # ~23 km/h
    assert impossible_travel(two_days, RuleConfig(travel_kmh=10)) is not None


# -- province spread ---------------------------------------------------------------------


def test_three_provinces_in_a_week_by_three_scanners_is_suspicious() -> None:
    scans = [scan(1, "a", 3 * D, HANGZHOU), scan(2, "b", 2 * D, BEIJING), scan(3, "c", D, GUANGZHOU)]
    flag = province_spread(state(scans), CFG)
    assert flag is not None and flag.severity == "suspicious"
    assert flag.evidence["provinces"] == ["北京市", "广东省", "浙江省"]
    assert ids(flag.evidence) == {"e1", "e2", "e3"}


def test_a_traveller_counts_once_at_the_first_place() -> None:
    scans = [scan(1, "a", 3 * D, HANGZHOU), scan(2, "a", 2 * D, BEIJING), scan(3, "b", D, GUANGZHOU)]
    assert province_spread(state(scans), CFG) is None


def test_two_provinces_or_an_old_one_do_not_spread() -> None:
    two = [scan(1, "a", 3 * D, HANGZHOU), scan(2, "b", 2 * D, SHANGHAI), scan(3, "c", D, SHANGHAI)]
    assert province_spread(state(two), CFG) is None
    old = [scan(1, "a", 8 * D, HANGZHOU), scan(2, "b", 2 * D, BEIJING), scan(3, "c", D, CHENGDU)]
    assert province_spread(state(old), CFG) is None


def test_anonymous_scans_do_not_spread() -> None:
    scans = [scan(1, None, 3 * D, HANGZHOU), scan(2, None, 2 * D, BEIJING), scan(3, "c", D, GUANGZHOU)]
    assert province_spread(state(scans), CFG) is None


# -- velocity ----------------------------------------------------------------------------


def test_eleven_scanners_in_an_hour_is_velocity() -> None:
    flag = velocity(state([scan(i, f"s{i}", i * M) for i in range(11)]), CFG)
    assert flag is not None and flag.evidence["window"] == "hour"
    assert flag.evidence["scanners"] == 11 and flag.evidence["limit"] == 10
    assert len(flag.evidence["scans"]) == 11


def test_ten_scanners_in_an_hour_is_not() -> None:
    assert velocity(state([scan(i, f"s{i}", i * M) for i in range(10)]), CFG) is None


def test_thirty_one_scanners_in_a_day_is_velocity_but_thirty_is_not() -> None:
    spread = [scan(i, f"s{i}", i * 40 * M) for i in range(31)]  # 31 scanners over ~20 h
    flag = velocity(state(spread), CFG)
    assert flag is not None and flag.evidence["window"] == "day" and flag.evidence["scanners"] == 31
    assert velocity(state(spread[:30]), CFG) is None


def test_repeats_are_folded_before_counting_velocity() -> None:
    assert velocity(state([scan(i, f"s{i % 3}", i * M) for i in range(45)]), CFG) is None


# -- the set ----------------------------------------------------------------------------


def test_one_shopper_rescanning_everywhere_raises_nothing() -> None:
    places = [HANGZHOU, BEIJING, GUANGZHOU, SHANGHAI, CHENGDU] * 10
    scans = [scan(i, "me", i * M, p) for i, p in enumerate(places)]
    assert evaluate(state(scans), CFG) == []


def test_a_copy_campaign_raises_every_code_rule() -> None:
    places = [HANGZHOU, BEIJING, GUANGZHOU, SHANGHAI, CHENGDU]
    scans = [scan(i, f"s{i}", i * 2 * M, places[i % 5]) for i in range(12)]
    assert {f.rule for f in evaluate(state(scans), CFG)} == set(CODE_RULE_NAMES)


def test_settled_rules_are_not_evaluated_again() -> None:
    scans = [scan(i, f"s{i}", i * H) for i in range(5)]
    assert evaluate(state(scans), CFG, frozenset({"distinct_scanners"})) == []


# -- aggregate and per-scan rules --------------------------------------------------------


def test_over_quantity_compares_seen_tonnes_with_the_certified_quantity() -> None:
    now = datetime.now(UTC)
    assert over_quantity({5.0: 2000}, 10, now) is None  # exactly 10 t
    flag = over_quantity({5.0: 2001}, 10, now)
    assert flag is not None and flag.severity == "suspicious"
    assert flag.evidence == {
        "distinct_codes": 2001,
        "per_package_kg": {"5": 2001},
        "seen_tonnes": 10.005,
        "certified_tonnes": 10,
    }
    assert over_quantity({0.0: 10**6}, 10, now) is None  # unknown package weight: no claim


def test_over_quantity_weighs_each_package_size_by_itself() -> None:
    """200 half-kilo bags and then one 5 kg bag are 0.105 t, not 201 × 5 kg."""
    now = datetime.now(UTC)
    assert over_quantity({0.5: 200, 5.0: 1}, 1, now) is None
    assert over_quantity({0.5: 200, 5.0: 180}, 1, now) is None  # exactly 1 t
    flag = over_quantity({0.5: 200, 5.0: 181}, 1, now)
    assert flag is not None and flag.evidence["seen_tonnes"] == 1.005


def test_off_market_only_where_a_region_is_declared() -> None:
    now = datetime.now(UTC)
    beijing = scan(1, "a", M, BEIJING)
    flag = off_market("北京市", frozenset({"浙江省"}), beijing, now)
    assert flag is not None and flag.evidence["declared"] == ["浙江省"]
    assert ids(flag.evidence) == {"e1"}
    assert off_market("北京市", frozenset(), beijing, now) is None
    assert off_market("浙江省", frozenset({"浙江省"}), scan(2, "a", M, HANGZHOU), now) is None
    assert off_market(None, frozenset({"浙江省"}), scan(3, "a", M, None), now) is None


def test_off_market_regions_may_name_cities() -> None:
    now = datetime.now(UTC)
    hangzhou = scan(1, "a", M, HANGZHOU)
    assert off_market("浙江省", frozenset({"杭州市"}), hangzhou, now) is None
    assert off_market("浙江省", frozenset({"苏州市"}), hangzhou, now) is not None


def test_enumeration_is_more_than_ten_unknown_codes_an_hour() -> None:
    assert not enumeration(10, CFG) and enumeration(11, CFG)
    assert enumeration(4, RuleConfig(enumeration_per_hour=3))


# -- configuration -----------------------------------------------------------------------


def test_thresholds_come_from_a_mapping_of_strings() -> None:
    cfg = RuleConfig.from_mapping({"distinct_suspicious": "7", "travel_kmh": "300", "provinces": 4})
    assert (cfg.distinct_suspicious, cfg.travel_kmh, cfg.provinces) == (7, 300.0, 4)
    assert cfg.distinct_warn == 3  # the rest keep their defaults


@pytest.mark.parametrize(
    ("values", "message"),
    [({"velocity_hour": "many"}, "must be a number"), ({"distinct_suspicous": "6"}, "unknown rule")],
)
def test_bad_or_misspelt_thresholds_fail_at_start(values: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        RuleConfig.from_mapping(values)
