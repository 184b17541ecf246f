"""In-memory fakes of the cache ports (domain.ports): the shared cache, the generations
and the filter of issued codes. Real implementations of the ports' semantics in one
process, for unit tests of the services: values expire by a fake clock, refill locks
are held until set or expired, generations count, the filter remembers what was added.

`fail` on each makes every call raise (a Redis outage seen by a writer's strict client);
the read methods of the shared cache fail open instead, as the port says.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence


class FakeClock:
    """Seconds that move only when a test says so."""

    def __init__(self, start: float = 1_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class CacheDown(Exception):
    """What a fake raises while `fail` is set (a Redis error, for a strict caller)."""


class FakeSharedCache:
    """domain.ports.SharedCache: keys with time-to-live, and refill locks beside them."""

    def __init__(self, clock: Callable[[], float] | None = None) -> None:
        self.clock = clock or FakeClock()
        self.values: dict[str, tuple[bytes, float]] = {}  # key -> (value, expires at)
        self.locks: dict[str, float] = {}  # key -> lock expires at
        self.fail = False
        self.strict = False  # raise instead of failing open (an importer's own client)

    @property
    def healthy(self) -> bool:
        return not self.fail

    def _down(self) -> bool:
        if self.fail and self.strict:
            raise CacheDown("shared cache unavailable")
        return self.fail

    def get(self, key: str) -> bytes | None:
        if self._down():
            return None
        found = self.values.get(key)
        if found is None or found[1] <= self.clock():
            self.values.pop(key, None)
            return None
        return found[0]

    def get_or_lock(self, key: str, lock_ms: int) -> tuple[bytes | None, bool]:
        if self._down():
            return None, True  # the port: down, everyone may refill
        value = self.get(key)
        now = self.clock()
        if self.locks.get(key, 0.0) > now:
            return value, False
        self.locks[key] = now + lock_ms / 1000
        return value, True

    def set(self, key: str, value: bytes, ttl_s: int, *, unlock: bool = False) -> None:
        if self._down():
            return
        self.values[key] = (value, self.clock() + ttl_s)
        if unlock:
            self.locks.pop(key, None)

    def delete(self, keys: list[str]) -> None:
        if self._down():
            return
        for key in keys:
            self.values.pop(key, None)


class FakeGenerations:
    """domain.ports.Generations: counters that move on `bump`; None while `fail` is set
    (workers cannot see changes), and `bump` raises then (a writer must know)."""

    def __init__(self, filters: FakeFilterStore | None = None) -> None:
        self.counts = {"status": 0, "codes": 0}
        self.filters = filters  # its imports in flight are read with the generations
        self.fail = False

    def current(self) -> dict[str, int] | None:
        if self.fail:
            return None
        imports = len(self.filters.in_flight) if self.filters is not None else 0
        return {**self.counts, "imports": imports}

    def bump(self, *names: str) -> None:
        if self.fail:
            raise CacheDown("generations unavailable")
        for name in names:
            self.counts[name] = self.counts.get(name, 0) + 1


class SetFilter:
    """domain.ports.MembershipFilter without false positives: a copy of the shared set."""

    def __init__(self, codes: frozenset[str]) -> None:
        self.codes = codes

    def might_contain(self, code: str) -> bool:
        return code in self.codes


def _text(code: str | int) -> str:
    # Organic codes are announced by their integer keys; the filter holds them as text,
    # like the Bloom filter hashes them (cache.bloom.positions).
    if isinstance(code, int):
        from domain.codes import organic_code_from_key

        return organic_code_from_key(code)
    return code


class FakeFilterStore:
    """domain.ports.FilterStore: the shared set of issued codes, and the imports in flight.

    `load` hands a snapshot (a worker's copy, as old as its last load), `might_contain`
    asks the shared set now. `built` False: no filter exists (load answers None)."""

    def __init__(self, codes: Sequence[str] = ()) -> None:
        self.codes: set[str] = set(codes)
        self.built = True
        self.in_flight: dict[str, float] = {}  # import token -> its mark's ttl
        self.fail = False
        self.added: list[list[str]] = []  # every add, in order (what was announced when)

    def load(self) -> SetFilter | None:
        if self.fail or not self.built:
            return None
        return SetFilter(frozenset(self.codes))

    def add(self, codes: Sequence[str | int]) -> None:
        if self.fail:
            raise CacheDown("filter unavailable")
        texts = [_text(c) for c in codes]
        self.added.append(texts)
        self.codes.update(texts)

    def might_contain(self, code: str) -> bool | None:
        if self.fail or not self.built:
            return None
        return code in self.codes

    def importing(self, token: str, ttl_s: float) -> None:
        if self.fail:
            raise CacheDown("filter unavailable")
        self.in_flight[token] = ttl_s

    def imported(self, token: str) -> None:
        if self.fail:
            raise CacheDown("filter unavailable")
        self.in_flight.pop(token, None)
