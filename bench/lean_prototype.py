"""The round-trip issue's lean prototype, rebuilt and measured beside the floors in one run.

The issue set its ratio goals (first scans ≥ 0.7 × floor (b), repeat ≥ 0.8) on a lean
prototype said to serve 0.91–0.96 × (b): Flask, one EVALSHA that resolves the code from
bucketed hashes, records the scan (count, first time, distinct scanners, stream event)
and counts four rate-limit windows, and an orjson answer of ~1 KB. This is that
prototype, nothing more (no rules, no keyed hashing of clients, no request log, no
problem documents), under the project's gunicorn config, driven by `make bench`'s wrk
script with the same realistic requests (first scans, a hot set re-scanned, GETs of it and
never-issued guesses; behind one proxy, every request its own client id and IP), beside
the floor app (bench/floor_app.py) in one run:

    python bench/lean_prototype.py [--codes 200000] [--duration 6] [--repeat 3]

So the goals can be read against what the design itself costs on this host: the gap
between the product and this prototype is the product's own per-request work.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson
import redis
from flask import Flask, Response, abort, request
from werkzeug.middleware.proxy_fix import ProxyFix

ROOT = Path(__file__).resolve().parent.parent
BUCKETS = 1 << 15
PREFIX = "lp:"

# The four windows, then resolve from the bucketed hash and record the scan (or, for a
# GET, read its state; for a never-issued code, count the guess in the client's and the
# IP's sets, as enumeration limits need): one round trip.
SCRIPT = """
for i = 4, 7 do
  local n = redis.call('INCR', KEYS[i])
  if n == 1 then redis.call('PEXPIRE', KEYS[i], i < 6 and 60000 or 3600000) end
  if n > 1000 then return {-1, redis.call('PTTL', KEYS[i])} end
end
local v = redis.call('HGET', KEYS[1], ARGV[1])
if not v then
  for i = 8, 9 do
    redis.call('SADD', KEYS[i], ARGV[4])
    redis.call('PEXPIRE', KEYS[i], 3600000)
  end
  return {0}
end
if ARGV[5] == 'peek' then
  local st = redis.call('HMGET', KEYS[2], 'n', 'f')
  return {v, tonumber(st[1] or '0'), st[2] or '0', redis.call('PFCOUNT', KEYS[2] .. ':u')}
end
local count = redis.call('HINCRBY', KEYS[2], 'n', 1)
redis.call('HSETNX', KEYS[2], 'f', ARGV[2])
local first = redis.call('HGET', KEYS[2], 'f')
redis.call('PFADD', KEYS[2] .. ':u', ARGV[3])
redis.call('XADD', KEYS[3], 'MAXLEN', '~', 100000, '*', 'c', ARGV[4], 't', ARGV[2], 'k', ARGV[3])
return {v, count, first, redis.call('PFCOUNT', KEYS[2] .. ':u')}
"""

app = Flask(__name__)
app.wsgi_app = ProxyFix(app.wsgi_app, x_for=1)  # type: ignore[method-assign]
_redis = redis.Redis.from_url(os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"))
_script = _redis.register_script(SCRIPT)
_GROUPS = {
    str(g): {
        "product": {"name": "有机大米", "description": "五常稻花香有机大米 " + "x" * 300, "package": "5kg"},
        "certificate": {"number": "0123OP2600017", "status": "valid", "holder": "示范农场"},
        "body": {"code": "0123", "name": "Bench body"},
    }
    for g in range(16)
}


def place(code: str) -> tuple[str, str]:
    n = int(code)
    return f"{PREFIX}b:{n % BUCKETS}", str(n // BUCKETS)


@app.get("/floor/hello/<code>")
def hello(code: str) -> Response:  # the runner's "is it up" probe
    return Response(b"{}", mimetype="application/json")


@app.post("/api/v1/verify")
def verify() -> Response:
    body = orjson.loads(request.get_data())
    return _answer(body["input"], body["client"], "scan")


@app.get("/api/v1/codes/<code>")
def get_code(code: str) -> Response:
    return _answer(code, None, "peek")


def _answer(code: Any, client: str | None, mode: str) -> Response:
    if not (isinstance(code, str) and code.isdigit() and len(code) == 18):
        abort(400)
    ip = request.remote_addr or "-"
    client = client or ip
    bucket, field = place(code)
    minute, hour = int(time.time() // 60), int(time.time() // 3600)
    keys = [
        bucket,
        f"{PREFIX}{{{code}}}",
        f"{PREFIX}stream",
        f"{PREFIX}w:c:{client}:{minute}",
        f"{PREFIX}w:i:{ip}:{minute}",
        f"{PREFIX}w:c:{client}:h{hour}",
        f"{PREFIX}w:i:{ip}:h{hour}",
        f"{PREFIX}e:c:{client}",
        f"{PREFIX}e:i:{ip}",
    ]
    got = _script(keys=keys, args=[field, int(time.time() * 1000), client, code, mode])
    if got[0] == 0:
        return Response(orjson.dumps({"code": code, "verdict": "not_found"}), mimetype="application/json")
    if got[0] == -1:
        abort(429)
    group, _, identity = got[0].decode().partition(",")
    answer = {
        "code": code,
        "verdict": "genuine",
        "identity_code": identity,
        **_GROUPS[group],
        "scans": {"count": got[1], "first_at": int(got[2]), "distinct_scanners": got[3]},
    }
    return Response(orjson.dumps(answer), mimetype="application/json")


def load(rds: redis.Redis, n: int, yy: int) -> list[str]:
    rng = random.Random(42)
    codes = sorted({f"0123{yy:02d}{rng.randrange(10**12):012d}" for _ in range(n)})
    pipe = rds.pipeline(transaction=False)
    for i, code in enumerate(codes):
        bucket, field = place(code)
        pipe.hset(bucket, field, f"{i % 16},{i}")
        if i % 5000 == 4999:
            pipe.execute()
    pipe.execute()
    rng.shuffle(codes)
    return codes


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--codes", type=int, default=200_000)
    parser.add_argument("--duration", type=int, default=6)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/11")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    from bench.verify_bench import FLOOR, cpu_snapshot, start, wrk

    rds = redis.Redis.from_url(args.redis)
    rds.flushdb()
    codes = load(rds, args.codes, time.gmtime().tm_year % 100)
    work = Path(tempfile.mkdtemp(prefix="lean-prototype-"))
    (work / "first.txt").write_text("\n".join(codes[1000:]) + "\n")
    (work / "hot.txt").write_text("\n".join(codes[:1000]) + "\n")
    env = {**os.environ, "REDIS_URL": args.redis, "PYTHONPATH": str(ROOT)}
    floor_codes = subprocess.run(
        [sys.executable, str(FLOOR), "load", "1000"], env=env, check=True, capture_output=True, text=True
    ).stdout
    (work / "floor.txt").write_text(floor_codes)
    floor, floor_base = start("floor_app:app", env, FLOOR.parent, work / "floor.log")
    lean, lean_base = start("lean_prototype:app", env, Path(__file__).parent, work / "lean.log")
    runs = [
        ("b", floor, floor_base, "floor_redis", "floor.txt"),
        ("first", lean, lean_base, "first", "first.txt"),
        ("repeat", lean, lean_base, "repeat", "hot.txt"),
        ("get", lean, lean_base, "rget", "hot.txt"),
        ("guess", lean, lean_base, "guess", "hot.txt"),
    ]
    ratios: dict[str, list[float]] = {"first": [], "repeat": [], "get": [], "guess": []}
    cpu: dict[str, list[float]] = {name: [] for name, *_ in runs}
    by_process: dict[str, dict[str, list[float]]] = {name: {} for name, *_ in runs}
    try:
        for round_ in range(args.repeat):
            rps: dict[str, float] = {}
            for name, proc, base, mode, codes_file in runs:
                before = cpu_snapshot(os.getsid(proc.pid))
                got = wrk(base, mode, str(work / codes_file), args.duration, env, offset=round_ * 20_000)
                after = cpu_snapshot(os.getsid(proc.pid))
                n = got["rps"] * args.duration
                for k in after:
                    by_process[name].setdefault(k, []).append((after[k] - before[k]) / n * 1e6)
                cpu[name].append(sum(after[k] - before[k] for k in after) / n * 1e6)
                rps[name] = got["rps"]
                print(
                    f"round {round_ + 1} {name:7s} {got['rps']:7.0f} req/s  p50 {got['p50_ms']:6.2f} ms"
                    f"  errors {got['errors']}  non-2xx {got['non2xx']}  CPU/request {cpu[name][-1]:.0f} µs",
                    flush=True,
                )
            for name, values in ratios.items():
                values.append(rps[name] / rps["b"])
    finally:
        for proc in (floor, lean):
            proc.terminate()
            proc.wait()
    print("\nlean prototype, ratio to (b)   median (rounds)")
    for name, values in ratios.items():
        print(f"  {name:7s} {statistics.median(values):5.2f}  ({min(values):.2f}-{max(values):.2f})")
    print("CPU per request, µs (medians), by process:")
    for name, processes in by_process.items():
        parts = "  ".join(f"{k} {statistics.median(v):4.0f}" for k, v in processes.items())
        print(f"  {name:7s} {parts}  total {statistics.median(cpu[name]):4.0f}")


if __name__ == "__main__":
    main()
