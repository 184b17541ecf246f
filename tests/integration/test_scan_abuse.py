"""Unauthenticated abuse of the public paths (issue 14, items 4, 6 and 9), on both
deployments: what a stranger fakes for free (client ids, coordinates, one IP) opens a flag
for review but never flips a shopper's verdict nor the code's first place; a guesser behind
a carrier NAT is refused without shutting out the shoppers behind the same address; a
refused request records nothing; the read-only paths spend the same enumeration budget."""

from __future__ import annotations

from datetime import date

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.conftest import ADMIN, make_app, settings_for
from tests.integration.test_scans import persist
from webapp import container
from webapp.demo import seed

HARBIN = (45.80, 126.53)
URUMQI = (43.83, 87.62)  # ~3,060 km from Harbin
NAT_IP = "223.5.5.5"  # one carrier-NAT address (ip2region: 杭州市); never contacted, only a string


@pytest.fixture(params=["embedded", "services"])
def limited_app(request: pytest.FixtureRequest) -> Flask:
    """Either deployment with the public limits on, as deployed (the enumeration throttle
    is part of them)."""
    if request.param == "embedded":
        url, redis_url = request.getfixturevalue("sqlite_url"), None
    else:
        url, redis_url = request.getfixturevalue("mysql_db"), request.getfixturevalue("redis_url")
    return make_app(settings_for(url, redis_url, rate_limits=True))


def _demo(app: Flask) -> dict[str, str]:
    return seed(container(app).admin, date.today())


def _post(
    http: FlaskClient, code: str, client: str | None = None, where: tuple[float, float] | None = None
) -> tuple[int, dict]:
    body: dict = {"input": code}
    if client:
        body["client"] = client
    if where:
        body["location"] = {"lat": where[0], "lng": where[1]}
    resp = http.post("/api/v1/verify", json=body, environ_base={"REMOTE_ADDR": NAT_IP})
    return resp.status_code, resp.get_json()


def _never_issued(i: int) -> str:
    # Body 0123 exists in the demo data; serial numbers this high were never issued.
    return f"012326{900_000_000_000 + i:012d}"


def test_two_made_up_clients_far_apart_from_one_ip_cannot_make_a_code_suspicious(
    any_app: Flask,
) -> None:
    demo = _demo(any_app)
    http = any_app.test_client()
    code = demo["genuine"]
    status, first = _post(http, code)
    assert status == 200 and first["scans"]["first_city"] == "杭州市"
    # The attack of issue 14: two made-up clients, 3,000 km apart within a minute, one IP.
    _post(http, code, "made-up-1", HARBIN)
    _post(http, code, "made-up-2", URUMQI)
    status, later = _post(http, code, "a-later-shopper")
    assert status == 200 and later["verdict"] == "genuine"
    assert later["scans"]["first_city"] == first["scans"]["first_city"]
    assert later["scans"]["first_at"] == first["scans"]["first_at"]
    assert all(f["severity"] == "warn" for f in later["flags"])
    # The brand still sees it, for review, with where each place came from.
    persist(any_app)
    items = http.get("/api/v1/admin/flags?rule=impossible_travel", headers=ADMIN).get_json()["items"]
    assert [(i["code"], i["severity"]) for i in items] == [(code, "warn")]
    assert {s["place_from"] for s in items[0]["evidence"]["scans"]} == {"gps"}


def test_a_claimed_place_never_names_a_codes_first_scan(any_app: Flask) -> None:
    demo = _demo(any_app)
    http = any_app.test_client()
    _, attacker = _post(http, demo["genuine"], "made-up", URUMQI)
    # The first query is dated, but a place the client only claimed is not shown.
    assert attacker["scans"]["first_at"] is not None and attacker["scans"]["first_city"] is None


def test_many_made_up_clients_from_one_network_stay_a_warning(any_app: Flask) -> None:
    demo = _demo(any_app)
    http = any_app.test_client()
    places = [HARBIN, URUMQI, (23.13, 113.26), (30.57, 104.07), (39.90, 116.40), (31.23, 121.47)]
    answers = [_post(http, demo["genuine"], f"made-up-{i}", place)[1] for i, place in enumerate(places)]
    assert [a["verdict"] for a in answers] == ["genuine"] * len(places)
    assert {f["rule"] for f in answers[-1]["flags"]} >= {"distinct_scanners", "province_spread"}


def test_a_guesser_behind_a_carrier_nat_shuts_out_none_of_its_thousand_neighbours(
    limited_app: Flask,
) -> None:
    demo = _demo(limited_app)
    http = limited_app.test_client()
    refused_shoppers = guesses_answered = 0
    guesser_codes = iter(range(10**6))
    for i in range(1000):
        status, _ = _post(http, demo["genuine"], f"shopper-{i}")
        refused_shoppers += status != 200
        if i % 20 == 0:  # the guesser keeps going all along: 50 never-issued codes
            status, _ = _post(http, _never_issued(next(guesser_codes)), "guesser")
            guesses_answered += status == 200
    assert refused_shoppers == 0
    assert guesses_answered == 10  # RuleConfig.enumeration_per_hour
    # Refused, its lookup of a real code records nothing: no first scan, no count.
    before = _post(http, demo["genuine (legacy 17-digit)"], "shopper-0")[1]["scans"]["count"]
    status, refused = _post(http, demo["genuine (legacy 17-digit)"], "guesser")
    assert status == 429 and refused["code"] == "enumeration_throttled"
    assert _post(http, demo["genuine (legacy 17-digit)"], "shopper-1")[1]["scans"]["count"] == before + 1


def test_a_device_without_client_id_guessing_does_not_shut_out_another_behind_its_ip(
    limited_app: Flask,
) -> None:
    demo = _demo(limited_app)
    http = limited_app.test_client()
    # Issue 14: after 15 never-issued codes from one device without a client id, a genuine
    # code asked from another device behind the same IP got 429.
    statuses = [_post(http, _never_issued(i))[0] for i in range(15)]
    assert statuses == [200] * 15
    status, answer = _post(http, demo["genuine"])
    assert status == 200 and answer["verdict"] == "genuine"


def test_enumeration_retry_after_is_the_hour_window_it_counts_in(limited_app: Flask) -> None:
    http = limited_app.test_client()
    _demo(limited_app)
    for i in range(11):
        _post(http, _never_issued(i), "guesser")
    resp = http.post("/api/v1/verify", json={"input": _never_issued(99), "client": "guesser"})
    assert resp.status_code == 429 and resp.get_json()["code"] == "enumeration_throttled"
    assert resp.headers["Retry-After"] == "3600"


def test_refused_requests_record_no_scan(limited_app: Flask) -> None:
    demo = _demo(limited_app)
    http = limited_app.test_client()
    assert _post(http, demo["genuine"], "shopper")[1]["scans"]["count"] == 1
    for i in range(11):
        _post(http, _never_issued(i), "guesser")
    # Issue 14: two 429 answers raised the code's count from 1 to 3.
    assert [_post(http, demo["genuine"], "guesser")[0] for _ in range(2)] == [429, 429]
    assert _post(http, demo["genuine"], "shopper")[1]["scans"]["count"] == 2


@pytest.mark.parametrize("path", ["/c/{}", "/api/v1/codes/{}"])
def test_never_issued_codes_looked_up_read_only_spend_the_enumeration_budget(
    path: str, sqlite_url: str, mysql_db: str, redis_url: str, request: pytest.FixtureRequest
) -> None:
    for url, rds in ((sqlite_url, None), (mysql_db, redis_url)):
        settings = settings_for(url, rds, rate_limits=True, rules={"enumeration_ip_per_hour": 20})
        app = make_app(settings)
        demo = _demo(app)
        # No cookies: the page's visitor cookie would make these one client, whose own
        # budget (10 an hour) is smaller; this test is about the IP's budget.
        http = app.test_client(use_cookies=False)
        ip = {"REMOTE_ADDR": NAT_IP}
        statuses = [http.get(path.format(_never_issued(i)), environ_base=ip).status_code for i in range(21)]
        assert statuses == [200] * 20 + [429], (url, statuses)
        # Refused only for never-issued codes: a real code is still answered behind that IP.
        assert http.get(path.format(demo["genuine"]), environ_base=ip).status_code == 200
        # And the guessing spent the verify's budget too: POST is refused the same way.
        status, problem = _post(http, _never_issued(500))
        assert status == 429 and problem["code"] == "enumeration_throttled"
