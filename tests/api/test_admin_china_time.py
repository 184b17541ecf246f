"""Admin status changes in China time (issue 19): the default `effective_on` is China's
today, and the history's `changed_at` is an instant with its offset."""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

from flask import Flask

from tests.conftest import ADMIN
from webapp import container
from webapp.demo import seed


def _demo(app: Flask) -> dict[str, str]:
    return seed(container(app).admin, date.today())


def test_a_status_change_is_dated_in_china_and_its_history_carries_an_offset(any_app: Flask) -> None:
    demo = _demo(any_app)
    number = any_app.test_client().get(f"/api/v1/codes/{demo['genuine']}").get_json()["certificate"]["number"]
    resp = any_app.test_client().patch(
        f"/api/v1/admin/certificates/{number}", json={"status": "suspended", "reason": "抽检"}, headers=ADMIN
    )
    assert resp.status_code == 200, resp.get_data(as_text=True)
    body = resp.get_json()
    china_today = datetime.now(UTC).astimezone(ZoneInfo("Asia/Shanghai")).date().isoformat()
    assert body["status_since"] == china_today
    latest = body["history"][-1] if body["history"][-1]["status"] == "suspended" else body["history"][0]
    assert latest["effective_on"] == china_today
    assert latest["changed_at"].endswith("Z"), latest
