"""Where a verify's CPU goes, stage by stage, next to the reference floors, in process.

`make bench` measures whole requests through gunicorn and reports ratios. This script
says why they are what they are: it calls the floor app (bench/floor_app.py;
--floor names another, e.g. ../shared/bench/floor_app.py) and this service as WSGI apps
in one process, on MariaDB + Redis, and times whole
requests and then each stage of the verify path alone, as CPU per call (the minimum
over interleaved rounds: the least the machine let it cost).

    python bench/verify_budget.py [--calls 2000] [--rounds 5]

The last lines set the stages against the floor (b): what a verify may cost for
(c) ≥ 0.9 × (b), and what it costs beyond the floor. gunicorn adds the same cost to
every request of both apps (reading and writing the socket; `make bench`'s CPU table
shows it), which the in-process ratio leaves out.
"""

from __future__ import annotations

import argparse
import io
import os
import random
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
# The repo carries its floors (same definitions as ../shared/bench/floor_app.py, which
# --floor can name instead) so the benchmarks run in a plain clone.
FLOOR = ROOT / "bench" / "floor_app.py"
sys.path.insert(0, str(ROOT))


def environ(method: str, path: str, body: bytes = b"", content_type: str = "") -> dict[str, Any]:
    env: dict[str, Any] = {
        "REQUEST_METHOD": method,
        "PATH_INFO": path,
        "QUERY_STRING": "",
        "SERVER_NAME": "bench",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "HTTP_HOST": "bench",
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(body),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": False,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
        "wsgi.version": (1, 0),
    }
    if body:
        env["CONTENT_LENGTH"] = str(len(body))
        env["CONTENT_TYPE"] = content_type
    return env


def call(app: Callable[..., Any], env: dict[str, Any]) -> bytes:
    status: list[str] = []
    out = app(env, lambda s, h, e=None: status.append(s))
    try:
        body = b"".join(out)
    finally:
        getattr(out, "close", lambda: None)()
    if not status[0].startswith("200"):
        raise SystemExit(f"{env['PATH_INFO']} answered {status[0]}: {body[:200]!r}")
    return body


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, default=2000, help="calls per stage per round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--codes", type=int, default=45_000, help="enough for the stages of codes not held")
    parser.add_argument("--mysql", default=os.environ.get("MYSQL_URL", "mysql+pymysql://root@127.0.0.1:3306"))
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/13")
    parser.add_argument("--db", default="ov_budget", help="the scratch database (dropped and made again)")
    parser.add_argument("--floor", type=Path, default=FLOOR, help="the floor app (default: the repo's own)")
    parser.add_argument(
        "--limits",
        action="store_true",
        help="rate limits on, as deployed: behind one proxy, each request its own IP",
    )
    parser.add_argument(
        "--profile",
        type=int,
        default=0,
        metavar="N",
        help="instead of the stages: cProfile N whole verify requests, print the top functions",
    )
    parser.add_argument(
        "--profile-kind",
        choices=["repeat", "first", "get", "new-shopper"],
        default="repeat",
        help="with --profile: POSTs of cached codes, first scans (each of a code never "
        "scanned), GETs of cached codes, or repeat scans of cached codes each by a shopper "
        "new to the code (`make bench`'s realistic repeat)",
    )
    parser.add_argument("--profile-out", metavar="FILE", help="with --profile: also save the stats (pstats)")
    args = parser.parse_args()
    floor_path = args.floor.resolve()
    if not floor_path.exists():
        raise SystemExit(f"reference floor app not found at {floor_path}")
    sys.path.insert(0, str(floor_path.parent))

    from bench.verify_bench import fresh_stores, load_codes

    db_url, _ = fresh_stores(args.mysql, args.redis, args.db)
    os.environ.update(
        BENCH_REDIS_URL=args.redis,
        REDIS_URL=args.redis,
        DATABASE_URL=db_url,
        SECRET_KEY="bench",
        RATE_LIMITS="on" if args.limits else "off",
        PROXY_COUNT="1" if args.limits else "0",
        EXPECTED_CODES=str(max(args.codes * 2, 100_000)),
        LOG_LEVEL="warning",
    )
    hot, cold = load_codes(db_url, args.codes, date.today().year % 100)
    if len(cold) < 4 * args.calls * args.rounds:
        raise SystemExit(f"--codes {args.codes} leaves too few never-scanned codes for the first-scan stages")
    floor_codes = subprocess.run(
        [sys.executable, str(floor_path), "load", "1000"],
        cwd=floor_path.parent,
        env=os.environ,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()

    import floor_app  # reads REDIS_URL when imported
    import orjson

    from anomaly.scripts import ScanReply
    from anomaly.state import RedisScanStore, _stored_flags
    from domain.codes import check_without_lookup, normalize
    from domain.scans import ScanInput
    from services import verify as verify_service
    from services.answers import Answer
    from services.verify import VerifyRequest
    from verify_api.presenter import answer_json
    from verify_api.public import parse_verify, respond
    from verify_api.request_input import json_body
    from webapp import container, create_app
    from webapp.settings import Settings

    app = create_app(Settings.from_env(), migrate=True)
    c = container(app)
    rng = random.Random(7)
    # Genuine traffic as in `make bench` (c): each code checked by one of its three shoppers.
    requests = [(code, f"{code}-{rng.randint(1, 3)}") for code in (rng.choice(hot) for _ in range(50_000))]
    turn = iter(range(10**12))

    def next_request() -> tuple[str, str]:
        return requests[next(turn) % len(requests)]

    def shopper_ip() -> str:  # every request its own, behind the one proxy
        return f"10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(256)}"

    def post_verify() -> bytes:
        return post(*next_request())

    def post(code: str, client: str) -> bytes:
        body = b'{"input":"%s","channel":"qr","client":"%s"}' % (code.encode(), client.encode())
        env = environ("POST", "/api/v1/verify", body, "application/json")
        if args.limits:
            env["HTTP_X_FORWARDED_FOR"] = shopper_ip()
        return call(app, env)

    def new_shopper() -> bytes:  # `make bench`'s realistic repeat: every scan a new client
        return post(rng.choice(hot), f"r-{next(turn)}")

    def get_code() -> bytes:
        env = environ("GET", "/api/v1/codes/" + next_request()[0])
        if args.limits:
            env["HTTP_X_FORWARDED_FOR"] = shopper_ip()
        return call(app, env)

    # First scans, each of a code no worker has seen: resolved by the scan script in its one
    # round trip, or by this worker (the projection's HGET, then the script with a verdict).
    unseen = iter(cold)
    in_store = c.resolver.in_store

    def first_scan(by_script: bool) -> Callable[[], bytes]:
        def run() -> bytes:
            c.resolver.in_store = in_store if by_script else None
            return post(next(unseen), f"first-{rng.randrange(10**9)}")

        return run

    def get_unheld(by_script: bool) -> Callable[[], bytes]:
        def run() -> bytes:
            c.resolver.in_store = in_store if by_script else None
            env = environ("GET", "/api/v1/codes/" + next(unseen))
            if args.limits:
                env["HTTP_X_FORWARDED_FOR"] = shopper_ip()
            return call(app, env)

        return run

    def service_call() -> Answer:
        code, client = next_request()
        return c.verify.verify(VerifyRequest(input=code, channel="qr", client=client, ip="127.0.0.1"))

    floor_env = lambda path: environ("GET", path + rng.choice(floor_codes))  # noqa: E731
    sample_body = b'{"input":"%s","channel":"qr","client":"x-1"}' % hot[0].encode()
    parsed = normalize(hot[0])
    resolution = c.resolver.resolve(parsed)
    scan_input = ScanInput(
        code=hot[0],
        kind="organic",
        at=datetime.now(UTC),
        channel="qr",
        verdict="genuine",
        client="x-1",
        ip="127.0.0.1",
    )
    recorder = c.scans.store
    assert isinstance(recorder, RedisScanStore)  # the bench runs on Redis (--redis)
    captured: dict[str, Any] = {}
    original_script = recorder.script

    def capture(keys: list[str], args: list[Any]) -> Any:
        captured.update(keys=keys, args=args, raw=original_script(keys=keys, args=args))
        return captured["raw"]

    # Warm every tier as `make bench` does, then keep one real call's Redis arguments and
    # reply: a shopper new to a code that three others checked (its rules run).
    for _ in range(3 * len(hot)):
        post_verify()
    if args.profile:
        import cProfile
        import pstats

        profiler = cProfile.Profile(time.process_time)  # CPU, not the wait for Redis
        # The Redis server's own view: which commands (those the scripts call included)
        # the N requests cost it, from INFO commandstats (reset first; a neighbour's
        # commands on the same server count too, so run it on a quiet one).
        floor_app._redis.config_resetstat()
        profiler.enable()
        request = {
            "repeat": post_verify,
            "first": first_scan(True),
            "get": get_code,
            "new-shopper": new_shopper,
        }[args.profile_kind]
        for _ in range(args.profile):
            request()
        profiler.disable()
        commands = floor_app._redis.info("commandstats")
        total_us = sum(v["usec"] for v in commands.values())
        print(f"Redis commands per request ({args.profile:,} requests; usec as Redis counts them)")
        for name, v in sorted(commands.items(), key=lambda kv: -kv[1]["usec"]):
            print(
                f"  {name.removeprefix('cmdstat_'):22s} {v['calls'] / args.profile:6.2f} calls"
                f" {v['usec'] / args.profile:8.2f} µs  ({v['usec_per_call']:.2f} µs a call)"
            )
        print(f"  {'all':22s} {'':12s} {total_us / args.profile:8.2f} µs\n")
        if args.profile_out:
            profiler.dump_stats(args.profile_out)
        stats = pstats.Stats(profiler)
        stats.sort_stats("tottime").print_stats(45)
        stats.sort_stats("cumulative").print_stats(60)
        return
    recorder.script = capture
    c.scans.record(scan_input)
    recorder.script = original_script
    event = c.scans.event(scan_input)
    answer = c.verify.verify(VerifyRequest(input=hot[0], channel="qr", client="x-1", ip="127.0.0.1"))
    pipe_client = floor_app._redis

    def rules() -> list[Any]:
        # What `_outcome` does with a new scanner's reply, short of writing a flag (a
        # replayed reply would raise the same flag on every call).
        reply = ScanReply._make(captured["raw"])
        stored = _stored_flags([x.decode() for x in reply.flags])
        return recorder.code_rules(event, reply, stored)

    def floor_pipeline() -> None:
        pipe = pipe_client.pipeline(transaction=False)
        pipe.get(b"floor:c:" + hot[0].encode())
        pipe.incr(b"floor:n:x")
        pipe.pfadd(b"floor:u:x", "127.0.0.1")
        pipe.xadd(b"floor:scans", {b"c": b"x", b"t": b"1"}, maxlen=100_000, approximate=True)
        pipe.execute()

    def in_request(fn: Callable[[], Any]) -> Callable[[], Any]:
        def run() -> Any:
            with app.request_context(environ("POST", "/api/v1/verify", sample_body, "application/json")):
                return fn()

        return run

    stages: list[tuple[str, str, Callable[[], Any]]] = [
        (
            "a",
            "floor (a): whole request, constant 1 KB",
            lambda: call(floor_app.app, floor_env("/floor/hello/")),
        ),
        (
            "b",
            "floor (b): whole request, one pipelined round trip",
            lambda: call(floor_app.app, floor_env("/floor/redis/")),
        ),
        ("c", "verify (c): whole request, cached code", post_verify),
        ("first", "first scan: whole request, resolved by the script", first_scan(True)),
        ("first_w", "first scan: whole request, resolved by the worker", first_scan(False)),
        ("get_s", "GET of a code not held: resolved by the script", get_unheld(True)),
        ("get_w", "GET of a code not held: resolved by the worker", get_unheld(False)),
        ("flask", "our app: GET /healthz, whole request", lambda: call(app, environ("GET", "/healthz"))),
        ("ctx", "a request context of the verify POST, nothing in it", in_request(lambda: None)),
        (
            "body",
            "  body read, JSON parsed, validated (beyond it)",
            in_request(lambda: parse_verify(json_body())),
        ),
        (
            "normalize",
            "normalize + checks without lookup",
            lambda: check_without_lookup(
                normalize(hot[0]), today=date.today(), known_bodies=c.resolver.known_bodies()
            ),
        ),
        ("resolve", "resolve the record (this worker's memory)", lambda: c.resolver.resolve(parsed)),
        ("event", "build the scan event (hashes, place)", lambda: c.scans.event(scan_input)),
        (
            "script",
            "the scan script's round trip, a repeat scan (redis-py)",
            lambda: original_script(keys=captured["keys"], args=captured["args"]),
        ),
        ("pipeline", "the floor's pipeline of four (redis-py)", floor_pipeline),
        ("rules", "the returned state parsed, rules run on it", rules),
        (
            "verdict",
            "verdict + answer document",
            lambda: answer_json(
                verify_service._answer(
                    parsed.code,
                    parsed.kind,
                    verify_service._registry_verdict(resolution, date.today()),
                    (),
                    resolution,
                    None,
                    date.today(),
                ),
                "zh",
            ),
        ),
        (
            "respond",
            "  orjson + the Response (beyond the context)",
            in_request(lambda: respond(answer_json(answer, "zh"))),
        ),
        ("service", "the whole verify service call", service_call),
    ]
    best: dict[str, float] = {}
    # The Redis server's own CPU beside ours: a script's cost lands there, not in this
    # process (the main thread's, so a neighbour's background save does not count).
    redis_cpu = lambda: sum(  # noqa: E731
        float(v)
        for k, v in pipe_client.info("cpu").items()
        if k in ("used_cpu_user_main_thread", "used_cpu_sys_main_thread")
    )
    best_redis: dict[str, float] = {}
    for round_ in range(args.rounds):
        for key, _, fn in stages:
            r0 = redis_cpu()
            t0 = time.process_time()
            for _ in range(args.calls):
                fn()
            per_call = (time.process_time() - t0) / args.calls * 1e6
            best[key] = min(best.get(key, per_call), per_call)
            on_redis = (redis_cpu() - r0) / args.calls * 1e6
            best_redis[key] = min(best_redis.get(key, on_redis), on_redis)
        print(f"round {round_ + 1}/{args.rounds} done", file=sys.stderr, flush=True)

    print(f"\nCPU per call, µs (min of {args.rounds} rounds of {args.calls:,} calls), in process")
    for key in ("body", "respond"):  # timed inside a request context: shown beyond it
        best[key] -= best["ctx"]
    print(f"  {'':52s} {'app':>8s} {'Redis':>8s}")
    for key, label, _ in stages:
        print(f"  {label:52s} {best[key]:8.1f} {best_redis[key]:8.1f}")
    b, cc = best["b"], best["c"]
    print(f"\n  (c)/(b) in process                                   {b / cc:8.2f}")
    print(f"  (c) may cost for 0.9 × (b)                           {b / 0.9:8.1f}")
    print(f"  (c) costs beyond (b)                                 {cc - b:8.1f}")
    print(f"  the scan script beyond the floor's pipeline          {best['script'] - best['pipeline']:8.1f}")
    if in_store is None:
        print("  (the scan store is not the projection's server here: both first-scan rows are the worker's)")
    size = len(orjson.dumps(answer_json(answer, "zh")))
    print(f"  response size: floor {len(floor_app._BODY) + 16} B, verify {size} B")


if __name__ == "__main__":
    main()
