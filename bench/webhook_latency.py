"""Webhook latency: from the scan that raises a new suspicious flag to its alert arriving at
a real HTTP receiver on this machine, p50/p95 over many flags.

MariaDB + Redis: scans are verified by the app in this process (the flags go to the Redis
stream) and `flask --app wsgi worker` runs as its own process, as in production: it
drains the stream into MariaDB (the outbox row is written with the flag) and its
delivery thread sends the alert. Embedded (--embedded): the web process writes the flag
and outbox row itself and its delivery thread (what gunicorn's post_worker_init starts)
sends it. Needs MariaDB at MYSQL_URL (a scratch database is created and dropped) and
Redis at REDIS_URL (database BENCH_REDIS_DB, default 7, flushed). Flags come from imported
scans (POST /api/v1/admin/scans' use case: six clients), or with --live from six verifies
through POST /api/v1/verify from six networks (the flag then reaches SQL only through the
stream and the worker).

    python bench/webhook_latency.py [--flags 40] [--embedded] [--live]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pymysql
import redis as redis_lib
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from domain.bulk import Scope  # noqa: E402
from tests.webhook_receiver import receiver  # noqa: E402
from webapp import Settings, container, create_app  # noqa: E402
from webapp.demo import demo_rows, seed  # noqa: E402

MYSQL_URL = os.environ.get("MYSQL_URL", "mysql+pymysql://root@127.0.0.1:3306")
REDIS = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--flags", type=int, default=40, help="new suspicious flags raised, one after another")
    ap.add_argument("--embedded", action="store_true", help="SQLite + in-process, no worker process")
    ap.add_argument(
        "--live",
        action="store_true",
        help="live verifies from six networks (POST /api/v1/verify) instead of imported scans",
    )
    args = ap.parse_args()
    today = datetime.now(UTC).date()
    cleanup = []
    env = {**os.environ, "SECRET_KEY": "bench-webhooks", "WEBHOOK_ALLOW_PRIVATE": "1", "RATE_LIMITS": "off"}
    if args.embedded:
        tmp = tempfile.mkdtemp()
        settings = Settings(
            database_url=f"sqlite:///{tmp}/bench.sqlite3",
            proxy_count=1,
            secret_key="bench-webhooks",
            rate_limits=False,
            webhook_allow_private=True,
        )
    else:
        name = f"ovt_wh_{uuid.uuid4().hex[:8]}"
        url = make_url(MYSQL_URL)
        conn = pymysql.connect(
            host=url.host or "127.0.0.1",
            port=url.port or 3306,
            user=url.username or "root",
            password=url.password or "",
        )
        with conn.cursor() as cur:
            cur.execute(f"CREATE DATABASE {name} CHARACTER SET utf8mb4")
        db_url = url.set(database=name).render_as_string(hide_password=False)
        redis_url = (
            make_url(REDIS.replace("redis://", "mysql://"))
            .set(database=os.environ.get("BENCH_REDIS_DB", "7"))
            .render_as_string(hide_password=False)
            .replace("mysql://", "redis://")
        )
        redis_lib.Redis.from_url(redis_url).flushdb()
        settings = Settings(
            database_url=db_url,
            redis_url=redis_url,
            secret_key="bench-webhooks",
            rate_limits=False,
            webhook_allow_private=True,
        )
        env.update(DATABASE_URL=db_url, REDIS_URL=redis_url)

        def drop() -> None:
            with conn.cursor() as cur:
                cur.execute(f"DROP DATABASE IF EXISTS {name}")
            conn.close()
            redis_lib.Redis.from_url(redis_url).flushdb()

        cleanup.append(drop)
    app = create_app(settings, migrate=True)
    c = container(app)
    seed(c.admin, today)
    rows = demo_rows(today)["codes"]
    worker = None
    deliverer = None
    try:
        with receiver() as hook:
            with c.engine.connect() as conn_:
                org_id = conn_.exec_driver_sql("SELECT id FROM organizations ORDER BY id LIMIT 1").scalar()
            # Live verifies from six networks reach `warn` in the Redis scan store (what raises
            # `suspicious` there differs from the in-process store; see the README): the
            # live run subscribes to warnings, the import run to suspicious flags.
            lowest = "warn" if args.live else "suspicious"
            hook_body = {"url": hook.url, "organization_id": org_id, "min_severity": lowest}
            c.alerts.create_webhook(hook_body, Scope("all"))
            if args.embedded:
                deliverer = c.start_deliverer()
            else:
                worker = subprocess.Popen(
                    [
                        str(ROOT / ".venv/bin/flask") if (ROOT / ".venv/bin/flask").exists() else "flask",
                        "--app",
                        "wsgi",
                        "worker",
                    ],
                    cwd=ROOT,
                    env=env,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            # Fresh codes on the first demo certificate (its holder is the first organization).
            prefix = rows[0]["code"][:6]
            extra = [{**rows[0], "code": f"{prefix}{900000000000 + i:012d}"} for i in range(args.flags)]
            c.admin.import_codes(extra, Scope("all"))
            codes = [r["code"] for r in extra][: args.flags]
            latencies = []
            start = datetime.now(UTC) - timedelta(hours=7)
            for n, code in enumerate(codes):
                events = [
                    {
                        "event_id": f"b{n}-{i}",
                        "code": code,
                        "at": (start + timedelta(hours=i)).isoformat(),
                        "client": f"b{n}c{i}",
                    }
                    for i in range(6)
                ]
                scanned = time.monotonic()
                if args.live:
                    # Six networks verifying the code through the public API: the flag reaches
                    # the stream, the worker writes it with its outbox row and sends it.
                    http = app.test_client()
                    for i in range(6):
                        forwarded = {"X-Forwarded-For": f"{20 + n}.{10 + i}.7.9"}
                        body = {"input": code, "client": f"live{n}-{i}"}
                        answer = http.post("/api/v1/verify", json=body, headers=forwarded)
                        assert answer.status_code == 200, answer.get_data(as_text=True)
                else:
                    result = c.scan_admin.import_events(events, Scope("all"))
                    assert result.accepted == 6, result.as_dict()
                got = hook.wait_for(n + 1, 60)
                if len(got) <= n:
                    print(f"flag {n}: no alert within 60 s", file=sys.stderr)
                    return 1
                latencies.append((got[n].at - scanned) * 1000)
            mode = (
                "embedded (SQLite, delivery thread in the web process)"
                if args.embedded
                else ("MariaDB + Redis, `flask worker` process")
            )
            print(
                f"{mode}: {len(latencies)} new {lowest} flags, scan to receiver "
                f"p50 {percentile(latencies, 50):.0f} ms, p95 {percentile(latencies, 95):.0f} ms, "
                f"max {max(latencies):.0f} ms, mean {statistics.fmean(latencies):.0f} ms"
            )
    finally:
        if deliverer is not None:
            deliverer.stop()
        if worker is not None:
            worker.terminate()
            worker.wait(20)
        for fn in cleanup:
            fn()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
