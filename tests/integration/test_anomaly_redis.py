"""The anomaly engine on real Redis: one round trip per scan updates the state and the
stream and answers with this scan included; flags at the right scan; the in-process twin
agrees; the worker drains the streams once, reclaims a dead consumer's entries, sets aside
unreadable ones and stops when asked.

Every test has its own key prefix on REDIS_URL (default redis://127.0.0.1:6379/0) and
deletes its keys afterwards, so it can share a server with other runs.
"""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from redis.backoff import NoBackoff
from redis.retry import Retry

from anomaly.events import ScanEvent, hash_client
from anomaly.rules import RuleConfig
from anomaly.state import MemoryScanStore, RedisScanStore, ScanStoreUnavailable
from anomaly.worker import GROUP, MemorySink, StreamWorker
from domain.scans import Flag
from tests.unit.anomaly.helpers import BEIJING, CHENGDU, CODE, GUANGZHOU, HANGZHOU, NOW, SHANGHAI, event

pytestmark = pytest.mark.services

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
M = timedelta(minutes=1)
DAY = timedelta(days=1)
PLACES = [HANGZHOU, BEIJING, GUANGZHOU, SHANGHAI, CHENGDU]


def _require_redis() -> redis.Redis:
    try:
        from tests.fakes.services import require_redis  # type: ignore[import-not-found]
    except ImportError:
        pass
    else:
        return require_redis()
    # No retries: an absent server should skip (or fail) at once, not after backoffs.
    client = redis.Redis.from_url(REDIS_URL, socket_timeout=5, retry=Retry(NoBackoff(), 0))
    try:
        client.ping()
    except redis.RedisError as exc:
        message = f"Redis at {REDIS_URL} is not reachable ({type(exc).__name__}: {exc})"
        if os.environ.get("REQUIRE_SERVICES") == "1":
            pytest.fail(message + " and REQUIRE_SERVICES=1", pytrace=False)
        pytest.skip(message)
    return client


@pytest.fixture
def rds() -> Iterator[redis.Redis]:
    client = _require_redis()
    yield client
    client.close()


@pytest.fixture
def prefix(rds: redis.Redis) -> Iterator[str]:
    name = f"t{uuid.uuid4().hex[:10]}:"
    yield name
    keys = list(rds.scan_iter(match=f"{name}*", count=1000))
    if keys:
        rds.delete(*keys)


def recorder(rds: redis.Redis, prefix: str, **cfg: Any) -> RedisScanStore:
    return RedisScanStore(rds, RuleConfig(**cfg), prefix)


def stream_events(rds: redis.Redis, prefix: str) -> list[ScanEvent]:
    return [ScanEvent.from_json(fields[b"e"]) for _id, fields in rds.xrange(prefix + "stream")]


def test_one_scan_updates_state_and_stream_and_answers_with_itself(rds: redis.Redis, prefix: str) -> None:
    rec = recorder(rds, prefix)
    first = rec.record(event(1, "alice", NOW))
    assert (first.count, first.first_at, first.first_city, first.distinct_scanners) == (1, NOW, "杭州市", 1)
    assert (first.you_count, first.you_first_at, first.flags) == (1, NOW, ())
    second = rec.record(event(2, "bob", NOW + M, BEIJING))
    assert (second.count, second.first_at, second.first_city) == (2, NOW, "杭州市")
    assert (second.distinct_scanners, second.you_count, second.you_first_at) == (2, 1, NOW + M)
    assert stream_events(rds, prefix) == [event(1, "alice", NOW), event(2, "bob", NOW + M, BEIJING)]


def _monitored(rds: redis.Redis, prefix: str, run: Any) -> tuple[Any, list[tuple[str, str]]]:
    """`run(recorder)`'s result and the commands Redis ran for it, in order, as (client
    type, command name): "normal" for what the client sent, "lua" for its script's calls."""
    # One connection, so MONITOR can tell this client's commands from anyone else's.
    pool = redis.BlockingConnectionPool.from_url(REDIS_URL, max_connections=1)
    single = redis.Redis(connection_pool=pool)
    rec = recorder(single, prefix)
    rec.record(event(0, "warm", NOW, code="0123269" + "9" * 11))  # loads the script once
    port = int(str(single.client_info()["addr"]).rsplit(":", 1)[1])
    seen: list[tuple[str, str]] = []
    watcher = redis.Redis.from_url(REDIS_URL)
    ready, done = threading.Event(), threading.Event()
    with watcher.monitor() as monitor:

        def listen() -> None:
            for message in monitor.listen():
                # A script's calls carry no port of their own: taken while between ours,
                # on this test's keys (another test run may share the server).
                lua = message.get("client_type") == "lua"
                if not lua and message.get("client_port") != str(port):
                    continue
                if lua and prefix not in message["command"]:
                    continue
                command = message["command"]
                if "ready?" in command:
                    ready.set()
                elif ready.is_set():
                    seen.append(("lua" if lua else "normal", command.split()[0].upper()))
                    if "done" in command and not lua:
                        done.set()
                        return

        listener = threading.Thread(target=listen, daemon=True)
        listener.start()
        while not ready.wait(0.05):  # MONITOR may start late: wait until it sees us
            single.echo("ready?")
        out = run(rec)
        single.echo("done")
        done.wait(5)
    watcher.close()
    single.close()
    return out, seen


def test_a_scan_is_exactly_one_command_from_the_client(rds: redis.Redis, prefix: str) -> None:
    rec = recorder(rds, prefix)
    rec.record(event(0, "first", NOW))
    out, seen = _monitored(rds, prefix, lambda rec: rec.record(event(1, "alice", NOW + M)))
    assert out.count == 2
    assert [name for kind, name in seen if kind == "normal"] == ["EVALSHA", "ECHO"]


def test_a_codes_first_scan_reads_nothing_back(rds: redis.Redis, prefix: str) -> None:
    """A code's first scan makes its state: the script knows the answer from what it wrote
    (one EXISTS asks whether any of the code's keys outlived an earlier state), and keeps
    the scan's scanner, identity and history entry in that one hash: no other key of the
    code is made."""
    out, seen = _monitored(rds, prefix, lambda rec: rec.record(event(1, "alice", NOW)))
    assert (out.count, out.first_at, out.distinct_scanners, out.you_count) == (1, NOW, 1, 1)
    script = [name for kind, name in seen if kind == "lua"]
    assert not _READS & set(script), script
    assert script.count("HSET") == 1 and script.count("PEXPIRE") == 1, script
    assert not {"ZADD", "LPUSH", "LTRIM"} & set(script), script
    keys = recorder(rds, prefix).keys(CODE, "alice", None, None)
    assert rds.exists(keys.scanners, keys.scanner_last, keys.identities, keys.recent) == 0
    assert rds.pttl(keys.state) > 0
    # Kept in fields short enough for Redis's compact encoding of small hashes.
    assert rds.object("encoding", keys.state) == b"listpack"


def test_a_second_scan_moves_the_first_out_of_the_state_as_it_was(rds: redis.Redis, prefix: str) -> None:
    """What the first scan kept in the state is, after the second scan, what the code's
    keys held before first scans were kept inline: the first scanner's entry and last
    time, its identity, its history entry under the second's, all with the retention."""
    rec = recorder(rds, prefix)
    first = event(1, "alice", NOW)
    rec.record(first)
    second = rec.record(event(2, "bob", NOW + M, BEIJING))
    assert (second.count, second.distinct_scanners, second.you_count) == (2, 2, 1)
    keys = rec.keys(CODE, "alice", None, None)
    assert not rds.hexists(keys.state, "e1") and not rds.hexists(keys.state, "n1")
    now_ms = int(NOW.timestamp() * 1000)
    assert rds.hget(keys.scanners, first.client) == f"{now_ms},1".encode()
    assert rds.zscore(keys.scanner_last, first.client) == now_ms
    assert rds.zcard(keys.identities) == 2
    history = rds.lrange(keys.recent, 0, -1)
    assert len(history) == 2 and history[1].startswith(f"{now_ms}|{first.client}|".encode())
    for key in (keys.state, keys.scanners, keys.scanner_last, keys.identities, keys.recent):
        assert rds.pttl(key) > 0, key
    assert rds.object("encoding", keys.state) == b"listpack"


def test_moving_the_first_scan_out_merges_with_what_an_older_release_wrote(
    rds: redis.Redis, prefix: str
) -> None:
    """A rolling upgrade: alice's first scan is kept in the state by this release; her
    second is recorded by an older release's script, which does not see it and writes her
    as new. The next scan here merges the kept scan in (her count 2, her first and last
    times kept) rather than overwriting, and marks the history out of arrival order."""
    rec = recorder(rds, prefix)
    first = event(1, "alice", NOW)
    rec.record(first)
    keys = rec.keys(CODE, "alice", None, None)
    t1, t2 = int(NOW.timestamp() * 1000), int((NOW + M).timestamp() * 1000)
    identity = rds.hget(keys.state, "n1")
    assert identity
    # What the older script wrote for alice's second scan (one minute later).
    rds.hincrby(keys.state, "n", 1)
    rds.hset(keys.scanners, "alice", f"{t2},1")
    rds.zadd(keys.scanner_last, {"alice": t2})
    rds.zadd(keys.identities, {identity: t2})
    rds.lpush(keys.recent, f"{t2}|alice|杭州市|浙江省|||~x|2")
    third = rec.record(event(3, "bob", NOW + 2 * M, BEIJING))
    assert (third.count, third.distinct_scanners) == (3, 2)
    assert rds.hget(keys.scanners, "alice") == f"{t1},2".encode()
    assert rds.zscore(keys.scanner_last, "alice") == t2 and rds.zscore(keys.identities, identity) == t2
    assert rds.llen(keys.recent) == 3 and rds.hget(keys.state, "oo") == b"1"
    assert not rds.hexists(keys.state, "e1")
    assert rec.peek(CODE, "alice", at=NOW + 3 * M).you_count == 2


def test_a_first_scan_too_long_to_keep_in_the_state_makes_the_keys_at_once(
    rds: redis.Redis, prefix: str
) -> None:
    """A history entry longer than the state's four short fields (a long place name) is
    written to the code's keys at the first scan, as before; the answers do not change."""
    rec, mem = recorder(rds, prefix), MemoryScanStore(RuleConfig())
    long_city = "长" * 100  # 300 bytes
    first = ScanEvent("1", CODE, NOW, "qr", "genuine", "alice", None, None, None, long_city, "浙江省")
    assert _answer(rec.record(first)) == _answer(mem.record(first))
    keys = rec.keys(CODE, "alice", None, None)
    assert rds.exists(keys.scanners, keys.scanner_last, keys.recent) == 3
    assert not rds.hexists(keys.state, "e1")
    second = event(2, "bob", NOW + M, BEIJING)
    assert _answer(rec.record(second)) == _answer(mem.record(second))
    assert rds.llen(keys.recent) == 2 and rds.lindex(keys.recent, 1).decode().split("|")[2] == long_city


def test_not_found_scans_never_cut_a_kept_first_scans_retention(rds: redis.Redis, prefix: str) -> None:
    """A code scanned once, then no longer issued and looked up again and again: its state
    (holding that first scan) keeps the retention, not the not-found lifetime of a day,
    while a never-issued code's state still gets the day (and keeps getting it)."""
    rec = recorder(rds, prefix)
    rec.record(event(1, "alice", NOW))
    for i in range(2, 18):  # the 16th scan refreshes the retention
        rec.record(event(i, f"s{i}", NOW + i * M, verdict="not_found"))
    keys = rec.keys(CODE, "alice", None, None)
    assert rds.hexists(keys.state, "e1") and rds.pttl(keys.state) > 2 * 86_400_000
    guess = "0123269" + "4" * 11
    for i in range(18):
        rec.record(event(i, f"g{i}", NOW + i * M, code=guess, verdict="not_found"))
    assert 0 < rds.pttl(rec.keys(guess, None).state) <= 86_400_000


def test_a_read_sees_a_first_scan_kept_in_the_state(rds: redis.Redis, prefix: str) -> None:
    """A GET of a code scanned once (its scan still inline) answers as one scanned more:
    the count, the first scan, and the asker's own count when it made that scan."""
    rec = recorder(rds, prefix)
    rec.record(event(1, "alice", NOW))
    mine = rec.peek(CODE, "alice", at=NOW + M)
    other = rec.peek(CODE, "bob", at=NOW + M)
    assert (mine.count, mine.first_at, mine.distinct_scanners, mine.you_count, mine.you_first_at) == (
        1,
        NOW,
        1,
        1,
        NOW,
    )
    assert (other.count, other.distinct_scanners, other.you_count) == (1, 1, 0)
    # Past the distinct window the first scanner no longer counts.
    late = rec.peek(CODE, None, at=NOW + 31 * DAY)
    assert (late.count, late.distinct_scanners) == (1, 0)


_READS = {"HMGET", "HGET", "HGETALL", "ZCOUNT", "ZCARD", "ZSCORE", "LRANGE"}


def test_a_guess_reads_nothing_of_the_code(rds: redis.Redis, prefix: str) -> None:
    """A never-issued code's first lookup: its count is all it has (the enumeration sets
    are read, they are the guesser's)."""
    guess = "0123269" + "5" * 11
    out, seen = _monitored(
        rds, prefix, lambda rec: rec.record(event(1, "alice", NOW, code=guess, verdict="not_found"))
    )
    assert (out.count, out.first_at, out.distinct_scanners, out.you_count, out.flags) == (1, None, 0, 0, ())
    script = [name for kind, name in seen if kind == "lua"]
    assert not _READS & set(script), script
    # Once flagged (the flags outlive a count), the next lookup reads them again.
    rec = recorder(rds, prefix)
    rds.delete(rec.keys(guess, None).state)
    rds.hset(rec.keys(guess, None).flags, "velocity", f"suspicious|{int(NOW.timestamp() * 1000)}|open")
    assert [f.rule for f in rec.record(event(2, "bob", NOW, code=guess, verdict="not_found")).flags] == [
        "velocity"
    ]


def test_a_scanner_new_to_a_code_scanned_anonymously_gets_the_retention(
    rds: redis.Redis, prefix: str
) -> None:
    """The code's scanner keys are made at its first scan with a scanner; they expire like
    the rest of its state, not only at the next periodic refresh."""
    rec = recorder(rds, prefix)
    rec.record(event(1, None, NOW))
    rec.record(event(2, "alice", NOW + M))
    keys = rec.keys(CODE, "alice", None, None)
    for key in (keys.state, keys.scanners, keys.scanner_last, keys.identities, keys.recent):
        assert rds.pttl(key) > 0, key


def test_flags_appear_at_the_third_and_fifth_scanner_and_are_streamed_once(
    rds: redis.Redis, prefix: str
) -> None:
    rec = recorder(rds, prefix)
    answers = [rec.record(event(i, f"s{i}", NOW + i * 3 * DAY)) for i in range(7)]
    assert [[(f.rule, f.severity) for f in a.flags] for a in answers] == [
        [],
        [],
        [("distinct_scanners", "warn")],
        [("distinct_scanners", "warn")],
        *[[("distinct_scanners", "suspicious")]] * 3,
    ]
    raised = [fields[b"flag"] for _id, fields in rds.xrange(prefix + "flags")]
    assert len(raised) == 2 and b'"suspicious"' in raised[1]
    assert rds.hget(f"{prefix}{{{CODE}}}:fl", "distinct_scanners").startswith(b"suspicious|")


def test_one_shopper_everywhere_is_never_flagged(rds: redis.Redis, prefix: str) -> None:
    rec = recorder(rds, prefix)
    for i in range(30):
        out = rec.record(event(i, "me", NOW + i * M, PLACES[i % 5]))
    assert (out.count, out.distinct_scanners, out.you_count, out.flags) == (30, 1, 30, ())
    assert rds.xlen(prefix + "flags") == 0


def test_quiet_repeats_skip_the_history_but_a_located_repeat_still_counts(
    rds: redis.Redis, prefix: str
) -> None:
    rec = recorder(rds, prefix)
    rec.record(event(1, "a", NOW, None))
    rec.record(event(2, "b", NOW + M, None))
    reads: list[int] = []
    original = rec._outcome

    def spy(ev, raw, *rest):  # type: ignore[no-untyped-def]
        reads.append(len(raw[7]))
        return original(ev, raw, *rest)

    rec._outcome = spy  # type: ignore[method-assign]
    rec.record(event(3, "a", NOW + 2 * M, None))  # a re-check within the hour, no GPS
    assert reads == [0]
    # The same scanner with GPS, 20 min after b scanned 1,200 km away: impossible travel.
    rec.record(event(4, "b", NOW + 3 * M, BEIJING))
    out = rec.record(event(5, "a", NOW + 23 * M, GUANGZHOU))
    assert reads[-1] == 5
    assert [f.rule for f in out.flags] == ["impossible_travel"]
    # Days later, without GPS or a place, still two scanners: no rule can change.
    rec.record(event(6, "a", NOW + 9 * DAY, None))
    assert reads[-1] == 0


def test_a_review_is_seen_by_the_next_scan(rds: redis.Redis, prefix: str) -> None:
    rec = recorder(rds, prefix)
    for i in range(3):
        rec.record(event(i, f"s{i}", NOW + i * DAY))
    rec.set_flag_status(CODE, "distinct_scanners", "dismissed")
    assert rec.record(event(3, "s3", NOW + 3 * DAY)).flags == ()
    rec.set_flag_status(CODE, "distinct_scanners", "confirmed")
    assert [f.rule for f in rec.peek(CODE, None, at=NOW + 3 * DAY).flags] == ["distinct_scanners"]


def test_a_late_warn_never_overwrites_a_suspicious_flag_nor_reopens_a_review(
    rds: redis.Redis, prefix: str
) -> None:
    rec = recorder(rds, prefix)
    rec._raise(CODE, [Flag("velocity", "suspicious", NOW, {})], sync=False)
    stored = rec._raise(CODE, [Flag("velocity", "warn", NOW + M, {})], sync=False)  # a racing request
    assert stored["velocity"][0] == "suspicious" and rds.xlen(prefix + "flags") == 1
    rec.set_flag_status(CODE, "distinct_scanners", "confirmed")
    stored = rec._raise(CODE, [Flag("distinct_scanners", "suspicious", NOW, {})], sync=False)
    assert stored["distinct_scanners"][::2] == ("suspicious", "confirmed")


def test_peek_changes_nothing(rds: redis.Redis, prefix: str) -> None:
    rec = recorder(rds, prefix)
    rec.record(event(1, "alice", NOW))
    peek = rec.peek(CODE, "alice", at=NOW + M)
    assert (peek.count, peek.you_count, peek.first_city) == (1, 1, "杭州市")
    assert rds.xlen(prefix + "stream") == 1
    assert rec.peek("999999999999999999", "alice").count == 0
    assert not rds.exists(f"{prefix}{{999999999999999999}}:h")


def test_imported_events_are_idempotent_by_id(rds: redis.Redis, prefix: str) -> None:
    rec = recorder(rds, prefix)
    rec.record(event("imp-1", "alice", NOW), dedupe=True)
    again = rec.record(event("imp-1", "alice", NOW), dedupe=True)
    assert again.duplicate and again.count == 1 and rds.xlen(prefix + "stream") == 1


def test_a_guesser_is_throttled_and_never_a_first_scan(rds: redis.Redis, prefix: str) -> None:
    rec = recorder(rds, prefix)
    outs = [
        rec.record(event(i, "guesser", NOW + i * M, code=f"0123269{i:011d}", verdict="not_found"))
        for i in range(11)
    ]
    assert [o.throttled for o in outs] == [False] * 10 + [True]
    real = rec.record(event("r1", "guesser", NOW + 20 * M))
    assert real.throttled and real.first_at is None and real.distinct_scanners == 0
    shopper = rec.record(event("r2", "shopper", NOW + 21 * M, BEIJING))
    assert not shopper.throttled and shopper.first_city == "北京市" and shopper.first_at == NOW + 21 * M
    # The guesser's memory is bounded: the set stops at the limit + 1.
    assert rds.scard(f"{prefix}e:guesser") == 11
    assert 0 < rds.pttl(f"{prefix}e:guesser") <= 3_600_000


def test_never_issued_codes_keep_only_a_short_lived_count(rds: redis.Redis, prefix: str) -> None:
    rec = recorder(rds, prefix)
    for i in range(4):
        rec.record(event(i, f"s{i}", NOW + i * M, code="012326900000000001", verdict="not_found"))
    keys = sorted(k.decode() for k in rds.scan_iter(match=f"{prefix}{{012326900000000001}}*"))
    assert keys == [f"{prefix}{{012326900000000001}}:h"]
    assert 0 < rds.pttl(keys[0]) <= 86_400_000


def test_redis_failures_surface_as_scan_store_unavailable() -> None:
    dead = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2, retry=Retry(NoBackoff(), 0))
    rec = RedisScanStore(dead, RuleConfig())
    with pytest.raises(ScanStoreUnavailable):
        rec.record(event(1, "alice", NOW))
    with pytest.raises(ScanStoreUnavailable):
        rec.peek(CODE, "alice")


def test_redis_and_in_process_recorders_give_the_same_answers(rds: redis.Redis, prefix: str) -> None:
    """One mixed history (copies, repeats, a guesser, an anonymous scan) through both."""
    script: list[ScanEvent] = []
    for i in range(40):
        who = [f"copy{i % 9}", "owner", "owner", None][i % 4]
        place = PLACES[(i * 7) % 5] if i % 3 else None
        script.append(event(i, who, NOW + i * 37 * M, place))
    for i in range(12):
        script.append(event(f"g{i}", "guesser", NOW + i * M, code=f"0123269{i:011d}", verdict="not_found"))
    script.append(event("g-real", "guesser", NOW + 13 * M))
    script.sort(key=lambda e: e.at)
    mem = MemoryScanStore(RuleConfig())
    red = recorder(rds, prefix)

    def seen(out: Any) -> tuple:
        flags = tuple((f.rule, f.severity) for f in out.flags)
        return (out.count, out.first_at, out.first_city, out.distinct_scanners, out.you_count, flags)

    for e in script:
        assert seen(red.record(e)) == seen(mem.record(e)), e.event_id


# -- the worker ---------------------------------------------------------------------------


def worker(rds: redis.Redis, prefix: str, sink: MemorySink, name: str = "a", **kw: Any) -> StreamWorker:
    return StreamWorker(rds, sink, key_prefix=prefix, consumer=name, block_ms=100, **kw)


def test_the_worker_drains_events_and_flags_to_the_sink(rds: redis.Redis, prefix: str) -> None:
    rec = recorder(rds, prefix)
    sink = MemorySink()
    w = worker(rds, prefix, sink)
    recorded = [event(i, f"s{i}", NOW + i * M, PLACES[i]) for i in range(5)]
    for e in recorded:
        rec.record(e)
    w.drain()
    assert sorted(sink.events.values(), key=lambda e: e.event_id) == recorded
    assert {(code, f.rule) for code, f in [(k[0], v) for k, v in sink.flags.items()]} >= {
        (CODE, "distinct_scanners"),
        (CODE, "impossible_travel"),
    }
    assert sink.flags[(CODE, "distinct_scanners")].severity == "suspicious"
    assert sink.flags[(CODE, "distinct_scanners")].evidence["distinct_scanners"] == 5
    assert rds.xpending(prefix + "stream", GROUP)["pending"] == 0
    assert rds.xpending(prefix + "flags", GROUP)["pending"] == 0
    w.drain()  # nothing new: nothing written again
    assert sink.event_writes == 5 and w.stats.events == 5


def test_a_dead_consumers_entries_are_reclaimed_without_duplicates(rds: redis.Redis, prefix: str) -> None:
    rec = recorder(rds, prefix)
    sink = MemorySink()
    w = worker(rds, prefix, sink, claim_idle_ms=0)
    for i in range(7):
        rec.record(event(i, f"w{i}", NOW + i * M))
    # Consumer "dead" takes three entries and dies before acknowledging them.
    taken = rds.xreadgroup(GROUP, "dead", {prefix + "stream": ">"}, count=3)
    assert len(taken[0][1]) == 3
    w.drain()
    assert w.stats.reclaimed == 3 and len(sink.events) == 7 and sink.event_writes == 7
    assert rds.xpending(prefix + "stream", GROUP)["pending"] == 0
    # A redelivery of an event already stored (the crash came after the write): stored once.
    _id, fields = rds.xrange(prefix + "stream", count=1)[0]
    rds.xadd(prefix + "stream", fields)
    w.drain()
    assert len(sink.events) == 7 and sink.event_writes == 8


def test_a_failed_write_stays_pending_and_is_retried(rds: redis.Redis, prefix: str) -> None:
    rec = recorder(rds, prefix)

    class FlakySink(MemorySink):
        fail = True

        def write_events(self, events: list[ScanEvent]) -> None:
            if self.fail:
                raise ConnectionError("database down")
            super().write_events(events)

    sink = FlakySink()
    w = worker(rds, prefix, sink)
    rec.record(event(1, "alice", NOW))
    with pytest.raises(ConnectionError):
        w.run_once(block=False)
    assert rds.xpending(prefix + "stream", GROUP)["pending"] == 1
    sink.fail = False
    assert w.own_pending() == 1 and list(sink.events) == ["1"]
    assert rds.xpending(prefix + "stream", GROUP)["pending"] == 0


def test_an_unreadable_entry_is_set_aside_and_does_not_block(rds: redis.Redis, prefix: str) -> None:
    rec = recorder(rds, prefix)
    sink = MemorySink()
    w = worker(rds, prefix, sink)
    rec.record(event(1, "alice", NOW))
    rds.xadd(prefix + "stream", {"e": "{not json"})
    rec.record(event(2, "bob", NOW + M))
    w.drain()
    assert sorted(sink.events) == ["1", "2"] and w.stats.dead_letters == 1
    dead = rds.xrange(prefix + "dead")
    assert len(dead) == 1 and dead[0][1][b"e"] == b"{not json"
    assert rds.xpending(prefix + "stream", GROUP)["pending"] == 0


def test_the_worker_stops_when_asked_after_its_batch(rds: redis.Redis, prefix: str) -> None:
    rec = recorder(rds, prefix)
    sink = MemorySink()
    w = worker(rds, prefix, sink)
    rec.record(event(1, "alice", NOW))
    runner = threading.Thread(target=w.run, kwargs={"progress_every_s": 0.0})
    runner.start()
    for i in range(2, 5):
        rec.record(event(i, "alice", NOW + i * M))
    while len(sink.events) < 4 and runner.is_alive():
        threading.Event().wait(0.05)
    w.stop()
    runner.join(timeout=10)
    assert not runner.is_alive() and sorted(sink.events) == ["1", "2", "3", "4"]
    assert rds.xpending(prefix + "stream", GROUP)["pending"] == 0


def test_acknowledged_entries_are_trimmed_and_pending_ones_kept(rds: redis.Redis, prefix: str) -> None:
    rec = recorder(rds, prefix)
    sink = MemorySink()
    w = worker(rds, prefix, sink, claim_idle_ms=3_600_000)
    for i in range(250):
        rec.record(event(i, f"s{i % 2}", NOW + i * M))
    w.drain()
    assert len(sink.events) == 250 and rds.xlen(prefix + "stream") <= 100
    for i in range(250, 500):
        rec.record(event(i, f"s{i % 2}", NOW + i * M))
    # A live consumer holds the oldest new entry unacknowledged: trimming must keep it.
    held = rds.xreadgroup(GROUP, "busy", {prefix + "stream": ">"}, count=1)[0][1][0][0]
    w.drain()
    assert len(sink.events) == 499
    assert rds.xrange(prefix + "stream", min=held, max=held)  # still there for "busy"


def test_trimming_keeps_entries_another_worker_is_handed_meanwhile(rds: redis.Redis, prefix: str) -> None:
    rec = recorder(rds, prefix)
    sink = MemorySink()
    w = worker(rds, prefix, sink, claim_idle_ms=0)
    for i in range(250):
        rec.record(event(i, f"s{i % 2}", NOW + i * M))
    w.drain()
    for i in range(250, 500):
        rec.record(event(i, f"s{i % 2}", NOW + i * M))

    class Racing:
        """Another worker ("b") reads every new entry right after trim() saw the pending
        list empty, then dies before acknowledging them."""

        def __getattr__(self, name: str) -> Any:
            return getattr(rds, name)

        def xpending(self, name: str, groupname: str) -> Any:
            out = rds.xpending(name, groupname)
            if name == prefix + "stream":
                rds.xreadgroup(GROUP, "b", {name: ">"}, count=1000)
            return out

    w.client = Racing()  # type: ignore[assignment]
    w.trim()
    w.client = rds
    w.drain()  # reclaims b's entries: all of them must still be there
    assert len(sink.events) == 500
    assert rds.xpending(prefix + "stream", GROUP)["pending"] == 0


def test_the_worker_recreates_a_vanished_group_and_keeps_draining(rds: redis.Redis, prefix: str) -> None:
    rec = recorder(rds, prefix)
    sink = MemorySink()
    w = worker(rds, prefix, sink)
    runner = threading.Thread(target=w.run, kwargs={"progress_every_s": 60.0})
    runner.start()
    rec.record(event(1, "alice", NOW))
    while len(sink.events) < 1 and runner.is_alive():
        threading.Event().wait(0.05)
    # Redis came back without its data (no AOF, a fresh server): streams and group are gone.
    rds.delete(prefix + "stream", prefix + "flags")
    rec.record(event(2, "bob", NOW + M))
    for _ in range(200):  # the worker waits a second after each failed read
        if len(sink.events) == 2:
            break
        threading.Event().wait(0.05)
    w.stop()
    runner.join(timeout=10)
    assert sorted(sink.events) == ["1", "2"]
    assert rds.xpending(prefix + "stream", GROUP)["pending"] == 0


def test_a_worker_started_while_redis_is_away_does_not_crash() -> None:
    dead = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2, retry=Retry(NoBackoff(), 0))
    w = StreamWorker(dead, MemorySink(), consumer="early", block_ms=100)
    runner = threading.Thread(target=w.run, kwargs={"progress_every_s": 60.0})
    runner.start()
    threading.Event().wait(0.3)
    w.stop()
    runner.join(timeout=10)
    assert not runner.is_alive() and w.stats.failures >= 1


_STEP = st.tuples(
    st.sampled_from([None, "review", "read", "read", *(f"s{i}" for i in range(16))]),
    # Minutes after the previous scan; negative ones are imports out of time order.
    st.sampled_from([0, 1, 20, 61, 300, 24 * 60, 9 * 24 * 60, -2, -300, -40 * 24 * 60]),
    st.sampled_from([None, 0, 1, 2, 3, 4]),  # where
    st.booleans(),  # with GPS, else only the IP's city
    st.booleans(),  # from a WeChat-verified session
    st.sampled_from([None, 0, 1, 2]),  # the network (/24) it came from, if an IP is known
    # The code's verdict at the scan: mostly issued; sometimes not (a code looked up before
    # it was issued, or whose registry entry is gone), the state kept.
    st.sampled_from(["genuine"] * 5 + ["not_found"]),
)
_CONFIGS = st.sampled_from(
    [{}, {"scanners_max": 3, "recent_max": 5}, {"recent_max": 4, "velocity_hour": 4}, {"velocity_hour": 2}]
)
_codes = iter(range(10**6))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=st.lists(_STEP, min_size=2, max_size=45), cfg=_CONFIGS)
def test_the_history_gate_never_changes_a_flag(rds: redis.Redis, prefix: str, steps: list, cfg: dict) -> None:
    """The script reads the history only when a rule could change: against the in-process
    twin, which always evaluates every rule, every scan of any history — out of time order,
    past the scanner cap, with reviews — raises the same flags, and reads between scans
    answer alike."""
    code = f"0123269{next(_codes):011d}"
    # Keys of its own for each example (the scanners' enumeration sets would carry over).
    mem, red = MemoryScanStore(RuleConfig(**cfg)), recorder(rds, f"{prefix}{code[-6:]}:", **cfg)
    at, last_scanner = NOW, None
    for i, (who, minutes, where, gps, verified, net, verdict) in enumerate(steps):
        at += minutes * M
        if who == "review":
            # A brand dismisses whatever is open (a false alarm): both must treat it alike.
            for flag in mem.peek(code, None).flags:
                mem.set_flag_status(code, flag.rule, "dismissed")
                red.set_flag_status(code, flag.rule, "dismissed")
            continue
        if who == "read":
            # A GET between scans, as one of the scanners: the count, first scan, distinct
            # scanners and the asker's own count, whatever the state holds inline.
            # (as the last scanner, or another: a code scanned once is where reads differ)
            asker = last_scanner if gps and last_scanner else f"s{where or 0}"
            assert _answer(red.peek(code, asker, at=at)) == _answer(mem.peek(code, asker, at=at)), (i, asker)
            continue
        lat, lng = PLACES[where] if where is not None else (None, None)
        city = province = None
        if where is not None:
            probe = event(0, None, NOW, (lat, lng))
            city, province = probe.city, probe.province
        ip = None if net is None else hash_client(b"k", f"203.0.{113 + net}.{i % 3}", kind="i")
        e = ScanEvent(
            f"{code}-{i}", code, at, "qr", verdict, who, ip,
            lat if gps else None, lng if gps else None, city, province, verified=verified,
        )  # fmt: skip
        # The whole answer, not only the flags: the script works out parts of its reply
        # from what it wrote rather than reading them back.
        # Imports (`dedupe`) and live scans alike.
        assert _answer(red.record(e, dedupe=i % 2 == 0)) == _answer(mem.record(e)), (i, e)
        last_scanner = who


def _answer(out: Any) -> tuple:
    flags = tuple((f.rule, f.severity) for f in out.flags)
    return (
        out.count,
        out.first_at,
        out.first_city,
        out.distinct_scanners,
        out.you_count,
        out.you_first_at,
        flags,
    )


def _replay_both(rds: redis.Redis, prefix: str, events: list[ScanEvent], **cfg: Any) -> list[str]:
    mem, red = MemoryScanStore(RuleConfig(**cfg)), recorder(rds, prefix, **cfg)
    raised: list[str] = []
    for e in events:
        got = [(f.rule, f.severity) for f in red.record(e, dedupe=True).flags]
        want = [(f.rule, f.severity) for f in mem.record(e).flags]
        assert got == want, e
        raised = [f"{r}:{s}" for r, s in got]
    return raised


def test_the_gate_after_an_import_older_than_the_scanners_last_scan(rds: redis.Redis, prefix: str) -> None:
    """Four scanners 40 days apart; then an import of the last one's scan from day 1: its
    30-day window now holds four scanners — not a quiet repeat, though the same scanner."""
    events = [
        event(i, s, NOW + d * DAY, None)
        for i, (s, d) in enumerate([("a", 0), ("b", 40), ("c", 80), ("s", 120)])
    ]
    events.append(event("old", "s", NOW + DAY, None))
    assert _replay_both(rds, prefix, events) == ["distinct_scanners:warn"]


def test_the_gate_past_the_scanner_cap(rds: redis.Redis, prefix: str) -> None:
    """Past `scanners_max` the distinct count stops; velocity still counts the history."""
    events = [event(f"o{i}", f"o{i}", NOW, None) for i in range(3)]
    events += [event(f"r{i}", f"o{i}", NOW + 40 * DAY, None) for i in range(2)]
    events += [event(f"n{i}", f"n{i}", NOW + 40 * DAY + (i + 1) * M, None) for i in range(12)]
    assert "velocity:suspicious" in _replay_both(rds, prefix, events, scanners_max=3)


def test_the_gate_when_trimming_an_out_of_order_history_makes_a_travel_pair(
    rds: redis.Redis, prefix: str
) -> None:
    """Trimming drops by arrival, so after an out-of-order import a scan without GPS can
    leave a new consecutive pair of GPS scans by different scanners."""
    events = [
        event(1, "a", NOW + 10 * M, SHANGHAI),
        event(2, "a", NOW, BEIJING),  # imported, older
        event(3, "b", NOW + 20 * M, SHANGHAI),
        *(event(f"x{i}", None, NOW + (30 + i) * M, None) for i in range(3)),
    ]
    assert "impossible_travel:suspicious" in _replay_both(rds, prefix, events, recent_max=4)


def test_a_state_from_before_the_gate_fields_reads_its_history(rds: redis.Redis, prefix: str) -> None:
    """A code recorded before the gate's summaries were kept (no 'tv', 'pv', 'gs', 'gm',
    'lt' in its state, no flags evaluated): its next scan reads the history, so a rule
    that only the history can raise (two GPS scanners far apart) is raised then."""
    red = recorder(rds, prefix)
    for e in (event(1, "a", NOW, BEIJING), event(2, "b", NOW + 10 * M, SHANGHAI)):
        red.record(e)
    keys = red.keys(CODE, None)
    rds.hdel(keys.state, "tv", "pv", "gs", "gm", "lt")
    rds.delete(keys.flags)
    # Its first scanner again, placed by its IP only: no summary would open the gate.
    again = event(3, "a", NOW + 20 * M, HANGZHOU)
    again = ScanEvent(
        again.event_id, CODE, again.at, "qr", "genuine", "a", None, None, None, again.city, again.province
    )
    assert "impossible_travel" in {f.rule for f in red.record(again).flags}


def _on(e: ScanEvent, ip_hash: str) -> ScanEvent:
    """`e` sent from a network (an unverified scanner then weighs as that network)."""
    return ScanEvent(
        e.event_id, e.code, e.at, "qr", "genuine", e.client, ip_hash, e.lat, e.lng, e.city, e.province,
        verified=False,
    )  # fmt: skip


def _net(n: int) -> str:
    return hash_client(b"k", f"203.0.{113 + n}.7", kind="i")


def test_the_gate_when_scanners_come_back_from_other_networks(rds: redis.Redis, prefix: str) -> None:
    """A code's identities are taken at each scanner's first scan, but velocity counts the
    networks of each scanner's first scan *in its window*: three shoppers of one shop's
    network (velocity `warn`), back two hours later from their own networks, make the
    hour's three scanners three networks (`suspicious`) while the code's identities stay
    one."""
    events = [_on(event(s, s, NOW + i * M, None), _net(0)) for i, s in enumerate("abc")]
    later = NOW + 2 * 60 * M
    events += [_on(event(f"{s}2", s, later + i * M, None), _net(i + 1)) for i, s in enumerate("abc")]
    raised = _replay_both(rds, prefix, events, velocity_hour=2)
    assert "velocity:suspicious" in raised


def test_the_gate_when_trimming_scans_of_one_millisecond_makes_a_travel_pair(
    rds: redis.Redis, prefix: str
) -> None:
    """Two scans in the same millisecond keep their arrival order among equals; trimming
    the older arrival can then leave a new consecutive pair, as out of time order."""
    events = [
        event(1, "a", NOW, BEIJING),
        event(2, "a", NOW, SHANGHAI),
        event(3, "b", NOW + 10 * M, BEIJING),
        event("x", None, NOW + 20 * M, None),  # trims the first arrival
    ]
    assert "impossible_travel:suspicious" in _replay_both(rds, prefix, events, recent_max=3)


def test_the_gate_when_a_quiet_repeat_trims_an_out_of_order_history(rds: redis.Redis, prefix: str) -> None:
    """A shopper checking again, without a place, is a quiet repeat; but when its push
    trims an out-of-order history it can still leave a new travel pair."""
    events = [
        event(1, "a", NOW + 10 * M, SHANGHAI),
        event(2, "a", NOW, BEIJING),  # imported, older
        event(3, "b", NOW + 20 * M, SHANGHAI),
        *(event(f"b{i}", "b", NOW + (30 + i) * M, None) for i in range(3)),
    ]
    assert "impossible_travel:suspicious" in _replay_both(rds, prefix, events, recent_max=4)


def test_the_gate_when_a_quiet_repeat_trims_a_scanners_first_place(rds: redis.Redis, prefix: str) -> None:
    """w's quiet re-check pushes x's first scan (Beijing) out of the history: x's next
    scan (Shanghai) becomes its first place, three provinces among first places."""
    events = [
        event(1, "x", NOW, BEIJING),
        event(2, "x", NOW + 1 * M, SHANGHAI),
        event(3, "y", NOW + 2 * M, GUANGZHOU),
        event(4, "w", NOW + 3 * M, BEIJING),
        event(5, "w", NOW + 4 * M, None),  # quiet repeat; trims event 1
    ]
    assert "province_spread:suspicious" in _replay_both(rds, prefix, events, recent_max=4)


def test_the_gate_when_a_quiet_repeat_brings_its_scanner_back_into_the_history(
    rds: redis.Redis, prefix: str
) -> None:
    """s's scan was trimmed by anonymous scans; its quiet re-check within the hour puts it
    back: three scanners in the hour (velocity_hour=2)."""
    events = [event("s", "s", NOW, None)]
    events += [event(f"anon{i}", None, NOW + (1 + i) * M, None) for i in range(3)]
    events += [event("a", "a", NOW + 4 * M, None), event("b", "b", NOW + 5 * M, None)]
    events.append(event("s2", "s", NOW + 6 * M, None))  # quiet repeat
    assert "velocity:suspicious" in _replay_both(rds, prefix, events, velocity_hour=2, recent_max=3)


def test_the_gate_when_a_quiet_repeat_brings_a_network_back_into_the_window(
    rds: redis.Redis, prefix: str
) -> None:
    """net 0 was last seen 40 days ago, outside the 30-day window; s's quiet re-check from
    it moves it back in: five identities now, distinct_scanners suspicious."""
    events = [_on(event("x", "x", NOW, None), _net(0))]
    t = NOW + 40 * DAY
    for i, (who, net) in enumerate([("a", 1), ("b", 2), ("c", 3), ("d", 4), ("s", 4)]):
        events.append(_on(event(who, who, t + i * M, None), _net(net)))
    events.append(_on(event("s2", "s", t + 10 * M, None), _net(0)))  # quiet repeat
    assert "distinct_scanners:suspicious" in _replay_both(rds, prefix, events)


def test_returns_from_other_networks_keep_the_gate_open_for_a_day_only(rds: redis.Redis, prefix: str) -> None:
    """A shopper re-checking daily from its phone's changing networks, beside one other
    shopper: no rule can rise, and once the returns are a day old no scan reads the
    history (a count that never decays kept it open for the code's life)."""
    events = [_on(event("a0", "a", NOW, None), _net(0)), _on(event("b0", "b", NOW + M, None), _net(1))]
    events += [_on(event(f"a{d}", "a", NOW + d * DAY, None), _net(1 + d)) for d in range(1, 15)]
    late = [_on(event(f"late{d}", "ab"[d % 2], NOW + (90 + d) * DAY, None), _net(d % 2)) for d in range(6)]
    red = recorder(rds, prefix)
    read: list[int] = []
    outcome = red._outcome

    def spy(ev: ScanEvent, reply: Any, *rest: Any, **kw: Any) -> Any:
        read.append(len(reply.recent))  # the history entries the script returned
        return outcome(ev, reply, *rest, **kw)

    red._outcome = spy  # type: ignore[method-assign]
    for e in events + late:
        red.record(e)
    assert rds.hget(red.keys(CODE, None).state, "dr") is not None  # the returns were counted
    assert read[-len(late) :] == [0] * len(late), read
    assert _replay_both(rds, prefix + "twin:", events + late) == []


def _upgraded(
    rds: redis.Redis, prefix: str, before: list[ScanEvent], after: list[ScanEvent], **cfg: Any
) -> list[str]:
    """`before` recorded as the script before returns and ties were kept left its state
    (tv 1, no 'dr', no 'oo'), then `after` by this one, against the twin."""
    mem, red = MemoryScanStore(RuleConfig(**cfg)), recorder(rds, prefix, **cfg)
    for e in before:
        red.record(e, dedupe=True)
        mem.record(e)
    state = red.keys(before[0].code, None).state
    rds.hset(state, "tv", "1")
    rds.hdel(state, "dr", "oo")
    raised: list[str] = []
    for e in after:
        got = [(f.rule, f.severity) for f in red.record(e, dedupe=True).flags]
        assert got == [(f.rule, f.severity) for f in mem.record(e).flags], e
        raised = [f"{r}:{s}" for r, s in got]
    return raised


def test_a_state_from_before_returns_were_counted(rds: redis.Redis, prefix: str) -> None:
    events = [_on(event(s, s, NOW + i * M, None), _net(0)) for i, s in enumerate("abc")]
    later = NOW + 2 * 60 * M
    events += [_on(event(f"{s}2", s, later + i * M, None), _net(i + 1)) for i, s in enumerate("abc")]
    assert "velocity:suspicious" in _upgraded(rds, prefix, events[:5], events[5:], velocity_hour=2)


def test_a_state_from_before_ties_were_marked(rds: redis.Redis, prefix: str) -> None:
    events = [
        event(1, "a", NOW, BEIJING),
        event(2, "a", NOW, SHANGHAI),
        event(3, "b", NOW + 10 * M, BEIJING),
        event("x", None, NOW + 20 * M, None),
    ]
    assert "impossible_travel:suspicious" in _upgraded(rds, prefix, events[:2], events[2:], recent_max=3)
