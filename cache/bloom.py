"""A Bloom filter of every issued code, so a lookup of a code that was never issued
(a random guess, an enumeration, a typo) is answered without touching the database.

Each code maps to a 64-bit key (an organic code's stored integer, a BQ token's blake2b
digest); two splitmix64 finalizers of it give h1 and h2, and the k positions are
h1 + i·h2 mod m (Kirsch-Mitzenmacher double hashing). Integer arithmetic only, so an
import adds a million codes vectorized in numpy, and a lookup costs a few microseconds.
m is a power of two; the bit layout matches Redis SETBIT/GETBIT (bit 0 is the most
significant bit of byte 0), so the same bytes live in Redis and in each worker.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Iterator

import numpy as np

from domain.codes import organic_key

_M64 = (1 << 64) - 1
_GOLDEN = 0x9E3779B97F4A7C15


def key64(code: str) -> int:
    if len(code) in (17, 18) and code.isdigit():
        return organic_key(code)
    return int.from_bytes(hashlib.blake2b(code.encode(), digest_size=8).digest(), "little")


def _mix(x: int) -> int:
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _M64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _M64
    return x ^ (x >> 31)


def _mix_np(x: np.ndarray) -> np.ndarray:
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    mixed: np.ndarray = x ^ (x >> np.uint64(31))
    return mixed


def positions(code: str | int, m_bits: int, k: int) -> list[int]:
    """The k bit positions of a code (or of an organic code's stored integer key)."""
    return list(_positions(code, m_bits, k))


def _positions(code: str | int, m_bits: int, k: int) -> Iterator[int]:
    key = code if isinstance(code, int) else key64(code)
    h1, h2 = _mix(key), _mix(key ^ _GOLDEN) | 1
    mask = m_bits - 1
    for i in range(k):
        yield (h1 + i * h2) & mask


class BloomFilter:
    def __init__(self, m_bits: int, k: int, data: bytes | bytearray | None = None) -> None:
        if m_bits & (m_bits - 1):
            raise ValueError("m_bits must be a power of two")
        self.m_bits = m_bits
        self.k = k
        size = m_bits // 8
        if data is None:
            self.bits = bytearray(size)
        else:
            # Redis returns a string only as long as its highest set byte.
            self.bits = bytearray(data[:size]) + bytearray(max(0, size - len(data)))

    @staticmethod
    def sized_for(expected: int, fp_rate: float = 0.01) -> tuple[int, int]:
        """(m_bits, k) for `expected` codes at `fp_rate`, m rounded up to a power of two."""
        m = max(1024, math.ceil(-expected * math.log(fp_rate) / (math.log(2) ** 2)))
        m_bits = 1 << (m - 1).bit_length()
        k = max(1, round(m_bits / max(expected, 1) * math.log(2)))
        return m_bits, min(k, 12)

    def add(self, code: str) -> None:
        for pos in positions(code, self.m_bits, self.k):
            self.bits[pos >> 3] |= 0x80 >> (pos & 7)

    def update(self, codes: Iterable[str | int]) -> None:
        """Add many codes at once, vectorized (imports of millions). An int is an organic
        code's stored key already (what an import has at hand): no string to parse."""
        batch: list[int] = []
        for code in codes:
            batch.append(code if isinstance(code, int) else key64(code))
            if len(batch) >= 500_000:
                self._add_keys(batch)
                batch = []
        if batch:
            self._add_keys(batch)

    def _add_keys(self, keys: list[int]) -> None:
        arr = np.frombuffer(self.bits, dtype=np.uint8)
        key = np.asarray(keys, dtype=np.uint64)
        h1 = _mix_np(key)
        h2 = _mix_np(key ^ np.uint64(_GOLDEN)) | np.uint64(1)
        mask = np.uint64(self.m_bits - 1)
        # Every hash's positions at once (k rows), in one ufunc.at: its cost is per call as
        # much as per position (an import chunk's 100,000 codes, k=12: 55 -> 29 ms).
        i = np.arange(self.k, dtype=np.uint64)[:, None]
        pos = ((h1 + i * h2) & mask).ravel().astype(np.int64)
        np.bitwise_or.at(arr, pos >> 3, (0x80 >> (pos & 7)).astype(np.uint8))

    def might_contain(self, code: str) -> bool:
        # Position by position: a never-issued code (a guess) is told by its first unset
        # bit, mostly the first or second of k (12 at the default size).
        bits = self.bits
        return all(bits[pos >> 3] & (0x80 >> (pos & 7)) for pos in _positions(code, self.m_bits, self.k))
