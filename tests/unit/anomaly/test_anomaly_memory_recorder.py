"""The in-process scan recorder (embedded default): answers that include the scan being
made, flags at the right scan, shoppers' own repeats never flagged, guessers throttled and
never a code's first scan, thread safety."""

from __future__ import annotations

import threading
from datetime import timedelta

from anomaly.events import ScanEvent, hash_client
from anomaly.rules import RuleConfig
from anomaly.state import MemoryScanStore
from domain.scans import Flag
from tests.unit.anomaly.helpers import BEIJING, CHENGDU, CODE, GUANGZHOU, HANGZHOU, NOW, SHANGHAI, event

M = timedelta(minutes=1)
PLACES = [HANGZHOU, BEIJING, GUANGZHOU, SHANGHAI, CHENGDU]


def recorder(**cfg: int) -> tuple[MemoryScanStore, list[ScanEvent], list[tuple[str, Flag]]]:
    events: list[ScanEvent] = []
    flags: list[tuple[str, Flag]] = []
    rec = MemoryScanStore(
        RuleConfig(**cfg), flag_sink=lambda code, flag: flags.append((code, flag)), event_sink=events.extend
    )
    return rec, events, flags


def test_the_first_scan_answers_one_and_its_own_time_and_city() -> None:
    rec, events, _ = recorder()
    out = rec.record(event(1, "alice", NOW))
    assert (out.count, out.first_at, out.first_city, out.distinct_scanners) == (1, NOW, "杭州市", 1)
    assert (out.you_count, out.you_first_at) == (1, NOW)
    assert out.flags == () and [e.event_id for e in events] == ["1"]


def test_first_scan_never_changes_and_you_is_per_scanner() -> None:
    rec, _, _ = recorder()
    rec.record(event(1, "alice", NOW))
    again = rec.record(event(2, "alice", NOW + M, BEIJING))
    assert again.count == 2 and again.first_at == NOW and again.first_city == "杭州市"
    assert again.you_count == 2
    bob = rec.record(event(3, "bob", NOW + 2 * M))
    assert bob.you_count == 1 and bob.you_first_at == NOW + 2 * M and bob.distinct_scanners == 2
    nobody = rec.record(event(4, None, NOW + 3 * M))
    assert nobody.you_count is None and nobody.count == 4


def test_distinct_scanner_flags_appear_at_the_third_and_fifth_scanner() -> None:
    rec, _, sunk = recorder()
    answers = [rec.record(event(i, f"s{i}", NOW + i * 3 * 24 * 60 * M)) for i in range(6)]
    assert [[(f.rule, f.severity) for f in a.flags] for a in answers] == [
        [],
        [],
        [("distinct_scanners", "warn")],
        [("distinct_scanners", "warn")],
        [("distinct_scanners", "suspicious")],
        [("distinct_scanners", "suspicious")],
    ]
    # The sink got the raise and the escalation, nothing more; both with their evidence.
    assert [(code, f.severity) for code, f in sunk] == [(CODE, "warn"), (CODE, "suspicious")]
    assert {s["event_id"] for s in sunk[1][1].evidence["scans"]} == {"0", "1", "2", "3", "4"}


def test_one_shopper_checking_everywhere_is_never_flagged() -> None:
    rec, _, sunk = recorder()
    for i in range(60):
        out = rec.record(event(i, "me", NOW + i * M, PLACES[i % 5]))
    assert out.flags == () and sunk == [] and out.distinct_scanners == 1 and out.you_count == 60


def test_a_copy_campaign_is_suspicious_by_the_fifth_foreign_scanner() -> None:
    rec, _, _ = recorder()
    rec.record(event(0, "owner", NOW))
    for i in range(1, 5):
        out = rec.record(event(i, f"copy{i}", NOW + i * M, PLACES[i]))
    assert {f.rule for f in out.flags if f.severity == "suspicious"} >= {
        "impossible_travel",
        "province_spread",
    }


def test_a_dismissed_flag_is_not_listed_until_it_escalates() -> None:
    rec, _, _ = recorder()
    for i in range(3):
        rec.record(event(i, f"s{i}", NOW + i * 24 * 60 * M))
    rec.set_flag_status(CODE, "distinct_scanners", "dismissed")
    assert rec.record(event(3, "s3", NOW + 4 * 24 * 60 * M)).flags == ()
    escalated = rec.record(event(4, "s4", NOW + 5 * 24 * 60 * M))
    assert [(f.rule, f.severity) for f in escalated.flags] == [("distinct_scanners", "suspicious")]


def test_a_confirmed_flag_stays_confirmed_when_it_escalates() -> None:
    rec, _, _ = recorder()
    for i in range(3):
        rec.record(event(i, f"s{i}", NOW + i * 24 * 60 * M))
    rec.set_flag_status(CODE, "distinct_scanners", "confirmed")
    for i in range(3, 5):
        rec.record(event(i, f"s{i}", NOW + (i + 1) * 24 * 60 * M))
    assert rec.codes[CODE].flags["distinct_scanners"][::2] == ("suspicious", "confirmed")


def test_the_same_event_id_is_recorded_once() -> None:
    rec, events, _ = recorder()
    rec.record(event("x", "alice", NOW))
    again = rec.record(event("x", "alice", NOW))
    assert again.duplicate and again.count == 1 and len(events) == 1


def test_peek_reads_without_recording() -> None:
    rec, events, _ = recorder()
    rec.record(event(1, "alice", NOW))
    peek = rec.peek(CODE, "alice", at=NOW + M)
    assert (peek.count, peek.you_count, peek.first_city) == (1, 1, "杭州市")
    assert rec.peek(CODE, "bob").you_count == 0
    assert rec.peek("999999999999999999", None).count == 0 and "999999999999999999" not in rec.codes
    assert len(events) == 1


def test_a_guesser_is_throttled_after_ten_unknown_codes_and_never_a_first_scan() -> None:
    rec, _, _ = recorder()
    outs = [
        rec.record(event(i, "guesser", NOW + i * M, code=f"0123269{i:011d}", verdict="not_found"))
        for i in range(11)
    ]
    assert [o.throttled for o in outs] == [False] * 10 + [True]
    real = rec.record(event("r1", "guesser", NOW + 20 * M))
    assert real.throttled and real.count == 0 and real.first_at is None and real.distinct_scanners == 0
    shopper = rec.record(event("r2", "shopper", NOW + 21 * M, BEIJING))
    assert not shopper.throttled and shopper.first_at == NOW + 21 * M and shopper.first_city == "北京市"
    later = rec.record(event("r3", "guesser", NOW + 80 * M))  # a new hour
    assert not later.throttled


def test_one_unknown_code_retyped_many_times_is_not_guessing() -> None:
    rec, _, _ = recorder()
    for i in range(20):
        out = rec.record(event(i, "clumsy", NOW + i * M, code="012326900000000000", verdict="not_found"))
    assert not out.throttled


def test_a_guesser_rotating_client_ids_is_caught_by_ip() -> None:
    rec, _, _ = recorder(enumeration_ip_per_hour=10)
    ip = hash_client(b"k", "203.0.113.9", kind="i")
    outs = [
        rec.record(
            event(i, f"rotating{i}", NOW + i * M, code=f"0123269{i:011d}", verdict="not_found", ip_hash=ip)
        )
        for i in range(11)
    ]
    assert [o.throttled for o in outs] == [False] * 10 + [True]


def test_unknown_codes_keep_only_a_count() -> None:
    rec, _, sunk = recorder()
    for i in range(6):
        out = rec.record(event(i, f"s{i}", NOW + i * M, PLACES[i % 5], verdict="not_found"))
    assert out.count == 6 and out.first_at is None and out.distinct_scanners == 0 and sunk == []


def test_concurrent_scans_are_all_counted() -> None:
    rec, events, _ = recorder()

    def scan_many(worker: int) -> None:
        for i in range(200):
            rec.record(event(f"{worker}-{i}", f"w{worker}", NOW + i * M))

    threads = [threading.Thread(target=scan_many, args=(w,)) for w in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    final = rec.peek(CODE, "w3", at=NOW + 200 * M)
    assert final.count == 1600 and final.you_count == 200 and final.distinct_scanners == 8
    assert len({e.event_id for e in events}) == 1600


def test_restore_rebuilds_state_without_writing_again() -> None:
    rec, events, sunk = recorder()
    for i in range(5):
        rec.record(event(i, f"s{i}", NOW + i * M))
    fresh, fresh_events, fresh_flags = recorder()
    restored = fresh.restore(events, [(CODE, "distinct_scanners", "suspicious", 0, "dismissed")])
    assert restored == 5 and fresh_events == [] and fresh_flags == []
    out = fresh.peek(CODE, "s1")
    assert out.count == 5 and out.you_count == 1 and out.flags == ()  # the review survived
    assert sunk  # the original run did raise


def test_a_shopper_rechecking_from_other_networks_stays_one_identity_against_made_up_clients() -> None:
    # A traveller's checks from four networks, then seven made-up clients from one IP:
    # the cheap clients may warn, but the traveller must not count as four networks.
    rec, _, _ = recorder()
    for i in range(4):
        ip = hash_client(b"k", f"198.51.{100 + i}.7", kind="i")
        rec.record(event(i, "traveller", NOW + i * 60 * M, None, ip_hash=ip, verified=False))
    one_ip = hash_client(b"k", "203.0.113.9", kind="i")
    for i in range(7):
        out = rec.record(
            event(10 + i, f"made-up-{i}", NOW + (300 + i) * M, None, ip_hash=one_ip, verified=False)
        )
    assert [(f.rule, f.severity) for f in out.flags] == [("distinct_scanners", "warn")]
