"""Black-box load test of a running service (no project imports).

    locust -f loadtests/locustfile.py --host http://127.0.0.1:8000 --headless -u 50 -r 10 -t 60s

Codes to verify come from LOCUST_CODES (a file, one code per line; `make run` prints demo
codes) plus random well-formed codes that were never issued. Run the service with
RATE_LIMITS=off, or every virtual user shares your IP's rate limit.
"""

from __future__ import annotations

import os
import random
from datetime import date
from pathlib import Path

from locust import FastHttpUser, between, task

_CODES_FILE = os.environ.get("LOCUST_CODES")
CODES = Path(_CODES_FILE).read_text().split() if _CODES_FILE else []
YY = f"{date.today().year % 100:02d}"


def _random_code() -> str:
    return f"0123{YY}{random.randrange(10**12):012d}"


class Shopper(FastHttpUser):
    """A shopper scanning labels: mostly real codes, some typos and fakes, some page views."""

    wait_time = between(0.5, 2)

    def on_start(self) -> None:
        self.client_id = f"locust-{random.randrange(10**9)}"

    def _code(self) -> str:
        return random.choice(CODES) if CODES and random.random() < 0.8 else _random_code()

    @task(8)
    def verify(self) -> None:
        body = {
            "input": self._code(),
            "channel": random.choice(["qr", "manual", "web"]),
            "client": self.client_id,
            "location": {"lat": 30.27 + random.uniform(-2, 2), "lng": 120.15 + random.uniform(-2, 2)},
        }
        with self.client.post(
            "/api/v1/verify", json=body, catch_response=True, name="/api/v1/verify"
        ) as resp:
            if resp.status_code != 200 or "verdict" not in resp.json():
                resp.failure(f"unexpected answer {resp.status_code}")

    @task(3)
    def get_code(self) -> None:
        self.client.get(f"/api/v1/codes/{self._code()}", name="/api/v1/codes/{code}")

    @task(1)
    def result_page(self) -> None:
        self.client.get(f"/c/{self._code()}", name="/c/{code}")

    @task(1)
    def bad_input(self) -> None:
        with self.client.post(
            "/api/v1/verify", json={"nope": 1}, catch_response=True, name="bad input"
        ) as resp:
            if resp.status_code == 400:
                resp.success()
            else:
                resp.failure(f"expected 400, got {resp.status_code}")
