"""What a stalled scan store costs the verify path: a bounded load before, during and after
a `CLIENT PAUSE` of the scan store's Redis (DEBUG is disabled on these machines).

Starts its own redis-server on a free port as the scan store (SCAN_REDIS_URL; pausing the
shared server would stall everyone else's clients), the shared cache on `--redis`,
seeds the demo registry into a fresh MariaDB database, starts gunicorn (gunicorn.conf.py,
2 sync workers) and drives POST /api/v1/verify with a few keep-alive threads. The scan
store is paused `--pause` seconds after the start, for `--pause-ms`.

    python bench/scan_store_stall.py [--threads 8] [--duration 12] [--pause 3] [--pause-ms 5000]

Prints req/s and p50/p99 for the windows before, during and after the pause.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import date
from pathlib import Path

import pymysql
import redis

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(ready, seconds: float = 60) -> None:  # type: ignore[no-untyped-def]
    end = time.monotonic() + seconds
    while True:
        try:
            if ready():
                return
        except Exception:
            if time.monotonic() > end:
                raise
        if time.monotonic() > end:
            raise TimeoutError("not ready")
        time.sleep(0.2)


def drive(port: int, body: bytes, stop: float, out: list[tuple[float, float]]) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    while (now := time.monotonic()) < stop:
        conn.request("POST", "/api/v1/verify", body=body, headers={"Content-Type": "application/json"})
        resp = conn.getresponse()
        resp.read()
        if resp.status != 200:
            raise RuntimeError(f"verify answered {resp.status}")
        out.append((now, time.monotonic() - now))


def window(samples: list[tuple[float, float]], start: float, end: float) -> str:
    lat = sorted(d for t, d in samples if start <= t < end)
    if not lat:
        return "no requests"
    p50 = statistics.median(lat) * 1000
    p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1000
    return f"{len(lat) / (end - start):8.0f} req/s  p50 {p50:7.1f} ms  p99 {p99:7.1f} ms  (n={len(lat)})"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=8)
    ap.add_argument("--duration", type=float, default=12)
    ap.add_argument("--pause", type=float, default=3, help="seconds after the start")
    ap.add_argument("--pause-ms", type=int, default=5000)
    ap.add_argument("--redis", default="redis://127.0.0.1:6379/3", help="the shared cache")
    ap.add_argument("--mysql", default="root@127.0.0.1:3306")
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="stall-"))
    scan_port, app_port = free_port(), free_port()
    server = shutil.which("redis-server") or "redis-server"
    scan_redis = subprocess.Popen(
        [server, "--port", str(scan_port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", str(tmp), "--logfile", str(tmp / "redis.log")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    user, _, hostport = args.mysql.rpartition("@")
    host, _, mport = hostport.partition(":")
    db = f"stall_{uuid.uuid4().hex[:10]}"
    mysql = pymysql.connect(host=host, port=int(mport or 3306), user=user or "root")
    mysql.cursor().execute(f"CREATE DATABASE {db} CHARACTER SET utf8mb4")
    app = None
    try:
        wait_for(lambda: redis.Redis(port=scan_port).ping())
        redis.Redis.from_url(args.redis).flushdb()
        env = {
            **os.environ,
            "DATABASE_URL": f"mysql+pymysql://{user or 'root'}@{host}:{mport or 3306}/{db}",
            "REDIS_URL": args.redis,
            "SCAN_REDIS_URL": f"redis://127.0.0.1:{scan_port}/0",
            "SECRET_KEY": "stall-bench",
            "ADMIN_BOOTSTRAP_TOKEN": "stall-bench",
            "RATE_LIMITS": "off",
            "PORT": str(app_port),
            "WEB_CONCURRENCY": "2",
        }
        from webapp import container, create_app
        from webapp.demo import seed
        from webapp.settings import Settings

        demo = seed(container(create_app(Settings.from_env(env), migrate=True)).admin, date.today())
        app = subprocess.Popen(
            [str(Path(sys.executable).with_name("gunicorn")), "wsgi:app"],
            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip

        def up() -> bool:
            conn = http.client.HTTPConnection("127.0.0.1", app_port, timeout=2)
            conn.request("GET", "/healthz")
            return conn.getresponse().status == 200

        wait_for(up)
        body = json.dumps({"input": demo["genuine"], "client": f"c{random.random()}"}).encode()
        samples: list[tuple[float, float]] = []
        start = time.monotonic()
        stop = start + args.duration
        threads = [
            threading.Thread(target=drive, args=(app_port, body, stop, samples)) for _ in range(args.threads)
        ]
        for t in threads:
            t.start()
        time.sleep(args.pause)
        paused_at = time.monotonic()
        redis.Redis(port=scan_port).execute_command("CLIENT", "PAUSE", args.pause_ms, "ALL")
        resumed_at = paused_at + args.pause_ms / 1000
        for t in threads:
            t.join()
        print(f"{args.threads} threads, POST /api/v1/verify of one genuine code, scan store paused "
              f"{args.pause_ms} ms at t={args.pause:.0f}s")  # fmt: skip
        print("before :", window(samples, start + 1, paused_at))
        print("paused :", window(samples, paused_at, resumed_at))
        print("after  :", window(samples, resumed_at + 0.5, stop))
        metrics = http.client.HTTPConnection("127.0.0.1", app_port, timeout=5)
        metrics.request("GET", "/metrics")
        print("metrics (one worker):", metrics.getresponse().read().decode()[:600])
    finally:
        if app is not None:
            app.terminate()
            app.wait(timeout=30)
        scan_redis.kill()
        scan_redis.wait(timeout=10)
        mysql.cursor().execute(f"DROP DATABASE IF EXISTS {db}")
        mysql.close()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
