"""A Bloom filter of every issued code, so a lookup of a code that was never issued
(a random guess, an enumeration, a typo) is answered without touching the database.

m is a power of two so positions are a mask away; k positions come from one blake2b
digest by double hashing (Kirsch-Mitzenmacher). The bit layout matches Redis SETBIT/GETBIT
(bit 0 is the most significant bit of byte 0), so the same bytes live in Redis and in
each worker.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable


def positions(code: str, m_bits: int, k: int) -> list[int]:
    digest = hashlib.blake2b(code.encode(), digest_size=16).digest()
    h1 = int.from_bytes(digest[:8], "little")
    h2 = int.from_bytes(digest[8:], "little") | 1
    mask = m_bits - 1
    return [(h1 + i * h2) & mask for i in range(k)]


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

    def update(self, codes: Iterable[str]) -> None:
        for code in codes:
            self.add(code)

    def might_contain(self, code: str) -> bool:
        bits = self.bits
        return all(bits[pos >> 3] & (0x80 >> (pos & 7)) for pos in positions(code, self.m_bits, self.k))
