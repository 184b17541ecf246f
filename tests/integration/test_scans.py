"""Scan intelligence on real Redis and MariaDB (and the in-process twin): one round trip per
verify, answers that include this scan, flags with evidence, review, idempotent imports,
the stream worker's at-least-once delivery, enumeration throttling."""

from __future__ import annotations

import threading
import time
from datetime import UTC, date, datetime, timedelta

import pytest
import redis as redis_lib
from flask import Flask
from flask.testing import FlaskClient

from anomaly.state import STREAM
from anomaly.worker import GROUP, StreamWorker
from tests.conftest import ADMIN
from webapp import container
from webapp.demo import seed

CITIES = [
    (30.27, 120.15),
    (39.90, 116.40),
    (23.13, 113.26),
    (31.23, 121.47),
    (30.57, 104.07),
    (34.27, 108.95),
]


@pytest.fixture
def demo(any_app: Flask) -> dict[str, str]:
    return seed(container(any_app).admin, date.today())


def persist(app: Flask) -> None:
    """What `flask worker` does in production: drain the event and flag streams into SQL."""
    c = container(app)
    if c.redis is not None:
        client = redis_lib.Redis.from_url(c.settings.redis_url or "")
        StreamWorker(client, c.scan_sql.write_events, c.scan_sql.upsert_flag, claim_idle_ms=0).drain()
        client.close()


def verify(
    client: FlaskClient,
    code: str,
    who: str | None = None,
    where: tuple[float, float] | None = None,
    ip: str | None = None,
) -> dict:
    body: dict = {"input": code}
    if who:
        body["client"] = who
    if where:
        body["location"] = {"lat": where[0], "lng": where[1]}
    resp = client.post("/api/v1/verify", json=body, environ_base={"REMOTE_ADDR": ip} if ip else {})
    assert resp.status_code == 200, resp.get_data(as_text=True)
    return resp.get_json()


def test_answers_include_the_scan_being_made(any_app: Flask, demo: dict[str, str]) -> None:
    http = any_app.test_client()
    # The first place shown is the IP's city (223.5.5.5 is in Hangzhou for ip2region; the
    # address is only a string here): coordinates in a public request are only a claim.
    first = verify(http, demo["genuine"], "alice", ip="223.5.5.5")
    assert first["scans"]["count"] == 1 and first["scans"]["first_city"] == "杭州市"
    assert first["scans"]["you"]["count"] == 1
    again = verify(http, demo["genuine"], "alice", CITIES[1])
    assert again["scans"]["count"] == 2 and again["scans"]["first_at"] == first["scans"]["first_at"]
    assert again["scans"]["you"]["count"] == 2 and again["flags"] == [] and again["verdict"] == "genuine"
    bob = verify(http, demo["genuine"], "bob")
    assert bob["scans"]["you"] == {"count": 1, "first_at": bob["scans"]["you"]["first_at"]}
    assert bob["scans"]["distinct_scanners"] == 2
    peek = http.get(f"/api/v1/codes/{demo['certificate_revoked']}").get_json()
    assert peek["scans"]["count"] == 0


def test_a_copied_code_turns_suspicious_and_the_brand_sees_why(any_app: Flask, demo: dict[str, str]) -> None:
    http = any_app.test_client()
    # Five shoppers on five different networks: what a copy sold across the country looks like.
    answers = [
        verify(http, demo["genuine"], f"shopper{i}", CITIES[i], ip=f"203.0.{113 + i}.9") for i in range(5)
    ]
    assert answers[0]["verdict"] == "genuine"
    assert answers[-1]["verdict"] == "suspicious"
    rules = {f["rule"]: f["severity"] for f in answers[-1]["flags"]}
    assert rules["distinct_scanners"] == "suspicious"
    # Claimed coordinates alone open these for review, never more.
    assert rules["impossible_travel"] == rules["province_spread"] == "warn"
    persist(any_app)
    listed = http.get("/api/v1/admin/flags?rule=distinct_scanners", headers=ADMIN).get_json()
    flag = listed["items"][0]
    assert flag["code"] == demo["genuine"] and flag["severity"] == "suspicious" and flag["status"] == "open"
    assert len(flag["evidence"]["scans"]) == 5
    # The brand reviews: each copy flag dismissed as a false alarm → the next answer is genuine.
    for item in http.get("/api/v1/admin/flags", headers=ADMIN).get_json()["items"]:
        resp = http.patch(
            f"/api/v1/admin/flags/{item['id']}", json={"status": "dismissed", "note": "family"}, headers=ADMIN
        )
        assert resp.status_code == 200
    assert verify(http, demo["genuine"], "shopper0")["verdict"] == "genuine"


def test_historical_scans_import_through_the_rules_idempotently(any_app: Flask, demo: dict[str, str]) -> None:
    http = any_app.test_client()
    start = datetime(2026, 3, 1, tzinfo=UTC)
    rows = [
        {
            "event_id": f"old-{i}",
            "code": demo["genuine (legacy 17-digit)"],
            "at": (start + timedelta(hours=i)).isoformat(),
            "channel": "qr",
            "client": f"partner-user-{i}",
            "location": {"lat": CITIES[i][0], "lng": CITIES[i][1]},
        }
        for i in range(6)
    ]
    rows.append({"event_id": "bad", "code": demo["genuine"]})  # no time
    first = http.post("/api/v1/admin/scans", json=rows, headers=ADMIN).get_json()
    assert first["accepted"] == 6 and first["rejected"][0]["row"] == 6
    flags = http.get("/api/v1/admin/flags?severity=suspicious", headers=ADMIN).get_json()["items"]
    assert {f["code"] for f in flags} == {demo["genuine (legacy 17-digit)"]}
    again = http.post("/api/v1/admin/scans", json=rows[:6], headers=ADMIN).get_json()
    assert again["accepted"] == 6
    after = verify(http, demo["genuine (legacy 17-digit)"])
    assert after["scans"]["count"] == 7  # six imported once, plus this one
    assert after["scans"]["first_at"].startswith("2026-03-01T00:00")


def test_flag_list_is_scoped_filtered_and_paged(any_app: Flask, demo: dict[str, str]) -> None:
    http = any_app.test_client()
    for i in range(5):
        verify(http, demo["genuine"], f"s{i}", CITIES[i])
    persist(any_app)
    c = container(any_app)
    other = c.admin.create_token("other body", "all", None)
    page = http.get("/api/v1/admin/flags?limit=1", headers={"Authorization": f"Bearer {other}"}).get_json()
    assert len(page["items"]) == 1 and page["next"]
    page2 = http.get(f"/api/v1/admin/flags?limit=1&cursor={page['next']}", headers=ADMIN).get_json()
    assert page2["items"][0]["id"] != page["items"][0]["id"]
    c.admin.upsert_bodies(
        [{"code": "0456", "name": "另一认证中心"}], c.admin.authenticate("test-bootstrap-token")
    )
    foreign = c.admin.create_token("foreign", "body", "0456")
    assert (
        http.get("/api/v1/admin/flags", headers={"Authorization": f"Bearer {foreign}"}).get_json()["items"]
        == []
    )
    flag_id = page["items"][0]["id"]
    resp = http.patch(
        f"/api/v1/admin/flags/{flag_id}",
        json={"status": "confirmed"},
        headers={"Authorization": f"Bearer {foreign}"},
    )
    assert resp.status_code == 404
    for query in ("severity=high", "since=yesterday", "cursor=zzz", "limit=x"):
        bad = http.get(f"/api/v1/admin/flags?{query}", headers=ADMIN)
        assert bad.status_code == 400 and bad.mimetype == "application/problem+json"


def test_a_guesser_is_throttled_and_never_becomes_a_first_scan(any_app: Flask, demo: dict[str, str]) -> None:
    container(any_app).verify.throttle = True  # as with RATE_LIMITS on
    http = any_app.test_client()
    yy = date.today().year % 100
    statuses = [
        http.post("/api/v1/verify", json={"input": f"0123{yy:02d}9{i:011d}", "client": "guesser"}).status_code
        for i in range(12)
    ]
    assert statuses[:10] == [200] * 10 and statuses[-1] == 429
    blocked = http.post("/api/v1/verify", json={"input": demo["genuine"], "client": "guesser"})
    assert blocked.status_code == 429 and blocked.get_json()["code"] == "enumeration_throttled"
    real = verify(http, demo["genuine"], "shopper")
    assert real["scans"]["you"]["first_at"] == real["scans"]["first_at"]


def test_one_redis_round_trip_per_verify(service_app: Flask, redis_url: str) -> None:
    """MONITOR shows every command a client sends; commands a script runs are marked "lua"."""
    http = service_app.test_client()
    c = container(service_app)
    code = seed(c.admin, date.today())["genuine"]
    verify(http, code, "warm")  # fills this worker's record tiers
    seen: list[str] = []
    marker = redis_lib.Redis.from_url(redis_url)
    marker.ping()  # its connection handshake happens before MONITOR starts
    monitor_client = redis_lib.Redis.from_url(redis_url)
    with monitor_client.monitor() as monitor:

        def listen() -> None:
            for message in monitor.listen():
                # Only this test's database (other processes may share the server), and not
                # the commands the script itself runs.
                if message.get("client_type") != "lua" and message.get(
                    "db"
                ) == marker.connection_pool.connection_kwargs.get("db", 0):
                    seen.append(message["command"])
                if message["command"].startswith("ECHO"):
                    return

        listener = threading.Thread(target=listen, daemon=True)
        listener.start()
        time.sleep(0.2)
        c.resolver._checked_at = time.monotonic()  # keep the 5-per-second generation read out of the count
        verify(http, code, "warm")
        marker.execute_command("ECHO", "done")
        listener.join(timeout=5)
    sent = [cmd.split()[0].upper() for cmd in seen if not cmd.startswith("ECHO")]
    marker.close()
    monitor_client.close()
    assert sent == ["EVALSHA"]


def test_the_worker_drains_events_once_and_reclaims_a_dead_consumers(
    service_app: Flask, redis_client: redis_lib.Redis
) -> None:
    c = container(service_app)
    code = seed(c.admin, date.today())["genuine"]
    http = service_app.test_client()
    for i in range(7):
        verify(http, code, f"w{i}")
    worker = StreamWorker(
        redis_client, c.scan_sql.write_events, c.scan_sql.upsert_flag, consumer="a", claim_idle_ms=0
    )
    # Consumer "dead" reads three entries and dies before acknowledging them.
    redis_client.xreadgroup(GROUP, "dead", {STREAM: ">"}, count=3)
    worker.drain()
    assert worker.stats.reclaimed >= 3
    assert c.scan_sql.count_events() == 7
    assert redis_client.xpending(STREAM, GROUP)["pending"] == 0
    worker.drain()  # nothing new: still seven, no duplicates
    redis_client.xadd(STREAM, {k: v for k, v in redis_client.xrange(STREAM, count=1)[0][1].items()})
    worker.drain()  # a redelivered event (same id) is stored once
    assert c.scan_sql.count_events() == 7


def test_scan_store_outage_answers_without_scans(mysql_db: str) -> None:
    from tests.conftest import make_app, settings_for

    app = make_app(settings_for(mysql_db, "redis://127.0.0.1:1/0"))
    resp = app.test_client().post("/api/v1/verify", json={"input": "012326000000000001"})
    assert resp.status_code == 200 and resp.get_json()["scans"] is None


def test_codes_beyond_the_certified_quantity_and_scans_off_market_are_flagged(
    any_app: Flask, demo: dict[str, str]
) -> None:
    """A product certified for 10 kg in 5 kg bags, sold only in Zhejiang: a third distinct
    code on shelves cannot be certified goods; a scan in Beijing is outside the region."""
    http = any_app.test_client()
    yy = date.today().year % 100
    number = f"0123OP{yy:02d}00077"
    cert = {
        "number": number,
        "body_code": "0123",
        "holder": "浙江示范茶园",
        "valid_from": date.today().replace(month=1, day=1).isoformat(),
        "valid_until": date.today().replace(month=12, day=31).isoformat(),
        "products": [{"name": "有机绿茶", "certified_tonnes": "0.010", "sales_regions": ["浙江", "上海市"]}],
    }
    resp = http.post("/api/v1/admin/certificates", json=[cert], headers=ADMIN)
    assert resp.status_code == 200 and resp.get_json()["accepted"] == 1, resp.get_data(as_text=True)
    codes = [f"0123{yy:02d}77000000000{i}" for i in range(4)]
    rows = [
        {
            "code": c,
            "certificate": number,
            "product": "有机绿茶",
            "package": "5kg",
            "issued_on": cert["valid_from"],
        }
        for c in codes
    ]
    assert http.post("/api/v1/admin/codes", json=rows, headers=ADMIN).get_json()["accepted"] == 4
    hangzhou, shanghai, beijing = CITIES[0], CITIES[3], CITIES[1]
    first = verify(http, codes[0], "a", hangzhou)
    assert first["verdict"] == "genuine", first
    assert verify(http, codes[1], "b", shanghai)["verdict"] == "genuine"
    assert verify(http, codes[1], "b", hangzhou)["flags"] == []  # a code already counted
    third = verify(http, codes[2], "c", hangzhou)
    assert third["verdict"] == "suspicious"
    assert [(f["rule"], f["severity"]) for f in third["flags"]] == [("over_quantity", "suspicious")]
    off = verify(http, codes[0], "a", beijing)  # the same shopper: no travel, only the region
    assert off["verdict"] == "genuine"
    assert [(f["rule"], f["severity"]) for f in off["flags"]] == [("off_market", "warn")]
    persist(any_app)
    items = http.get("/api/v1/admin/flags?rule=over_quantity", headers=ADMIN).get_json()["items"]
    assert [i["code"] for i in items] == [codes[2]]
    assert items[0]["evidence"] == {
        "distinct_codes": 3,
        "per_package_kg": {"5": 3},
        "seen_tonnes": 0.015,
        "certified_tonnes": 0.01,
    }
    off_items = http.get("/api/v1/admin/flags?rule=off_market", headers=ADMIN).get_json()["items"]
    assert off_items[0]["evidence"]["province"] == "北京市"
    assert off_items[0]["evidence"]["declared"] == ["上海市", "浙江省"]
    # Where nothing is declared (the demo products), no scan is ever off-market.
    assert verify(http, demo["genuine"], "e", beijing)["flags"] == []
    # A region list that is not a list of names is that row's error; the other rows land.
    bad = {
        **cert,
        "number": f"0123OP{yy:02d}00078",
        "products": [{"name": "x", "sales_regions": ["浙江省,上海市"]}],
    }
    good = {**cert, "number": f"0123OP{yy:02d}00079"}
    nowhere = {
        **cert,
        "number": f"0123OP{yy:02d}00080",
        "products": [{"name": "x", "sales_regions": ["火星"]}],
    }
    result = http.post("/api/v1/admin/certificates", json=[bad, good, nowhere], headers=ADMIN).get_json()
    assert result["accepted"] == 1 and [r["row"] for r in result["rejected"]] == [0, 2]
    assert result["rejected"][1]["code"] == "unknown_region"
