"""What a code's scan state costs Redis: CPU per scan script call and bytes per code.

The scan script (anomaly/scan.lua) is called through `RedisScanStore.record`, as a live
scan is, for codes never scanned before (first scans) and then once more by another
shopper (second scans); the rate-limit windows and the projection read are left out (they
do not depend on the code's state). Redis's own counters give the cost: `INFO
commandstats` for the CPU of each EVALSHA (the commands the script calls included) and
`INFO memory` for the bytes the codes' keys hold (the event stream deleted first).

With `--against REV`, the same is measured for the script of git revision REV (one whose
script takes the same keys and arguments), interleaved round by round, so both sides see
the same host:

    python bench/scan_state_cost.py --codes 20000 --rounds 3 --against HEAD~3

Use a Redis database of your own (`--redis`): it is flushed.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import redis

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from anomaly.events import ScanEvent, hash_client  # noqa: E402
from anomaly.rules import RuleConfig  # noqa: E402
from anomaly.scripts import ScanArgs, ScanKeys, ScanReply, prologue, scan_script  # noqa: E402
from anomaly.state import RedisScanStore  # noqa: E402

SECRET = b"bench"


def store_for(client: redis.Redis, lua: str | None) -> RedisScanStore:
    """A scan store calling the working tree's script, or `lua` (another revision's file)."""
    if lua is None:
        return RedisScanStore(client, RuleConfig())
    text = prologue(ScanKeys, ScanArgs, ScanReply) + lua

    def register(script: str) -> Any:
        # The scan script is the other revision's; the flag script stays the working tree's.
        return client.register_script(text if script == scan_script() else script)

    return RedisScanStore(client, RuleConfig(), register_script=register)


def scan(store: RedisScanStore, code: str, shopper: int, at: datetime) -> None:
    ip = f"10.{shopper % 251}.{shopper // 251 % 251}.{shopper % 7 + 1}"
    store.record(
        ScanEvent(
            event_id=f"{shopper:032x}",
            code=code,
            at=at,
            channel="qr",
            verdict="genuine",
            client=hash_client(SECRET, f"shopper-{shopper}"),
            ip_hash=hash_client(SECRET, ip, kind="i"),
            lat=None,
            lng=None,
            city="杭州市",  # the IP's city, as most scans have
            province="浙江省",
        )
    )


def measure(client: redis.Redis, store: RedisScanStore, codes: int, start: int) -> dict[str, float]:
    client.flushdb()
    codes_ = [f"0123269{start + i:011d}" for i in range(codes)]
    now = datetime.now(UTC)
    out: dict[str, float] = {}
    for label, offset in (("first", 0), ("second", 1)):
        client.config_resetstat()
        before = client.info("memory")["used_memory"]
        for i, code in enumerate(codes_):
            scan(store, code, 2 * i + offset, now + timedelta(minutes=offset))
        stats = client.info("commandstats")["cmdstat_evalsha"]
        client.delete(store.stream)
        out[f"{label} µs"] = stats["usec"] / stats["calls"]
        used = client.info("memory")["used_memory"]
        out[f"{label} B"] = (used - before) / codes
    # Bytes per code after its second scan, counted from empty (not the second scan's delta).
    out["second B"] += out["first B"]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--redis", default="redis://127.0.0.1:6379/12", help="a database of your own: flushed"
    )
    parser.add_argument("--codes", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--against", metavar="REV", help="also measure this git revision's anomaly/scan.lua")
    args = parser.parse_args()
    client = redis.Redis.from_url(args.redis)
    sides: dict[str, RedisScanStore] = {"this tree": store_for(client, None)}
    if args.against:
        lua = subprocess.run(
            ["git", "show", f"{args.against}:anomaly/scan.lua"],
            cwd=ROOT,
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        sides[args.against] = store_for(client, lua)
    got: dict[str, list[dict[str, float]]] = {side: [] for side in sides}
    for round_ in range(args.rounds):
        for side, store in sides.items():
            got[side].append(measure(client, store, args.codes, round_ * args.codes))
        print(f"round {round_ + 1}/{args.rounds} done", file=sys.stderr, flush=True)
    client.flushdb()
    print(f"Redis's cost of a code's scan state, {args.codes:,} codes, medians of {args.rounds} rounds")
    print(
        f"  {'':12s} {'first scan µs':>14s} {'second scan µs':>15s} {'B scanned once':>15s} {'B twice':>9s}"
    )
    for side, rounds in got.items():
        med = {k: statistics.median(r[k] for r in rounds) for k in rounds[0]}
        print(
            f"  {side:12s} {med['first µs']:14.1f} {med['second µs']:15.1f}"
            f" {med['first B']:15.0f} {med['second B']:9.0f}"
        )


if __name__ == "__main__":
    main()
