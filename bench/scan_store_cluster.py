"""What the scan store costs per verify on a Redis Cluster against one server, in one run:
round trips (writes to a socket: a pipeline is one per node) and the app's CPU µs per
scan (this process's CPU time), for first scans of distinct issued codes, repeat scans
and never-issued guesses, each from its own client id and IP, its four rate-limit
windows counted by the scan store (in the script on one server, in the gate on a
cluster). Both stores are started here from the machine's redis-server (one server;
three primaries), interleaved rounds.

    python bench/scan_store_cluster.py [--scans 3000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import redis.connection  # noqa: E402

from anomaly.events import ScanEvent  # noqa: E402
from anomaly.rules import ProductContext, RuleConfig  # noqa: E402
from anomaly.state import RedisScanStore  # noqa: E402
from cache.redis_cache import make_redis  # noqa: E402
from tests.redis_server import ClusterChild, RedisChild  # noqa: E402

SENDS = [0]
_send = redis.connection.AbstractConnection.send_packed_command


def _counted(self: Any, command: Any, check_health: bool = True) -> None:
    SENDS[0] += 1
    _send(self, command, check_health)


redis.connection.AbstractConnection.send_packed_command = _counted  # type: ignore[method-assign]


def run(store: RedisScanStore, kind: str, n: int, tag: str, base: int) -> tuple[float, float]:
    """(round trips, app CPU µs) per scan of codes base … base + n."""
    product = ProductContext("p1", 0.5, 1000.0)
    events = []
    for i in range(n):
        if kind == "guess":
            code, verdict = f"0123269{base + i:011d}", "not_found"
        else:
            code, verdict = f"0123251{base + i:011d}", "genuine"
        at = datetime.now(UTC)
        client = f"{tag}-{kind}-c{i}"
        events.append(
            ScanEvent(f"{tag}{kind}{i}", code, at, "api", verdict, client, f"ip{i}", None, None, None, None)
        )

    def windows(event: ScanEvent) -> str:
        # The verify's four fixed windows (webapp.limits' names), per client and per IP.
        keys = [f"LIMITS:LIMITER/rl/verify/{who}/{n}/1/{unit}" for who in (event.client, event.ip_hash)
                for n, unit in ((60, "minute"), (1000, "hour"))]  # fmt: skip
        return "\n".join(f"{k} {3600 if k.endswith('hour') else 60} 100000" for k in keys)

    sends, cpu = SENDS[0], time.process_time()
    for event in events:
        store.record(event, product=product if event.verdict == "genuine" else None, windows=windows(event))
    return (SENDS[0] - sends) / n, (time.process_time() - cpu) / n * 1e6


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scans", type=int, default=3000)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="scan-cluster-bench-"))
    one = RedisChild(root / "one", "the bench")
    (root / "one").mkdir()
    nodes = ClusterChild(root / "cluster", primaries=3)
    (root / "cluster").mkdir()
    try:
        one.start()
        nodes.start()
        config = RuleConfig.from_mapping({})
        stores = {
            "one server": RedisScanStore(make_redis(one.url, timeout_ms=1000), config),
            "cluster": RedisScanStore(make_redis(nodes.url, timeout_ms=1000), config),
        }
        results: dict[tuple[str, str], list[tuple[float, float]]] = {}
        base = 0
        for r in range(args.rounds):
            for name, store in stores.items():
                for kind in ("first", "repeat", "guess"):
                    base += args.scans
                    if kind == "repeat":  # codes scanned once before, by other clients
                        run(store, "first", args.scans, f"pre{r}{name[0]}", base)
                    row = run(store, kind, args.scans, f"r{r}{name[0]}", base)
                    results.setdefault((name, kind), []).append(row)
        print(f"{args.scans} scans per kind, {args.rounds} rounds, medians (range)")
        print(f"{'':12} {'kind':8} {'round trips':>12} {'app CPU µs/scan':>22}")
        for (name, kind), rows in results.items():
            trips = statistics.median(t for t, _ in rows)
            cpus = [c for _, c in rows]
            spread = f"({min(cpus):.0f}-{max(cpus):.0f})"
            print(f"{name:12} {kind:8} {trips:12.2f} {statistics.median(cpus):10.0f} {spread}")
    finally:
        nodes.stop()
        one.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
