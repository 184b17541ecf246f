"""The world the alerts, exports and evidence-pack tests share: two bodies, a certificate
each held by brands X and Y, codes on both, and tokens for body A and both brands; on
the embedded default and on MariaDB + Redis, with webhooks allowed to reach this machine."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
import redis as redis_lib
from flask import Flask
from flask.testing import FlaskClient

from anomaly.worker import StreamWorker
from tests.conftest import ADMIN, make_app, settings_for
from webapp import container

BODIES = [{"code": "0123", "name": "甲认证中心"}, {"code": "0456", "name": "乙认证中心"}]
A_NO = "0123OP2600017"
B_NO = "0456OP2600018"
CERT_A = {
    "number": A_NO,
    "body_code": "0123",
    "holder": "甲农场",
    "producer": "甲农场",
    "valid_from": "2026-01-01",
    "valid_until": "2099-12-31",
    "products": [{"name": "有机大米"}],
}
CERT_B = {**CERT_A, "number": B_NO, "body_code": "0456", "holder": "乙农场", "producer": "乙农场"}
CODE_A = "012326000000000001"
CODE_A2 = "012326000000000002"
CODE_B = "045626000000000001"


def bearer(raw: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {raw}"}


@dataclass
class World:
    app: Flask
    http: FlaskClient
    a: dict[str, str]  # body A's token
    x: dict[str, str]  # brand X's (holds CERT_A)
    y: dict[str, str]  # brand Y's (holds CERT_B)
    x_id: int
    y_id: int


DEPLOYMENTS = ["embedded", "services"]


def hook_app_for(request: pytest.FixtureRequest) -> Flask:
    """Both deployments, with webhooks allowed to reach this machine's receiver."""
    if request.param == "embedded":
        url = request.getfixturevalue("sqlite_url")
        return make_app(settings_for(url, webhook_allow_private=True))
    db, redis_url = request.getfixturevalue("mysql_db"), request.getfixturevalue("redis_url")
    return make_app(settings_for(db, redis_url, webhook_allow_private=True))


def build_world(hook_app: Flask) -> World:
    http = hook_app.test_client()
    assert http.post("/api/v1/admin/bodies", json=BODIES, headers=ADMIN).get_json()["accepted"] == 2
    assert (
        http.post("/api/v1/admin/certificates", json=[CERT_A, CERT_B], headers=ADMIN).get_json()["accepted"]
        == 2
    )
    rows = [
        {"code": c, "certificate": cert, "product": "有机大米", "order": order}
        for c, cert, order in ((CODE_A, A_NO, "A-1"), (CODE_A2, A_NO, "A-1"), (CODE_B, B_NO, "B-1"))
    ]
    assert http.post("/api/v1/admin/codes", json=rows, headers=ADMIN).get_json()["accepted"] == 3
    admin = container(hook_app).admin
    orgs = {o["name"]: o["id"] for o in organizations(hook_app)}
    return World(
        hook_app,
        http,
        bearer(admin.create_token("body A", "body", "0123")),
        bearer(admin.create_token("brand X", "organization", "甲农场")),
        bearer(admin.create_token("brand Y", "organization", "乙农场")),
        orgs["甲农场"],
        orgs["乙农场"],
    )


def organizations(app: Flask) -> list[dict[str, object]]:
    from registry import schema as t

    with container(app).engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(t.organizations.select())]


def copy_events(code: str, prefix: str, n: int = 6) -> list[dict[str, object]]:
    """Scans of one code by `n` distinct clients: a suspicious copy at six."""
    start = datetime.now(UTC) - timedelta(hours=n)
    return [
        {
            "event_id": f"{prefix}-{i}",
            "code": code,
            "at": (start + timedelta(hours=i)).isoformat(),
            "client": f"{prefix}{i}",
        }
        for i in range(n)
    ]


def create(w: World, who: dict[str, str], **body: object) -> dict[str, object]:
    """A webhook of X's (Y's with Y's token) unless the body names the organization."""
    body.setdefault("organization_id", w.y_id if who == w.y else w.x_id)
    resp = w.http.post("/api/v1/admin/webhooks", json=body, headers=who)
    assert resp.status_code == 201, resp.get_data(as_text=True)
    return resp.get_json()  # type: ignore[no-any-return]


def persist(app: Flask) -> None:
    """`flask worker --once`'s stream part: flags into SQL (embedded: already there)."""
    c = container(app)
    if c.settings.scan_store_url is not None:
        client = redis_lib.Redis.from_url(c.settings.scan_store_url)
        StreamWorker(client, c.scan_sql.write_events, c.scan_sql.upsert_flag, claim_idle_ms=0).drain()
        client.close()
