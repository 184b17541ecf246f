"""Webhook alerts end to end: an organization's webhooks through the admin API (scoped:
another body's and another organization's tokens see and change nothing), alerts queued
in the flag's own transaction, delivered by the worker to a real local HTTP receiver
with an HMAC-SHA256 signature of the exact body and an idempotency key, retried with
backoff after failures, never following a redirect, and logged."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import redis as redis_lib
import sqlalchemy as sa
from flask import Flask

from anomaly.worker import StreamWorker
from domain.alerts import verify_signature
from domain.bulk import Scope
from registry import schema
from registry.alerts import SqlAlertStore
from registry.sealing import SecretBox, is_sealed
from services.alerts import UNREADABLE_SEAL, AlertService
from tests.alerts_world import (
    A_NO,
    BODIES,
    CERT_A,
    CODE_A,
    CODE_A2,
    DEPLOYMENTS,
    World,
    build_world,
    copy_events,
    create,
    hook_app_for,
    organizations,
    persist,
)
from tests.conftest import ADMIN, make_app, settings_for
from tests.webhook_receiver import Received, receiver
from webapp import container
from webapp.webhooks import Deliverer, HttpSender


@pytest.fixture(params=DEPLOYMENTS)
def hook_app(request: pytest.FixtureRequest) -> Flask:
    return hook_app_for(request)


@pytest.fixture
def world(hook_app: Flask) -> World:
    return build_world(hook_app)


@pytest.fixture
def running_worker(world: World) -> Iterator[None]:
    """What `flask worker` runs: the stream consumer (with Redis) and the deliverer."""
    c = container(world.app)
    stream: StreamWorker | None = None
    threads = []
    if c.settings.scan_store_url is not None:
        client = redis_lib.Redis.from_url(c.settings.scan_store_url, socket_timeout=5)
        stream = StreamWorker(client, c.scan_sql.write_events, c.scan_sql.upsert_flag, block_ms=200)
        threads.append(threading.Thread(target=stream.run, daemon=True))
        threads[-1].start()
    deliverer = Deliverer(c.alerts.deliver_due, poll_s=0.5).start()
    yield
    deliverer.stop()
    if stream is not None:
        stream.stop()
        for thread in threads:
            thread.join(10)
        client.close()


def check_signed(got: Received, secret: str) -> dict[str, object]:
    assert got.headers["Content-Type"] == "application/json"
    assert verify_signature(got.body, secret, got.headers["X-Signature"])
    assert not verify_signature(got.body + b" ", secret, got.headers["X-Signature"])
    document = json.loads(got.body)
    assert got.headers["Idempotency-Key"] == document["id"]
    assert got.headers["X-Event-Type"] == document["type"]
    return document  # type: ignore[no-any-return]


# -- end to end -----------------------------------------------------------------------------


def test_a_new_suspicious_flag_reaches_its_webhook_within_a_minute_of_the_scan(
    world: World, running_worker: None
) -> None:
    with receiver() as x_hook, receiver() as y_hook:
        x = create(world, world.x, url=x_hook.url, description="brand protection")
        y = create(world, world.y, url=y_hook.url, min_severity="warn")
        scanned = time.monotonic()
        resp = world.http.post("/api/v1/admin/scans", json=copy_events(CODE_A, "copy"), headers=ADMIN)
        assert resp.get_json()["accepted"] == 6
        got = x_hook.wait_for(1, 60)
        assert got, "no alert within 60 s of the scan"
        latency = got[0].at - scanned
        assert latency < 60
        print(f"flag to webhook: {latency * 1000:.0f} ms")
        document = check_signed(got[0], str(x["secret"]))
        flag = document["flag"]
        assert document["type"] == "flag.raised" and document["organization_id"] == world.x_id
        assert (flag["code"], flag["rule"], flag["severity"], flag["certificate"]) == (
            CODE_A,
            "distinct_scanners",
            "suspicious",
            A_NO,
        )
        # One flag, one alert: more scans of the same flag at the same severity are no news.
        more = copy_events(CODE_A, "more", 3)
        assert world.http.post("/api/v1/admin/scans", json=more, headers=ADMIN).get_json()["accepted"] == 3
        deadline = time.monotonic() + 30
        while True:  # the receiver answered; the worker records the try just after
            log = world.http.get(f"/api/v1/admin/webhooks/{x['id']}/deliveries", headers=world.x).get_json()
            if log["items"][0]["status"] != "pending" or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert [(d["status"], d["code"], len(d["tries"])) for d in log["items"]] == [("delivered", CODE_A, 1)]
        assert log["items"][0]["tries"][0]["status_code"] == 200
        # Brand Y's webhook (every severity) heard nothing of brand X's code.
        assert y_hook.received == []
        assert world.http.get(f"/api/v1/admin/webhooks/{y['id']}/deliveries", headers=world.y).get_json() == {
            "items": []
        }
        assert len(x_hook.wait_for(2, 1)) == 1


def test_rules_and_minimum_severity_choose_the_alerts(world: World) -> None:
    with receiver() as every, receiver() as travel_only:
        warn = create(world, world.x, url=every.url, min_severity="warn")
        create(world, world.x, url=travel_only.url, rules=["impossible_travel"], min_severity="warn")
        # Three clients: a warning; six: the same flag rises to suspicious.
        http = world.http
        assert (
            http.post("/api/v1/admin/scans", json=copy_events(CODE_A2, "w", 3), headers=ADMIN).get_json()[
                "accepted"
            ]
            == 3
        )
        persist(world.app)
        more = copy_events(CODE_A2, "s", 6)
        assert http.post("/api/v1/admin/scans", json=more, headers=ADMIN).get_json()["accepted"] == 6
        persist(world.app)
        assert _send_all(world.app) == 2
        kinds = [(json.loads(r.body)["type"], json.loads(r.body)["flag"]["severity"]) for r in every.received]
        assert kinds == [("flag.raised", "warn"), ("flag.escalated", "suspicious")]
        ids = {r.headers["Idempotency-Key"] for r in every.received}
        assert len(ids) == 2  # one key per event
        for r in every.received:
            check_signed(r, str(warn["secret"]))
        assert travel_only.received == []


def _send_all(app: Flask) -> int:
    sent = 0
    while n := container(app).alerts.deliver_due():
        sent += n
    return sent


# -- retries, redirects, addresses --------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now


def test_a_receiver_that_fails_twice_gets_the_same_signed_alert_three_times(world: World) -> None:
    with receiver([500, 503, 200]) as hook:
        made = create(world, world.x, url=hook.url)
        resp = world.http.post("/api/v1/admin/scans", json=copy_events(CODE_A, "r"), headers=ADMIN)
        assert resp.get_json()["accepted"] == 6
        persist(world.app)
        clock = Clock()  # after the alert was queued: it is due now
        alerts = AlertService(
            SqlAlertStore(container(world.app).engine, _box(world.app)),
            HttpSender(allow_private=True),
            clock=clock,
        )
        tries = []
        for _ in range(3):
            tries.append(alerts.deliver_due())
            # Not due again until its backoff has passed.
            assert alerts.deliver_due() == 0
            clock.now += timedelta(hours=2)
        assert tries == [0, 0, 1]
        assert len(hook.received) == 3
        bodies = {r.body for r in hook.received}
        keys = {r.headers["Idempotency-Key"] for r in hook.received}
        signatures = {r.headers["X-Signature"] for r in hook.received}
        assert len(bodies) == len(keys) == len(signatures) == 1
        check_signed(hook.received[0], str(made["secret"]))
        log = world.http.get(f"/api/v1/admin/webhooks/{made['id']}/deliveries", headers=world.x).get_json()
        (entry,) = log["items"]
        assert entry["status"] == "delivered" and entry["attempts"] == 3
        assert [t["status_code"] for t in entry["tries"]] == [500, 503, 200]
        assert entry["tries"][0]["error"] == "the receiver answered 500"
        at = [datetime.fromisoformat(t["at"]) for t in entry["tries"]]
        assert at[0] < at[1] < at[2]


def test_a_redirect_is_a_failed_try_never_followed(world: World) -> None:
    with receiver() as inside, receiver([302], location="") as hook:
        hook.location = inside.url
        made = create(world, world.x, url=hook.url)
        resp = world.http.post("/api/v1/admin/scans", json=copy_events(CODE_A, "d"), headers=ADMIN)
        assert resp.get_json()["accepted"] == 6
        persist(world.app)
        assert _send_all(world.app) == 0
        assert len(hook.received) == 1 and inside.received == []
        (entry,) = world.http.get(
            f"/api/v1/admin/webhooks/{made['id']}/deliveries", headers=world.x
        ).get_json()["items"]
        assert entry["status"] == "pending" and entry["next_attempt_at"] is not None
        assert entry["tries"][0]["status_code"] == 302
        assert entry["tries"][0]["error"] == "redirects are not followed"


def test_without_allow_private_a_webhook_cannot_point_inside(sqlite_url: str) -> None:
    sender = HttpSender(allow_private=False)
    for url in (
        "http://127.0.0.1:9/x",
        "http://10.1.2.3/x",
        "http://[::1]/x",
        "http://169.254.169.254/latest",
    ):
        assert sender.check_url(url) is not None, url
    result = sender.send("http://localhost:9/x", b"{}", {})
    assert result.status_code is None and "non-public" in (result.error or "")
    app = make_app(settings_for(sqlite_url))
    http = app.test_client()
    assert http.post("/api/v1/admin/bodies", json=BODIES[:1], headers=ADMIN).get_json()["accepted"] == 1
    assert http.post("/api/v1/admin/certificates", json=[CERT_A], headers=ADMIN).get_json()["accepted"] == 1
    org = organizations(app)[0]["id"]
    resp = http.post(
        "/api/v1/admin/webhooks",
        json={"url": "http://127.0.0.1:8000/x", "organization_id": org},
        headers=ADMIN,
    )
    assert resp.status_code == 400 and resp.get_json()["code"] == "invalid_url"


# -- the admin API and its scope -------------------------------------------------------------


def test_the_secret_is_shown_once_and_settings_change(world: World) -> None:
    made = create(world, world.x, url="http://127.0.0.1:9/a", rules=["velocity", "distinct_scanners"])
    assert len(str(made["secret"])) == 64
    assert made["rules"] == ["distinct_scanners", "velocity"] and made["min_severity"] == "suspicious"
    listed = world.http.get("/api/v1/admin/webhooks", headers=world.x).get_json()["items"]
    assert [h["id"] for h in listed] == [made["id"]] and "secret" not in listed[0]
    got = world.http.get(f"/api/v1/admin/webhooks/{made['id']}", headers=world.x).get_json()
    assert "secret" not in got and got["url"] == "http://127.0.0.1:9/a"
    resp = world.http.patch(
        f"/api/v1/admin/webhooks/{made['id']}",
        json={"active": False, "min_severity": "warn"},
        headers=world.x,
    )
    assert resp.status_code == 200 and "secret" not in resp.get_json()
    assert (resp.get_json()["active"], resp.get_json()["min_severity"]) == (False, "warn")
    rotated = world.http.patch(
        f"/api/v1/admin/webhooks/{made['id']}", json={"rotate_secret": True}, headers=world.x
    ).get_json()
    assert len(rotated["secret"]) == 64 and rotated["secret"] != made["secret"]
    assert world.http.delete(f"/api/v1/admin/webhooks/{made['id']}", headers=world.x).status_code == 200
    assert world.http.get("/api/v1/admin/webhooks", headers=world.x).get_json() == {"items": []}
    # Every settings change is in the audit log, as brand X's token; no secret ever is.
    entries = [
        e for e in container(world.app).audit.entries(Scope("all")) if e["target"] == f"webhook:{made['id']}"
    ]
    assert sorted(e["action"] for e in entries) == [
        "webhook.create",
        "webhook.delete",
        "webhook.update",
        "webhook.update",
    ]
    logged = json.dumps(entries, default=str)
    assert made["secret"] not in logged and rotated["secret"] not in logged and "secret_rotated" in logged


@pytest.mark.parametrize(
    "body, code",
    [
        ({}, "invalid_body"),
        ({"url": "ftp://example.com/x"}, "invalid_url"),
        ({"url": "http://127.0.0.1:9/x", "rules": ["nope"]}, "invalid_body"),
        ({"url": "http://127.0.0.1:9/x", "min_severity": "high"}, "invalid_body"),
        ({"url": "http://127.0.0.1:9/x", "secret": "mine"}, "invalid_body"),
        ({"url": "x" * 2001}, "invalid_body"),
        ([], "invalid_body"),
    ],
)
def test_bad_webhooks_are_problem_documents(world: World, body: object, code: str) -> None:
    if isinstance(body, dict) and body:
        body = {"organization_id": world.x_id, **body}
    resp = world.http.post("/api/v1/admin/webhooks", json=body, headers=world.x)
    assert resp.status_code == 400 and resp.mimetype == "application/problem+json"
    assert resp.get_json()["code"] == code


def test_another_organizations_and_a_bodys_tokens_see_and_change_nothing(world: World) -> None:
    made = create(world, world.x, url="http://127.0.0.1:9/x")
    path = f"/api/v1/admin/webhooks/{made['id']}"
    http = world.http
    assert http.get("/api/v1/admin/webhooks", headers=world.y).get_json() == {"items": []}
    for call in (
        lambda h: http.get(path, headers=h),
        lambda h: http.patch(path, json={"url": "http://127.0.0.1:9/stolen"}, headers=h),
        lambda h: http.patch(path, json={"rotate_secret": True}, headers=h),
        lambda h: http.delete(path, headers=h),
        lambda h: http.get(path + "/deliveries", headers=h),
    ):
        assert call(world.y).status_code == 404
        assert call(world.a).status_code == 404
    assert http.get("/api/v1/admin/webhooks", headers=world.a).status_code == 403
    assert http.get(f"/api/v1/admin/webhooks/{2**70}", headers=ADMIN).status_code == 404
    # Y cannot plant a webhook on X's organization either.
    resp = http.post(
        "/api/v1/admin/webhooks",
        json={"url": "http://127.0.0.1:9/y", "organization_id": world.x_id},
        headers=world.y,
    )
    assert resp.status_code == 404
    assert http.get(path, headers=world.x).get_json() == {k: v for k, v in made.items() if k != "secret"}
    # The regulator names the organization, and sees every one's webhooks.
    assert (
        http.post("/api/v1/admin/webhooks", json={"url": "http://127.0.0.1:9/r"}, headers=ADMIN).status_code
        == 400
    )
    made_y = create(world, ADMIN, url="http://127.0.0.1:9/r", organization_id=world.y_id)
    assert made_y["organization_id"] == world.y_id
    assert {h["id"] for h in http.get("/api/v1/admin/webhooks", headers=ADMIN).get_json()["items"]} == {
        made["id"],
        made_y["id"],
    }
    resp = http.post(
        "/api/v1/admin/webhooks", json={"url": "http://127.0.0.1:9/r", "organization_id": 999}, headers=ADMIN
    )
    assert resp.status_code == 404


def _box(app: Flask) -> SecretBox:
    settings = container(app).settings
    return SecretBox(settings.secret_key, settings.previous_secret_keys)


def _stored_secret(app: Flask, webhook_id: int) -> str:
    w = schema.webhooks
    with container(app).engine.connect() as conn:
        return str(conn.execute(sa.select(w.c.secret).where(w.c.id == webhook_id)).scalar_one())


def test_a_webhook_secret_is_stored_sealed_and_signs_with_the_clear_one(world: World) -> None:
    """A copy of the database alone must not let anyone sign alerts as us."""
    with receiver([200]) as hook:
        made = create(world, world.x, url=hook.url)
        stored = _stored_secret(world.app, int(made["id"]))
        assert is_sealed(stored) and str(made["secret"]) not in stored
        rotated = world.http.patch(
            f"/api/v1/admin/webhooks/{made['id']}", json={"rotate_secret": True}, headers=world.x
        ).get_json()["secret"]
        again = _stored_secret(world.app, int(made["id"]))
        assert is_sealed(again) and again != stored and rotated not in again
        world.http.post("/api/v1/admin/scans", json=copy_events(CODE_A, "s"), headers=ADMIN)
        persist(world.app)
        assert container(world.app).alerts.deliver_due() == 1
        check_signed(hook.received[0], rotated)


def test_secrets_stored_in_clear_are_sealed_when_the_senders_start(world: World) -> None:
    made = create(world, world.x, url="http://127.0.0.1:9/a")
    w = schema.webhooks
    with container(world.app).engine.begin() as conn:  # as an older release stored it
        conn.execute(w.update().where(w.c.id == made["id"]).values(secret=made["secret"]))
    c = container(world.app)
    assert c.alerts.store.seal_stored() == 1
    stored = _stored_secret(world.app, int(made["id"]))
    assert is_sealed(stored) and _box(world.app).open(stored) == made["secret"]
    assert c.alerts.store.seal_stored() == 0  # idempotent


def test_a_secret_no_key_opens_is_a_failed_try_and_an_old_key_reads_it(world: World) -> None:
    """SECRET_KEY changed: nothing can be signed, so nothing is sent; the log says why.
    With the old key in SECRET_KEY_PREVIOUS the same alert goes out, signed."""
    with receiver([200]) as hook:
        made = create(world, world.x, url=hook.url)
        world.http.post("/api/v1/admin/scans", json=copy_events(CODE_A, "k"), headers=ADMIN)
        persist(world.app)
        engine = container(world.app).engine
        clock = Clock()
        new_key = AlertService(
            SqlAlertStore(engine, SecretBox("another-key")), HttpSender(allow_private=True), clock=clock
        )
        for _ in range(12):  # more than the ten tries an alert has: none is spent
            assert new_key.deliver_due() == 0 and hook.received == []
            clock.now += timedelta(hours=1)
        log = world.http.get(f"/api/v1/admin/webhooks/{made['id']}/deliveries", headers=world.x).get_json()
        (entry,) = log["items"]
        assert entry["status"] == "pending" and UNREADABLE_SEAL in json.dumps(entry, ensure_ascii=False)
        old_key = container(world.app).settings.secret_key
        rotated = AlertService(
            SqlAlertStore(engine, SecretBox("another-key", [old_key])),
            HttpSender(allow_private=True),
            clock=clock,
        )
        assert rotated.deliver_due() == 1
        check_signed(hook.received[0], str(made["secret"]))
