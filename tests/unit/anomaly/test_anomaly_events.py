"""Scan events keep no raw personal data and survive the trip through the stream."""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import os
import random
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from anomaly.events import ScanEvent, _network_by_ipaddress, hash_client, network, new_event_id
from tests.unit.anomaly.helpers import HANGZHOU, NOW, event


def test_client_hashes_are_keyed_stable_and_short() -> None:
    a = hash_client(b"secret", "oWx-openid-123")
    assert a == hash_client(b"secret", "oWx-openid-123")
    assert a != hash_client(b"other-secret", "oWx-openid-123")
    assert a is not None and len(a) == 24 and "openid" not in a


def test_an_ip_never_hashes_to_the_same_scanner_as_a_client_id() -> None:
    assert hash_client(b"k", "1.2.3.4", kind="i") != hash_client(b"k", "1.2.3.4")


@given(
    st.one_of(
        st.ip_addresses(v=4).map(str),
        st.ip_addresses(v=6).map(str),
        st.ip_addresses(v=4).map(lambda a: f"::ffff:{a}"),
        st.sampled_from(
            ["010.1.2.3", "1.2.3", "1.2.3.4 ", " 1.2.3.4", "1.2.3.4.5", "256.1.1.1", "", "x", "1.2.3.04"]
        ),
        st.text(max_size=20),
    )
)
def test_an_addresses_network_is_named_as_the_ipaddress_module_names_it(ip: str) -> None:
    # Stored hashes were made of these names: the fast path for dotted IPv4 must not move one.
    assert network(ip) == _network_by_ipaddress(ip)


@given(st.binary(min_size=1, max_size=64), st.text(max_size=40), st.sampled_from(["c", "i"]))
def test_a_hash_is_the_hmac_sha256_it_always_was(secret: bytes, raw: str, kind: str) -> None:
    # Stored hashes were made by hmac.new(...).hexdigest(): the one-shot digest must give
    # the same text, or every shopper would count as new after an upgrade.
    def old(text: str) -> str:
        return hmac.new(secret, text.encode(), hashlib.sha256).hexdigest()

    if kind == "i":
        expected = f"i{old(f'n:{network(raw)}')[:12]}{old(f'i:{raw}')[:11]}" if raw else None
    else:
        expected = f"c{old(f'c:{raw}')[:23]}" if raw else None
    assert hash_client(secret, raw, kind=kind) == expected


def test_no_id_hashes_to_none() -> None:
    assert hash_client(b"k", None) is None and hash_client(b"k", "") is None


def test_event_ids_are_unique_hex() -> None:
    ids = {new_event_id() for _ in range(1000)}
    assert len(ids) == 1000 and all(len(i) == 32 and int(i, 16) >= 0 for i in ids)


def test_event_ids_stay_unique_when_the_global_random_is_seeded_or_the_process_forks() -> None:
    # Tests and libraries (hypothesis) seed the global `random`; gunicorn forks workers.
    state = random.getstate()
    try:
        random.seed(7)
        first = new_event_id()
        random.seed(7)
        assert new_event_id() != first
    finally:
        random.setstate(state)  # the other tests' random goes on as it was
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its first id, then out
        os.write(write, new_event_id().encode())
        os._exit(0)
    os.close(write)
    child = os.read(read, 64).decode()
    os.waitpid(pid, 0)
    os.close(read)
    assert len(child) == 32 and child != new_event_id()


def test_an_event_round_trips_through_json() -> None:
    original = event("abc", "c123", NOW, HANGZHOU, ip_hash="i456")
    assert ScanEvent.from_json(original.to_json()) == original
    unlocated = event("def", None, NOW, None)
    assert ScanEvent.from_json(unlocated.to_json().encode()) == unlocated


def test_naive_times_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        event("x", None, datetime(2026, 1, 1))
    assert event("y", None, datetime(2026, 1, 1, tzinfo=UTC)).at_ms == 1767225600000


@pytest.mark.parametrize("channel", ["qr", "wx:verified"])
def test_an_event_with_another_verdict_is_the_same_event_otherwise(channel: str) -> None:

    original = ScanEvent(
        event_id=new_event_id(),
        code="012324000000000017",
        at=NOW,
        channel=channel,
        verdict="",
        client="c" * 24,
        ip_hash="i" * 24,
        lat=30.27,
        lng=120.15,
        city="杭州",
        province="浙江",
    )
    moved = original.with_verdict("genuine")
    assert moved == dataclasses.replace(original, verdict="genuine")
    assert moved.verified == original.verified and original.verdict == ""
    assert ScanEvent.from_json(moved.to_json()) == moved
