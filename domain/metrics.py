"""Process-local counters (redis_errors, db_fallbacks, filter_negatives, …), shown at /metrics.

Per worker by design: they answer "is this worker degraded and how often", and a
scraper sums them. Kept in the domain layer because every layer counts.
"""

from __future__ import annotations

import threading
from collections import Counter

_lock = threading.Lock()
_counts: Counter[str] = Counter()


def incr(name: str, by: int = 1) -> None:
    with _lock:
        _counts[name] += by


def snapshot() -> dict[str, int]:
    with _lock:
        return dict(_counts)


def value(name: str) -> int:
    with _lock:
        return _counts[name]
