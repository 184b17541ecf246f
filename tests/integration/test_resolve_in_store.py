"""A code this worker does not hold is resolved by the scan script itself (anomaly/scan.lua,
one server): a first scan is one round trip to Redis, answered and recorded as when the
worker resolves the code first, on MariaDB + Redis."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import orjson
import pytest
import redis as redis_lib
from flask import Flask

from cache import keys
from domain import metrics
from domain.bulk import Scope
from domain.china_time import china_today
from registry.engine import make_engine
from tests.conftest import make_app, settings_for
from webapp import container
from webapp.demo import seed

ALL = Scope("all", None, None, "test")
YY = f"{date.today().year % 100:02d}"
CERT = f"0123OP{YY}00017"


def _world(app: Flask, n: int) -> list[str]:
    c = container(app)
    c.admin.upsert_bodies([{"code": "0123", "name": "Test body"}], ALL)
    c.admin.upsert_certificates(
        [
            {
                "number": CERT,
                "body_code": "0123",
                "holder": "示范农场",
                "valid_from": f"20{YY}-01-01",
                "valid_until": f"20{YY}-12-31",
                "products": [{"name": "有机大米", "certified_tonnes": 100}],
            }
        ],
        ALL,
    )
    codes = [f"0123{YY}{i:012d}" for i in range(n)]
    rows = [{"code": code, "certificate": CERT, "product": "有机大米", "package": "5千克"} for code in codes]
    assert container(app).admin.import_codes(rows, ALL).accepted == n
    return codes


class _Calls:
    """Counts the scan script's calls and the projection's own reads in this process."""

    def __init__(self, app: Flask, monkeypatch: pytest.MonkeyPatch) -> None:
        c = container(app)
        self.script = self.projection = 0
        store, projection = c.scans.store, c.projection
        script, get = store.script, projection.get  # type: ignore[attr-defined]

        def counted_script(*args: Any, **kwargs: Any) -> Any:
            self.script += 1
            return script(*args, **kwargs)

        def counted_get(*args: Any, **kwargs: Any) -> Any:
            self.projection += 1
            return get(*args, **kwargs)

        monkeypatch.setattr(store, "script", counted_script)
        monkeypatch.setattr(projection, "get", counted_get)


def _post(app: Flask, code: str, **extra: Any) -> dict[str, Any]:
    resp = app.test_client().post("/api/v1/verify", json={"input": code, **extra})
    assert resp.status_code == 200, resp.get_json()
    return dict(resp.get_json())


def _events(redis_url: str) -> dict[str, list[str]]:
    """The verdicts the stream holds, by code."""
    out: dict[str, list[str]] = {}
    for _id, fields in redis_lib.Redis.from_url(redis_url).xrange("s:stream"):
        event = orjson.loads(fields[b"e"])
        out.setdefault(event["c"], []).append(event["v"])
    return out


def test_a_first_scan_is_one_round_trip_and_reads_nothing_else(
    service_app: Flask, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    codes = _world(service_app, 40)
    c = container(service_app)
    assert c.resolver.in_store is not None
    calls = _Calls(service_app, monkeypatch)
    written = metrics.value("verdict_facts_written")
    # The group's first code under this generation and day: its facts are written, then
    # the script is asked again (nothing was recorded by the first call).
    assert _post(service_app, codes[0])["verdict"] == "genuine"
    assert calls.script == 2 and calls.projection == 0
    assert metrics.value("verdict_facts_written") == written + 1
    gen = c.resolver.generation_key()
    assert gen is not None
    # China's day, as the verify's (at 06:00 in China, UTC still says yesterday).
    facts_key = keys.PREFIX + keys.verdict_facts(gen[0], china_today(datetime.now(UTC)).toordinal())
    stored = redis_lib.Redis.from_url(redis_url).hgetall(facts_key)
    assert list(stored.values()) == [b"genuine|5.0|" + str(c.registry.label_group(1).product_id).encode()]
    for code in codes[1:11]:
        calls.script = 0
        answer = _post(service_app, code, client="shopper-" + code)
        assert answer["verdict"] == "genuine"
        assert answer["scans"]["count"] == 1
        assert calls.script == 1
    assert calls.projection == 0
    assert metrics.value("verdict_facts_written") == written + 1  # once for the group
    # Each scan recorded once, under the verdict the script resolved.
    events = _events(redis_url)
    assert all(events[code] == ["genuine"] for code in codes[:11])
    # The product's codes seen on shelves are counted at each code's first genuine scan.
    tally = redis_lib.Redis.from_url(redis_url).hgetall(b"s:q:" + stored[b"g1"].split(b"|")[2])
    assert tally == {b"5.0": b"11"}
    # The worker now holds these codes: a second scan resolves here, in one call as well.
    calls.script = 0
    assert _post(service_app, codes[3], client="shopper-" + codes[3])["scans"]["count"] == 2
    assert calls.script == 1 and calls.projection == 0


def test_every_verdict_is_answered_and_recorded_as_when_the_worker_resolves_it(
    service_app: Flask, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    c = container(service_app)
    demo = seed(c.admin, date.today())
    calls = _Calls(service_app, monkeypatch)
    checked = []
    for name, code in demo.items():
        expected = name.split(" ")[0]
        if expected == "suspicious" or expected.startswith("invalid_format"):
            continue
        c.resolver.records.clear()  # not held here: the script resolves it
        calls.projection = 0
        in_store = _post(service_app, code)
        assert calls.projection == 0, name  # resolved in the script, not read here first
        c.resolver.in_store, kept = None, c.resolver.in_store
        try:
            c.resolver.records.clear()
            here = _post(service_app, code)
        finally:
            c.resolver.in_store = kept
        assert in_store["verdict"] == here["verdict"] == expected, name
        for answer in (in_store, here):
            answer.pop("scans", None)
        if "BQ B" in name:
            # A BQ B code's answer warns from its second scan on (this comparison's second).
            assert "此前已被查询过" in here.pop("message") and "此前" not in in_store.pop("message")
        assert in_store == here, name
        checked.append(code)
    events = _events(redis_url)
    for name, code in demo.items():
        if code in checked:
            # Never-issued codes are told by the worker's filter (no projection read at all).
            assert events.get(code, ["not_found"] * 2) == [name.split(" ")[0]] * 2, name
    assert len(checked) >= 8


def test_a_status_change_reaches_the_next_scan_resolved_in_the_script(
    service_app: Flask, redis_url: str
) -> None:
    codes = _world(service_app, 10)
    c = container(service_app)
    assert _post(service_app, codes[0])["verdict"] == "genuine"
    c.admin.change_certificate_status(CERT, {"status": "suspended", "reason": "抽检不合格"}, ALL)
    c.resolver.refresh(force=True)  # as every worker does within its refresh (0.2 s)
    assert c.resolver.place_of(_parsed(codes[1]), china_today(datetime.now(UTC))) is not None
    assert _post(service_app, codes[1])["verdict"] == "certificate_suspended"
    # Recorded under the facts of the new generation, not the old one's "genuine" (the
    # answer's verdict is this worker's own: the stream shows what the facts said).
    assert _events(redis_url)[codes[1]] == ["certificate_suspended"]


def test_a_code_the_projection_lacks_is_resolved_here_and_its_windows_counted_once(
    mysql_db: str, redis_url: str
) -> None:
    app = make_app(settings_for(mysql_db, redis_url, rate_limits=True))
    _world(app, 5)
    c = container(app)
    c.resolver._filter = None  # as for a filter's false positive: the script is asked
    never = f"0123{YY}{999_999:012d}"
    assert c.resolver.place_of(_parsed(never), china_today(datetime.now(UTC))) is not None
    r = redis_lib.Redis.from_url(redis_url)
    before = {k: int(r.get(k) or 0) for k in r.scan_iter("*public.verify*")}
    misses = metrics.value("in_store_misses")
    resp = app.test_client().post(
        "/api/v1/verify", json={"input": never, "client": "guesser"}, environ_base={"REMOTE_ADDR": "10.9.9.9"}
    )
    assert resp.status_code == 200 and resp.get_json()["verdict"] == "not_found"
    after = {k: int(r.get(k) or 0) for k in r.scan_iter("*public.verify*")}
    counted = {k: v - before.get(k, 0) for k, v in after.items()}
    assert len(counted) == 4 and set(counted.values()) == {1}, counted
    assert _events(redis_url)[never] == ["not_found"]
    assert metrics.value("in_store_misses") == misses + 1


def test_a_get_of_a_code_this_worker_does_not_hold_is_one_round_trip(
    mysql_db: str, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """GET reads the code's record and its scan state in the script's one call, always
    current, its windows counted once; it records nothing and needs no verdict facts."""
    app = make_app(settings_for(mysql_db, redis_url, rate_limits=True))
    codes = _world(app, 5)
    c = container(app)
    for i in range(3):
        _post(app, codes[0], client=f"shopper-{i}")
    c.resolver.records.clear()  # another worker's scans: this one does not hold the code
    calls = _Calls(app, monkeypatch)
    r = redis_lib.Redis.from_url(redis_url)
    before, stream = _windows(r), r.xlen("s:stream")
    resp = app.test_client().get(f"/api/v1/codes/{codes[0]}", environ_base={"REMOTE_ADDR": "10.8.8.8"})
    assert resp.status_code == 200, resp.get_json()
    body = resp.get_json()
    assert body["verdict"] == "genuine" and body["scans"]["count"] == 3
    assert calls.script == 1 and calls.projection == 0
    counted = {k: v - before.get(k, 0) for k, v in _windows(r).items() if v - before.get(k, 0)}
    assert len(counted) == 2 and set(counted.values()) == {1}, counted  # the IP's two windows
    assert r.xlen("s:stream") == stream
    # A code no scan has reached yet, and one the projection lacks (a filter's false
    # positive): both answered, the second resolved here after the script found nothing.
    calls.script = 0
    fresh = app.test_client().get(f"/api/v1/codes/{codes[4]}").get_json()
    assert fresh["verdict"] == "genuine" and fresh["scans"]["count"] == 0
    assert calls.script == 1 and calls.projection == 0
    c.resolver._filter = None
    never = f"0123{YY}{999_998:012d}"
    calls.script = 0
    assert app.test_client().get(f"/api/v1/codes/{never}").get_json()["verdict"] == "not_found"
    assert calls.script == 2  # the script's miss, then the lookup that counts the guess


def _windows(r: redis_lib.Redis) -> dict[bytes, int]:
    return {k: int(r.get(k) or 0) for k in r.scan_iter("*public.verify*")}


def _database_away(app: Flask, redis_url: str) -> None:
    """The database gone, and nothing of the groups' status known here or in the shared
    cache (a worker new to them)."""
    c = container(app)
    c.registry.engine = c.registry.lookup_engine = make_engine("mysql+pymysql://root@127.0.0.1:1/none")
    c.resolver.status.clear()
    r = redis_lib.Redis.from_url(redis_url)
    stale = list(r.scan_iter(keys.PREFIX + keys.status_record(0, "*", "*").replace(".0:", ".*:")))
    assert stale
    r.delete(*stale)


@pytest.mark.parametrize("facts_written", [False, True])
def test_the_database_away_while_the_script_resolves_fails_once_and_counts_once(
    mysql_db: str, redis_url: str, facts_written: bool
) -> None:
    """A group's status this worker cannot read while the script resolves one of its codes:
    503 as when the worker resolves it, the windows counted once, the scan recorded at
    most once (when another worker wrote the group's facts, the script recorded it)."""
    app = make_app(settings_for(mysql_db, redis_url, rate_limits=True))
    codes = _world(app, 6)
    c = container(app)
    assert _post(app, codes[0])["verdict"] == "genuine"  # this day's facts are written
    if not facts_written:
        c.admin.change_certificate_status(CERT, {"status": "suspended", "reason": "抽检"}, ALL)
        c.resolver.refresh(force=True)  # a new generation: no facts for it yet
    _database_away(app, redis_url)
    r = redis_lib.Redis.from_url(redis_url)
    before, errors = _windows(r), metrics.value("scan_store_errors")
    resp = app.test_client().post(
        "/api/v1/verify",
        json={"input": codes[1], "client": "shopper"},
        environ_base={"REMOTE_ADDR": "10.7.7.7"},
    )
    assert resp.status_code == 503 and resp.get_json()["code"] == "database_unavailable"
    counted = {k: v - before.get(k, 0) for k, v in _windows(r).items() if v - before.get(k, 0)}
    assert len(counted) == 4 and set(counted.values()) == {1}, counted
    assert _events(redis_url).get(codes[1], []) == (["genuine"] if facts_written else [])
    assert metrics.value("scan_store_errors") == errors  # not the scan store's failure


def _parsed(code: str) -> Any:
    from domain.codes import normalize

    return normalize(code)
