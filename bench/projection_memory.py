"""Redis bytes per issued code in the code projection (cache.projection), and its write rate.

Writes N organic codes (random 18-digit codes of one body, as an import lands them: a
label group id, an issue day, optionally a 9-digit identity code) into an EMPTY Redis
database through `RedisProjection.write_keys` (what an import chunk calls), and reports
`used_memory` after minus before, per code, with the bucket count `EXPECTED_CODES` would
give (--expected, default 2 x N as the bench sizes it) and the share of buckets still
listpack-encoded (sampled).

    python bench/projection_memory.py --codes 1000000 --redis redis://127.0.0.1:6379/14
    python bench/projection_memory.py --codes 10000000 --identity

The database is flushed before and after.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from datetime import date
from pathlib import Path

import redis

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cache.projection import RedisProjection, bucket_key, buckets_for


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--codes", type=int, default=1_000_000)
    parser.add_argument("--expected", type=int, default=0, help="EXPECTED_CODES (default: 2 x --codes)")
    parser.add_argument("--identity", action="store_true", help="every code has a 9-digit identity code")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/14")
    args = parser.parse_args()
    client = redis.Redis.from_url(args.redis, socket_timeout=60)
    client.flushdb()
    buckets = buckets_for(args.expected or args.codes * 2)
    store = RedisProjection(client, buckets)
    rng = random.Random(7)
    issued = date(2026, 2, 1)
    before = int(client.info("memory")["used_memory"])
    start = time.monotonic()
    written, batch = 0, []
    seen: set[int] = set()
    while written < args.codes:
        n = rng.randrange(10**12)
        if n in seen:
            continue
        seen.add(n)
        identity = f"{2026}{written % 100000:05d}" if args.identity else None
        # As an import chunk hands them over: the organic key (an 18-digit code is its own).
        batch.append((int(f"012326{n:012d}"), 1 + written // 50_000, issued, identity))
        if len(batch) == 100_000:
            written += store.write_keys(batch)
            batch = []
    written += store.write_keys(batch)
    seconds = time.monotonic() - start
    after = int(client.info("memory")["used_memory"])
    sample = rng.sample(range(buckets), min(2000, buckets))
    listpacks = sum(client.object("encoding", bucket_key(b)) in (b"listpack", b"ziplist") for b in sample)
    print(
        f"{written:,} codes in {buckets:,} buckets ({written / buckets:.1f} per bucket), "
        f"identity codes: {'yes' if args.identity else 'no'}\n"
        f"  {after - before:,} bytes of used_memory: {(after - before) / written:.1f} bytes per code\n"
        f"  listpack buckets: {listpacks / len(sample):.1%} of {len(sample):,} sampled\n"
        f"  written at {written / seconds:,.0f} codes/s (one process, code generation included)"
    )
    client.flushdb()


if __name__ == "__main__":
    main()
