"""Nothing lost, at scale: verifies through POST /api/v1/verify while `flask --app wsgi
worker` is killed -9 mid-batch and redis-server (AOF, appendfsync always) is killed -9 and
restarted, several times each; then counts what was acknowledged, stored, duplicated and
left pending, and how long the last worker took to catch up.

Needs MariaDB (MYSQL_URL, default root@127.0.0.1:3306; a scratch database is created and
dropped) and the redis-server binary (a server of its own on a free port, in a temp dir).
The scenario is tests/chaos.py, which tests/integration/test_nothing_lost.py runs small.

    python bench/nothing_lost.py [--events 20000] [--rate 600] [--kills 3] [--restarts 2] [--both 1]
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pymysql
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests import chaos  # noqa: E402


def schedule(kills: int, restarts: int, both: int) -> list[tuple[float, str]]:
    """Worker kills, Redis restarts and both at once, taking turns, spread over 10-90 % of
    the traffic."""
    actions: list[str] = []
    left = {"kill": kills, "redis": restarts, "both": both}
    while any(left.values()):
        for action, n in left.items():
            if n:
                actions.append(action)
                left[action] -= 1
    step = 0.8 / max(len(actions), 1)
    return [(0.1 + step * (i + 0.5), action) for i, action in enumerate(actions)]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--events", type=int, default=20_000)
    ap.add_argument(
        "--rate", type=float, default=600, help="verifies per second in all (0: as fast as possible)"
    )
    ap.add_argument("--senders", type=int, default=2, help="threads sending verifies")
    ap.add_argument("--batch", type=int, default=50, help="the worker's --batch")
    ap.add_argument("--claim-idle-ms", type=int, default=1000, help="the worker's --claim-idle-ms")
    ap.add_argument("--kills", type=int, default=3, help="worker kills (-9, mid-batch)")
    ap.add_argument("--restarts", type=int, default=2, help="Redis kills (-9) and restarts")
    ap.add_argument(
        "--both", type=int, default=1, help="worker and Redis killed together; the next worker starts first"
    )
    ap.add_argument("--outage", type=float, default=1.0, help="seconds Redis stays down each time")
    ap.add_argument("--mysql-url", default=os.environ.get("MYSQL_URL", "mysql+pymysql://root@127.0.0.1:3306"))
    ap.add_argument("--keep", action="store_true", help="keep the scratch database and the temp dir")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s %(message)s")

    url = make_url(args.mysql_url)
    name = f"ovt_nl_{uuid.uuid4().hex[:10]}"
    conn = pymysql.connect(
        host=url.host or "127.0.0.1",
        port=url.port or 3306,
        user=url.username or "root",
        password=url.password or "",
        connect_timeout=3,
    )
    with conn.cursor() as cur:
        cur.execute(f"CREATE DATABASE {name} CHARACTER SET utf8mb4")
    workdir = Path(tempfile.mkdtemp(prefix="nothing-lost-"))
    started = time.monotonic()

    def say(msg: str) -> None:
        print(f"[{time.monotonic() - started:6.1f}s] {msg}", flush=True)

    try:
        scenario = chaos.Scenario(
            url.set(database=name).render_as_string(hide_password=False),
            workdir,
            events=args.events,
            rate=args.rate,
            senders=args.senders,
            batch=args.batch,
            claim_idle_ms=args.claim_idle_ms,
            chaos=schedule(args.kills, args.restarts, args.both),
            outage_s=args.outage,
            drain_timeout_s=120,
            say=say,
        )
        report = scenario.run()
    finally:
        if not args.keep:
            with conn.cursor() as cur:
                cur.execute(f"DROP DATABASE IF EXISTS {name}")
        conn.close()
    print()
    print("\n".join(report.lines()))
    for note in report.notes:
        print("note:", note)
    problems = report.problems()
    print("\nNOTHING LOST" if not problems else "\nPROBLEMS:\n  " + "\n  ".join(problems))
    if args.keep:
        print(f"logs and AOF in {workdir}; database {name}")
    else:
        import shutil

        shutil.rmtree(workdir, ignore_errors=True)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
