"""Bulk import benchmark: a CSV of N organic codes through `flask import-codes` into
MariaDB (LOAD DATA LOCAL INFILE per chunk), beside a plain executemany load of the same
rows in the same run; then InnoDB bytes per code and Redis bytes per cached code.

    python bench/import_bench.py [--rows 1000000] [--db NAME --redis URL] [--import-only]

`--db` names the database (dropped and made again; `<db>_baseline` too unless the
default), `--redis` the Redis database (flushed): pass your own when others bench beside
you. `--import-only` stops after the CLI import's rate and the projection's state (for
interleaved comparisons). The sources are compiled first, as the image does
(`--no-compile`: not). The buffer pool is only ever raised to `--buffer-pool-mb`, never
shrunk under other users of the server.
"""

from __future__ import annotations

import argparse
import compileall
import os
import random
import re
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import pymysql
import redis

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def fresh_db(name: str) -> str:
    conn = pymysql.connect(host="127.0.0.1", user="root", autocommit=True)
    with conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS {name}")
        cur.execute(f"CREATE DATABASE {name} CHARACTER SET utf8mb4")
    conn.close()
    return f"mysql+pymysql://root@127.0.0.1:3306/{name}"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/12")
    parser.add_argument("--buffer-pool-mb", type=int, default=1024)
    parser.add_argument("--db", default="ov_import_bench")
    parser.add_argument("--import-only", action="store_true")
    parser.add_argument(
        "--no-compile",
        action="store_true",
        help="leave the sources uncompiled (with PYTHONDONTWRITEBYTECODE set, every start compiles them)",
    )
    parser.add_argument(
        "--py-spy",
        metavar="OUT",
        help="record the import under py-spy (its subprocesses too) into OUT (py-spy installed by hand)",
    )
    args = parser.parse_args()
    if not args.db.isidentifier():
        parser.error("--db must be a plain database name")
    if not args.no_compile:
        # As the image is built (Dockerfile): the sources compiled once. Where Python may not
        # write its cache (PYTHONDONTWRITEBYTECODE, set here and in the image), the CLI
        # would otherwise compile ~110 modules at its start, ~0.2 s of the import.
        compileall.compile_dir(ROOT, quiet=1, workers=0, rx=re.compile(r"[/\\]\.(venv|git)[/\\]"))
    yy = date.today().year % 100
    cert = f"0123OP{yy:02d}00017"
    work = Path(tempfile.mkdtemp(prefix="import-bench-"))
    csv_path = work / "codes.csv"
    rng = random.Random(1)
    t0 = time.perf_counter()
    unique: set[int] = set()
    while len(unique) < args.rows:
        unique.add(rng.randrange(10**12))
    randoms = list(unique)
    with csv_path.open("w") as fh:
        fh.write("code,identity_code,certificate,product,issued_on,order,package,label_spec\n")
        for i, random_part in enumerate(randoms):
            order = f"20{yy:02d}0201-{i // 100_000:03d}"
            fh.write(
                f"0123{yy:02d}{random_part:012d},20{yy:02d}{i:07d},{cert},有机大米,"
                f"20{yy:02d}-02-01,{order},5kg,25*16mm oval\n"
            )
    print(f"wrote {args.rows:,} rows to {csv_path} in {time.perf_counter() - t0:.1f}s", flush=True)

    # Debian's default 128 MB buffer pool is below any production setting and makes a
    # million random-key inserts disk-bound; size it as a server holding codes would be.
    admin_conn = pymysql.connect(host="127.0.0.1", user="root", autocommit=True)
    with admin_conn.cursor() as cur:
        cur.execute("SELECT @@innodb_buffer_pool_size")
        (old_pool,) = cur.fetchone()
        raised = args.buffer_pool_mb * 1024 * 1024 > old_pool
        if raised:
            cur.execute(f"SET GLOBAL innodb_buffer_pool_size = {args.buffer_pool_mb * 1024 * 1024}")
    pool_mb = max(args.buffer_pool_mb, old_pool // 2**20)
    print(f"innodb_buffer_pool_size: {pool_mb} MB for this run (was {old_pool // 2**20} MB)")
    try:
        run(args, yy, cert, csv_path)
    finally:
        if raised:
            with admin_conn.cursor() as cur:
                # Put back unless someone else has set it meanwhile (another bench's run).
                cur.execute("SELECT @@innodb_buffer_pool_size")
                if cur.fetchone()[0] == args.buffer_pool_mb * 1024 * 1024:
                    cur.execute(f"SET GLOBAL innodb_buffer_pool_size = {old_pool}")


def run(args: argparse.Namespace, yy: int, cert: str, csv_path: Path) -> None:
    db_url = fresh_db(args.db)
    rds = redis.Redis.from_url(args.redis)
    rds.flushdb()
    env = {
        **os.environ,
        "DATABASE_URL": db_url,
        "REDIS_URL": args.redis,
        "SECRET_KEY": "bench",
        "ADMIN_BOOTSTRAP_TOKEN": "bench",
        "EXPECTED_CODES": str(args.rows * 2),
        "PYTHONPATH": str(ROOT),
    }
    from domain.bulk import Scope
    from webapp.schema import migrate
    from webapp.settings import Settings
    from webapp.wiring import Container

    settings = Settings(
        database_url=db_url, redis_url=args.redis, secret_key="bench", expected_codes=args.rows * 2
    )
    c = Container(settings)
    migrate(c.engine)
    scope = Scope("all", None, None, "bench")
    c.admin.upsert_bodies([{"code": "0123", "name": "Bench body"}], scope)
    c.admin.upsert_certificates(
        [
            {
                "number": cert,
                "body_code": "0123",
                "holder": "h",
                "valid_from": f"20{yy:02d}-01-01",
                "valid_until": f"20{yy:02d}-12-31",
                "products": [{"name": "有机大米"}],
            }
        ],
        scope,
    )

    from bench.cpu_account import CpuAccount, report

    account = CpuAccount(pymysql.connect(host="127.0.0.1", user="root", autocommit=True), args.db, rds)
    t0 = time.perf_counter()
    spy = ["py-spy", "record", "--subprocesses", "--format", "raw", "-o", args.py_spy, "--"]
    subprocess.run(
        [
            *(spy if args.py_spy else []),
            sys.executable,
            "-m",
            "flask",
            "--app",
            "wsgi",
            "import-codes",
            str(csv_path),
        ],
        cwd=ROOT,
        env=env,
        check=True,
    )
    cli_s = time.perf_counter() - t0
    cpu = account.stop()
    print(
        f"CLI import (LOAD DATA per chunk): {args.rows:,} codes in {cli_s:.1f}s = "
        f"{args.rows / cli_s:,.0f} codes/s (process start and filter updates included)"
    )
    print(report(args.rows, cpu))

    # The code projection the import wrote: complete, and rebuilt from the database as
    # `flask rebuild-projection` does after a Redis loss (its rate).
    from cache.projection import COMPLETE

    state = c.projection.state()
    if args.import_only:
        print(f"code projection after the import: {state} ({'ok' if state == COMPLETE else 'NOT complete'})")
        return
    t0 = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "flask", "--app", "wsgi", "rebuild-projection"],
        cwd=ROOT,
        env=env,
        check=True,
    )
    rebuild_s = time.perf_counter() - t0
    print(
        f"code projection after the import: {state} ({'ok' if state == COMPLETE else 'NOT complete'}); "
        f"flask rebuild-projection: {args.rows / rebuild_s:,.0f} codes/s ({rebuild_s:.1f}s, start included)"
    )

    # Same rows again: idempotent, and a second timing.
    t0 = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "flask", "--app", "wsgi", "import-codes", str(csv_path)],
        cwd=ROOT,
        env=env,
        check=True,
    )
    again_s = time.perf_counter() - t0
    conn = pymysql.connect(host="127.0.0.1", user="root", database=args.db)
    with conn.cursor() as cur:
        cur.execute("SELECT COUNT(*) FROM organic_codes")
        (count,) = cur.fetchone()
        cur.execute("ANALYZE TABLE organic_codes")
        cur.fetchall()
        cur.execute(
            "SELECT data_length + index_length FROM information_schema.tables "
            "WHERE table_schema = %s AND table_name = 'organic_codes'",
            (args.db,),
        )
        (size,) = cur.fetchone()
    print(
        f"re-import of the same file: {again_s:.1f}s; rows in table: {count:,} (idempotent: "
        f"{'yes' if count == args.rows else 'NO'})"
    )
    print(f"InnoDB: {size / count:.0f} bytes per code (data + indexes)")

    # Baseline in the same run: plain executemany of the same rows, no validation.
    db2 = fresh_db("ov_import_baseline" if args.db == "ov_import_bench" else f"{args.db}_baseline")
    import sqlalchemy as sa

    from registry.engine import make_engine, upgrade

    eng = make_engine(db2)
    upgrade(eng)
    rows = []
    with csv_path.open() as fh:
        next(fh)
        for line in fh:
            code = line.split(",", 1)[0]
            rows.append((int(code), 1, f"20{yy:02d}-02-01", None))
    t0 = time.perf_counter()
    raw = eng.raw_connection()
    cur = raw.cursor()
    for start in range(0, len(rows), 50_000):
        cur.executemany(
            "INSERT INTO organic_codes (code, group_id, issued_on, identity_code) VALUES (%s,%s,%s,%s)",
            rows[start : start + 50_000],
        )
    raw.commit()
    base_s = time.perf_counter() - t0
    print(
        f"baseline executemany (no validation): {len(rows) / base_s:,.0f} codes/s; "
        f"ratio CLI/baseline = {(args.rows / cli_s) / (len(rows) / base_s):.2f}"
    )
    del sa

    # Redis bytes per issued code in the code projection (every bucket's MEMORY USAGE:
    # the projection holds every code, so its keys are the whole cost), and the filter.
    from cache.projection import PREFIX

    total = sum(rds.memory_usage(key) or 0 for key in rds.scan_iter(match=PREFIX + "{*", count=10_000))
    print(
        f"Redis: code projection {total / args.rows:.1f} bytes per issued code (MEMORY USAGE of its "
        f"buckets); filter: {rds.strlen('v:bloom') / args.rows:.2f} bytes per issued code"
    )


if __name__ == "__main__":
    main()
