"""Scan-history simulator: genuine shoppers and copy campaigns replayed through the HTTP API.

Genuine codes are scanned the ways real bags are: one shopper re-checking at home, a
household, a gift carried to another city, a shopper re-checking on a trip. Copied codes
are one genuine code printed on many fakes: each fake is checked by a different person,
in cities spread over the country, over days. Every event goes through
`POST /api/v1/admin/scans` with its own timestamp (the same rules as live scans, in
event-time order), then the flags are read back with `GET /api/v1/admin/flags`.

Every person scans from an IP of their own network (a household shares its home's), as
the rules now count identities by network (issue 14). After the replay, a poisoning
attacker (made-up client ids and coordinates 3,000 km apart, one IP, no login) goes after
genuine codes through the public `POST /api/v1/verify`: its verdict flips must be 0.

Reports: recall (copied codes flagged suspicious by their 10th foreign scanner), the
share of genuine scanned codes flagged suspicious, how many foreign scans it took, and
the poisoning attacker's flips.

    python bench/scan_simulator.py [--genuine 3000] [--copied 150] [--seed 7]
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import statistics
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pymysql
import redis
import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from verify_bench import load_codes, start  # noqa: E402

TOKEN = "simulator-token"
CITIES = [  # (lat, lng) of a spread of Chinese cities
    (39.90, 116.40),
    (31.23, 121.47),
    (23.13, 113.26),
    (22.54, 114.06),
    (30.27, 120.15),
    (30.57, 104.07),
    (29.56, 106.55),
    (34.27, 108.95),
    (30.59, 114.31),
    (32.06, 118.80),
    (36.07, 120.38),
    (38.04, 114.51),
    (41.80, 123.43),
    (45.80, 126.53),
    (43.82, 125.32),
    (36.65, 117.12),
    (34.75, 113.63),
    (28.23, 112.94),
    (26.07, 119.30),
    (25.04, 102.71),
    (26.65, 106.63),
    (22.82, 108.32),
    (20.04, 110.34),
    (36.06, 103.83),
    (38.49, 106.23),
    (43.83, 87.62),
    (29.65, 91.13),
    (40.84, 111.75),
    (37.87, 112.55),
    (31.82, 117.23),
]


def new_ip() -> str:
    """A random public-looking address: a person's own network (only ever a string here,
    sent in the import rows; nothing is contacted)."""
    return ".".join(str(random.randint(1, 223 if i == 0 else 254)) for i in range(4))


def jitter(place: tuple[float, float], km: float = 8) -> dict[str, float]:
    d = km / 111
    return {"lat": place[0] + random.uniform(-d, d), "lng": place[1] + random.uniform(-d, d)}


def genuine_history(code: str, start: datetime, n: int) -> list[dict]:
    """One bag's checks, by one of the everyday patterns."""
    home = random.choice(CITIES)
    buyer = f"g-{n}-buyer"
    home_ip = new_ip()
    ips = {buyer: home_ip}
    t = start + timedelta(hours=random.uniform(0, 24 * 20))
    events = [(t, buyer, home)]
    pattern = random.choices(["repeat", "household", "gift", "trip", "once"], weights=[30, 20, 15, 10, 25])[0]
    if pattern == "repeat":
        for _ in range(random.randint(1, 4)):
            t += timedelta(hours=random.uniform(0.1, 72))
            events.append((t, buyer, home))
    elif pattern == "household":
        for member in range(random.randint(1, 3)):
            t += timedelta(hours=random.uniform(0.5, 48))
            events.append((t, f"g-{n}-family{member}", home))
            ips[f"g-{n}-family{member}"] = home_ip
    elif pattern == "gift":
        t += timedelta(days=random.uniform(1, 10))
        events.append((t, f"g-{n}-friend", random.choice(CITIES)))
        ips[f"g-{n}-friend"] = new_ip()
        if random.random() < 0.5:
            t += timedelta(hours=random.uniform(1, 48))
            events.append((t, f"g-{n}-friend", events[-1][2]))
    elif pattern == "trip":
        for _ in range(random.randint(1, 3)):
            t += timedelta(hours=random.uniform(3, 96))
            events.append((t, buyer, random.choice(CITIES)))
    return [
        {
            "event_id": f"{code}-{i}",
            "code": code,
            "at": at.isoformat(),
            "channel": "qr",
            "client": who,
            "location": jitter(where),
            # On a trip the buyer's phone is on another network.
            "ip": ips[who] if where == home or who != buyer else new_ip(),
        }
        for i, (at, who, where) in enumerate(events)
    ]


def campaign_history(code: str, start: datetime, n: int) -> list[dict]:
    """One genuine code on many fakes: a distinct person per fake, cities far apart, over days."""
    owner_city = random.choice(CITIES)
    t = start + timedelta(hours=random.uniform(0, 24 * 10))
    events = [(t, f"c-{n}-owner", owner_city)]
    regions = random.sample(CITIES, k=random.randint(3, 12))
    for i in range(random.randint(15, 40)):
        t += timedelta(hours=random.expovariate(1 / 6))
        events.append((t, f"c-{n}-fake{i}", random.choice(regions)))
    return [
        {
            "event_id": f"{code}-{i}",
            "code": code,
            "at": at.isoformat(),
            "channel": "qr",
            "client": who,
            "location": jitter(where),
            "ip": new_ip(),  # a different person per fake: their own network
        }
        for i, (at, who, where) in enumerate(events)
    ]


def poison(http: requests.Session, base: str, codes: list[str]) -> tuple[int, int]:
    """The attack of issue 14 on each code: two made-up clients 3,000 km apart (Harbin,
    Urumqi) within a minute, then five more made-up clients all over the country, from one
    IP with no login; then a shopper asks. Returns (verdict flips, first places rewritten)."""
    flips = rewritten = 0
    places = [(45.80, 126.53), (43.83, 87.62), *random.sample(CITIES, 5)]
    for code in codes:
        before = http.post(base + "/api/v1/verify", json={"input": code}, timeout=30).json()
        for i, (lat, lng) in enumerate(places):
            body: dict[str, Any] = {
                "input": code,
                "client": f"made-up-{code}-{i}",
                "location": {"lat": lat, "lng": lng},
            }
            http.post(base + "/api/v1/verify", json=body, timeout=30)
        after = http.post(base + "/api/v1/verify", json={"input": code}, timeout=30).json()
        flips += before["verdict"] == "genuine" and after["verdict"] != "genuine"
        rewritten += before["scans"]["first_city"] != after["scans"]["first_city"]
    return flips, rewritten


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--genuine", type=int, default=3000)
    parser.add_argument("--copied", type=int, default=150)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--poisoned", type=int, default=300, help="genuine codes the attacker goes after")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/12")
    args = parser.parse_args()
    random.seed(args.seed)

    conn = pymysql.connect(host="127.0.0.1", user="root", autocommit=True)
    with conn.cursor() as cur:
        cur.execute("DROP DATABASE IF EXISTS ov_sim")
        cur.execute("CREATE DATABASE ov_sim CHARACTER SET utf8mb4")
    db_url = "mysql+pymysql://root@127.0.0.1:3306/ov_sim"
    redis.Redis.from_url(args.redis).flushdb()
    os.environ["BENCH_REDIS_URL"] = args.redis
    yy = date.today().year % 100
    hot, cold = load_codes(db_url, args.genuine + args.copied, yy)
    codes = hot + cold
    random.shuffle(codes)
    copied, genuine = codes[: args.copied], codes[args.copied :]

    work = Path(tempfile.mkdtemp(prefix="scan-sim-"))
    env = {
        **os.environ,
        "REDIS_URL": args.redis,
        "DATABASE_URL": db_url,
        "SECRET_KEY": "sim",
        "ADMIN_BOOTSTRAP_TOKEN": TOKEN,
        "RATE_LIMITS": "off",
        "PYTHONPATH": str(ROOT),
    }
    app, base = start("wsgi:app", env, ROOT, work / "app.log")
    try:
        http = requests.Session()
        http.headers["Authorization"] = f"Bearer {TOKEN}"
        start_at = datetime.now(UTC) - timedelta(days=40)
        histories = {c: genuine_history(c, start_at, i) for i, c in enumerate(genuine)}
        histories |= {c: campaign_history(c, start_at, i) for i, c in enumerate(copied)}
        events = sorted((e for h in histories.values() for e in h), key=lambda e: e["at"])
        t0 = time.perf_counter()
        for i in range(0, len(events), 500):
            resp = http.post(base + "/api/v1/admin/scans", json=events[i : i + 500], timeout=120)
            resp.raise_for_status()
            assert not resp.json()["rejected"], resp.json()["rejected"][:3]
            print(f"\r{min(i + 500, len(events)):,}/{len(events):,} events replayed", end="", flush=True)
        elapsed = time.perf_counter() - t0
        print(f"\nreplayed {len(events):,} events in {elapsed:.1f}s ({len(events) / elapsed:,.0f} events/s)")
        first_suspicious: dict[str, str] = {}
        cursor = None
        while True:
            page = http.get(
                base + "/api/v1/admin/flags",
                params={"severity": "suspicious", "limit": 500, **({"cursor": cursor} if cursor else {})},
            ).json()
            for item in page["items"]:
                if item["code"] not in first_suspicious or item["raised_at"] < first_suspicious[item["code"]]:
                    first_suspicious[item["code"]] = item["raised_at"]
            cursor = page["next"]
            if not cursor:
                break
        # Codes the replay left genuine (their flags would already make them suspicious).
        targets = [c for c in genuine if c not in first_suspicious][: args.poisoned]
        flips, rewritten = poison(requests.Session(), base, targets)
    finally:
        os.killpg(app.pid, signal.SIGTERM)
        app.wait(timeout=30)

    def foreign_before_flag(code: str) -> int | None:
        raised = first_suspicious.get(code)
        if raised is None:
            return None
        raised_dt = datetime.fromisoformat(raised.replace("Z", "+00:00"))
        # The database keeps whole seconds: compare at that precision.
        return sum(
            1
            for e in histories[code][1:]
            if datetime.fromisoformat(e["at"]).replace(microsecond=0) <= raised_dt
        )

    counts = [foreign_before_flag(c) for c in copied]
    flagged = [n for n in counts if n is not None]
    by_tenth = sum(1 for n in flagged if n <= 10)
    fp = sum(1 for c in genuine if c in first_suspicious)
    print(
        f"copied codes: {len(copied)}; flagged suspicious by the 10th foreign scanner: {by_tenth} "
        f"({by_tenth / len(copied):.1%}; goal >= 95%); flagged at all: {len(flagged)}"
    )
    if flagged:
        flagged.sort()
        p90 = flagged[min(len(flagged) - 1, int(0.9 * len(flagged)))]
        print(f"foreign scans before the flag: median {statistics.median(flagged):.0f}, p90 {p90}")
    print(
        f"genuine scanned codes: {len(genuine)}; flagged suspicious: {fp} "
        f"({fp / len(genuine):.2%}; goal <= 0.1%)"
    )
    print(
        f"poisoning attacker (7 made-up clients, coordinates 3,000 km apart, one IP) on "
        f"{len(targets)} genuine codes: verdict flips {flips} (goal 0); first places rewritten {rewritten}"
    )


if __name__ == "__main__":
    main()
