"""Allocation benchmark (issue 17): one order of N labels allocated with generated codes on
MariaDB + Redis, through the issuance service (segments, CSPRNG draws, INSERT IGNORE, the
filter and caches told), then a sample of the codes verified.

    python bench/issuing_bench.py [--codes 1000000]

Prints codes/s of the allocation alone. Uses the database `--db` (default
`ovt_issuing_bench`, dropped and made again) and the Redis database `--redis` (default
15, flushed): pass your own when others bench beside you.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

import pymysql
import redis

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--codes", type=int, default=1_000_000)
    parser.add_argument("--db", default="ovt_issuing_bench")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/15")
    parser.add_argument("--buffer-pool-mb", type=int, default=1024)
    args = parser.parse_args()
    if not args.db.isidentifier():
        parser.error("--db must be a plain database name")

    conn = pymysql.connect(host="127.0.0.1", user="root", autocommit=True)
    with conn.cursor() as cur:
        # Debian's 128 MB default buffer pool makes a million random-key inserts disk-bound
        # (and a pool shrinking under a load fails it with error 1206): raised, never shrunk.
        cur.execute("SELECT @@innodb_buffer_pool_size")
        (old_pool,) = cur.fetchone()
        raised = args.buffer_pool_mb * 2**20 > old_pool
        if raised:
            cur.execute(f"SET GLOBAL innodb_buffer_pool_size = {args.buffer_pool_mb * 2**20}")
    try:
        run(args, conn)
    finally:
        if raised:
            with conn.cursor() as cur:
                # Put back unless someone else has set it meanwhile (another bench's run).
                cur.execute("SELECT @@innodb_buffer_pool_size")
                if cur.fetchone()[0] == args.buffer_pool_mb * 2**20:
                    cur.execute(f"SET GLOBAL innodb_buffer_pool_size = {old_pool}")


def run(args: argparse.Namespace, conn: pymysql.Connection) -> None:
    from bench.cpu_account import CpuAccount, report
    from domain.bulk import Scope
    from webapp import container, create_app
    from webapp.settings import Settings

    with conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS {args.db}")
        cur.execute(f"CREATE DATABASE {args.db} CHARACTER SET utf8mb4")
    redis.Redis.from_url(args.redis).flushdb()
    settings = Settings(
        database_url=f"mysql+pymysql://root@127.0.0.1:3306/{args.db}",
        redis_url=args.redis,
        secret_key="bench",
        admin_bootstrap_token="bench-token",
        rate_limits=False,
        expected_codes=max(args.codes * 2, 100_000),
    )
    app = create_app(settings, migrate=True)
    c = container(app)
    everything = Scope("all", name="bench")
    c.admin.upsert_bodies([{"code": "0123", "name": "甲认证中心"}], everything)
    c.admin.upsert_certificates(
        [
            {
                "number": "0123OP2600017",
                "body_code": "0123",
                "holder": "演示企业",
                "valid_from": "2026-01-01",
                "valid_until": "2099-12-31",
                "products": [{"name": "大米", "certified_tonnes": "1000000"}],
            }
        ],
        everything,
    )
    issuing = c.issuing
    spec = issuing.upsert_specs(
        [
            {
                "certificate": "0123OP2600017",
                "product": "大米",
                "trade_name": "大米",
                "package_spec": "1千克",
                "weight_kg": "1",
                "label_spec": "椭圆标",
            }
        ],
        everything,
    )["items"][0]["id"]
    lines = [{"spec_id": spec, "quantity": args.codes, "unit_price": "0.06"}]
    number = issuing.create_order(
        {
            "certificate": "0123OP2600017",
            "address": "杭州",
            "contact": "企业",
            "phone": "1234",
            "lines": lines,
        },
        everything,
    )["number"]
    issuing.submit(number, everything)
    issuing.review(number, {"decision": "approve"}, everything)
    account = CpuAccount(conn, args.db, redis.Redis.from_url(args.redis))
    start = time.perf_counter()
    got = issuing.allocate(number, {"codes": "generated"}, everything)
    took = time.perf_counter() - start
    cpu = account.stop()
    line = got["lines"][0]
    print(f"allocated {args.codes:,} codes ({line['identity_start']}-{line['identity_end']}) in {took:.1f} s")
    print(f"{args.codes / took:,.0f} codes/s (segments, draws, INSERT IGNORE, filter and caches told)")
    print(report(args.codes, cpu))
    sample = random.sample([code for _label, _ident, code in issuing.printer_codes(number, everything)], 20)
    http = app.test_client()
    verdicts = {http.post("/api/v1/verify", json={"input": code}).get_json()["verdict"] for code in sample}
    print(f"20 sampled codes verify: {sorted(verdicts)}")
    with conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS {args.db}")
    redis.Redis.from_url(args.redis).flushdb()


if __name__ == "__main__":
    main()
