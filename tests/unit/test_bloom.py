"""The filter of issued codes: no false negatives, the false-positive rate it was sized for,
and the vectorized bulk path setting exactly the bits of the one-by-one path."""

from __future__ import annotations

import random

from cache.bloom import BloomFilter


def _codes(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    organic = [f"0123{24 + i % 3:02d}{rng.randrange(10**12):012d}" for i in range(n // 2)]
    legacy = [f"123{11 + i % 3:02d}{rng.randrange(10**12):012d}" for i in range(n // 4)]
    bq = ["".join(rng.choice("abcdefghijkLMNOPQ0123456789") for _ in range(12)) for _ in range(n // 4)]
    return organic + legacy + bq


def test_every_added_code_is_found_and_strangers_mostly_are_not() -> None:
    m_bits, k = BloomFilter.sized_for(20_000)
    bloom = BloomFilter(m_bits, k)
    codes = _codes(20_000, 1)
    bloom.update(codes)
    assert all(bloom.might_contain(c) for c in codes)
    known = set(codes)
    strangers = [c for c in _codes(20_000, 2) if c not in known]
    false_positives = sum(bloom.might_contain(c) for c in strangers) / len(strangers)
    assert false_positives < 0.02


def test_bulk_and_single_adds_set_the_same_bits() -> None:
    codes = _codes(2_000, 3)
    one, many = BloomFilter(1 << 16, 7), BloomFilter(1 << 16, 7)
    for c in codes:
        one.add(c)
    many.update(codes)
    assert one.bits == many.bits


def test_a_short_redis_string_loads_as_a_full_filter() -> None:
    bloom = BloomFilter(1 << 12, 3)
    bloom.add("012324000000000001")
    trimmed = bytes(bloom.bits).rstrip(b"\x00")
    assert BloomFilter(1 << 12, 3, trimmed).might_contain("012324000000000001")
