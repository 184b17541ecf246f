"""What verify says about the one label scanned (issue 17, items 5 and 7), on both
deployments: a genuine label scanned while still in its order's stock raises `not_in_use`
(labels leaking from stock) until a use record covers it; an imported code list never
does; a typed 9-digit identity code is `invalid_format` with reason `identity_code`; an
identity code sent with another label's 有机码 makes the answer `suspicious`
(`identity_mismatch`)."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta

from domain import metrics
from domain.china_time import china_today
from tests.api import test_issuing_api as issuing
from tests.api.test_admin_scope import persist
from tests.api.test_issuing_api import A_NO, World, order, verify
from tests.conftest import ADMIN

world = issuing.world  # the issuance tests' fixture: bodies, certificates, specs, tokens


def allocated_codes(w: World, quantity: int = 10) -> tuple[str, dict[str, str]]:
    """An allocated order of `quantity` bean labels with generated codes: identity -> code."""
    number = order(w, [{"spec_id": w.beans, "quantity": quantity, "unit_price": 1}])["number"]
    w.http.post(f"/api/v1/admin/orders/{number}/submit", headers=w.x)
    w.http.post(f"/api/v1/admin/orders/{number}/review", json={"decision": "approve"}, headers=w.a)
    got = w.http.post(f"/api/v1/admin/orders/{number}/allocate", json={"codes": "generated"}, headers=w.a)
    assert got.status_code == 200, got.get_data(as_text=True)
    sheet = w.http.get(f"/api/v1/admin/orders/{number}/printer-codes.csv", headers=w.a)
    rows = csv.DictReader(io.StringIO(sheet.data.decode("utf-8-sig")))
    return number, {r["identity_code"]: r["code"] for r in rows}


def rules(answer: dict) -> set[str]:
    return {f["rule"] for f in answer["flags"]}


def flags_of(w: World, rule: str) -> dict[str, dict]:
    persist(w.app)  # what `flask worker` does on the Redis deployment
    got = w.http.get(f"/api/v1/admin/flags?rule={rule}", headers=w.x)
    assert got.status_code == 200, got.get_data(as_text=True)
    return {item["code"]: item for item in got.get_json()["items"]}


def test_a_label_scanned_before_it_is_taken_into_use_is_flagged(world: World) -> None:
    w = world
    number, codes = allocated_codes(w)
    uses = f"/api/v1/admin/orders/{number}/uses"
    taken = w.http.post(uses, json={"line": 1, "quantity": 3, "batch": "B1", "person": "张三"}, headers=w.x)
    assert taken.status_code == 201, taken.get_data(as_text=True)

    in_use = verify(w.http, codes["100000001"])
    assert in_use["verdict"] == "genuine" and rules(in_use) == set()
    leaked = verify(w.http, codes["100000005"])
    # A warning for the holder, not the shopper's verdict.
    assert leaked["verdict"] == "genuine" and rules(leaked) == {"not_in_use"}
    flag = flags_of(w, "not_in_use")[codes["100000005"]]
    assert flag["severity"] == "warn"
    assert flag["evidence"]["identity_code"] == "100000005" and flag["evidence"]["order"] == number
    assert len(flag["evidence"]["scans"]) == 1
    assert codes["100000001"] not in flags_of(w, "not_in_use")

    # 回退: the record goes, its labels are in stock again, and a scan of one says so.
    w.http.delete(f"{uses}/{taken.get_json()['id']}", headers=w.x)
    assert rules(verify(w.http, codes["100000002"])) == {"not_in_use"}
    # Taken into use with a later date: scanned today, it was still in stock.
    tomorrow = (china_today(datetime.now(UTC)) + timedelta(days=1)).isoformat()
    later = {"line": 1, "first_identity": "100000009", "last_identity": "100000010", "batch": "B2"}
    assert (
        w.http.post(uses, json={**later, "person": "李四", "used_on": tomorrow}, headers=w.x).status_code
        == 201
    )
    assert rules(verify(w.http, codes["100000009"])) == {"not_in_use"}
    # Taken today: no flag.
    now = {"line": 1, "first_identity": "100000006", "last_identity": "100000008", "batch": "B3"}
    assert w.http.post(uses, json={**now, "person": "李四"}, headers=w.x).status_code == 201
    assert rules(verify(w.http, codes["100000007"])) == set()


def test_codes_of_an_imported_list_never_raise_not_in_use(world: World) -> None:
    w = world
    year = china_today(datetime.now(UTC)).year % 100
    row = {
        "code": f"0123{year:02d}000000000777",
        "identity_code": "100000001",
        "certificate": A_NO,
        "product": "绿豆",
        "order": "OLD-7",
    }
    assert w.http.post("/api/v1/admin/codes", json=[row], headers=w.a).get_json()["accepted"] == 1
    answer = verify(w.http, row["code"])
    assert answer["verdict"] == "genuine" and rules(answer) == set()
    assert flags_of(w, "not_in_use") == {}


def test_an_identity_on_file_in_another_numbering_is_never_a_mismatch(world: World) -> None:
    """An imported list may carry another body's identity numbering (not 9 digits): no
    identity a shopper can send (9 digits) could equal it, so it is not compared, and the
    genuine label stays genuine. A 9-digit one on file still is compared."""
    w = world
    year = china_today(datetime.now(UTC)).year % 100
    rows = [
        {"code": f"0123{year:02d}000000000778", "identity_code": "2026100000000002", "order": "OLD-8"},
        {"code": f"0123{year:02d}000000000779", "identity_code": "100000002", "order": "OLD-8"},
    ]
    rows = [{**r, "certificate": A_NO, "product": "绿豆"} for r in rows]
    assert w.http.post("/api/v1/admin/codes", json=rows, headers=w.a).get_json()["accepted"] == 2
    answers = [
        w.http.post("/api/v1/verify", json={"input": r["code"], "identity_code": "100000009"}).get_json()
        for r in rows
    ]
    other, nine = answers
    assert other["verdict"] == "genuine" and rules(other) == set(), other
    assert nine["verdict"] == "suspicious" and nine["reason"] == "identity_mismatch", nine


def test_a_typed_identity_code_says_where_the_organic_code_is(world: World) -> None:
    w = world
    for typed in ("100000001", "１０００ ００００１", "身份码：100-000-001"):
        got = w.http.post("/api/v1/verify", json={"input": typed})
        body = got.get_json()
        assert got.status_code == 200 and body["verdict"] == "invalid_format", body
        assert (
            body["reason"] == "identity_code"
            and "有机码" in body["message"]
            and "9位身份码" in body["message"]
        )
    en = w.http.post("/api/v1/verify", json={"input": "100000001"}, headers={"Accept-Language": "en"})
    assert "identity code" in en.get_json()["message"] and "有机码" in en.get_json()["message"]
    # The web result page, in both languages.
    page = w.http.get("/c/100000001")
    assert page.status_code == 200 and "9位身份码" in page.get_data(as_text=True)
    page = w.http.get("/c/100000001", headers={"Accept-Language": "en"})
    assert "scratch-off layer" in page.get_data(as_text=True)
    # Eight or ten digits are still just the wrong length.
    assert w.http.post("/api/v1/verify", json={"input": "10000001"}).get_json()["reason"] == "length"


def test_an_identity_code_of_another_label_makes_the_answer_suspicious(world: World) -> None:
    w = world
    _number, codes = allocated_codes(w, quantity=4)
    w.http.post(
        f"/api/v1/admin/orders/{_number}/uses",
        json={"line": 1, "quantity": 4, "batch": "B1", "person": "张三"},
        headers=w.x,
    )
    code = codes["100000001"]
    same = w.http.post("/api/v1/verify", json={"input": code, "identity_code": "100 000 001"}).get_json()
    assert same["verdict"] == "genuine" and same["reason"] is None and rules(same) == set()

    two = w.http.post("/api/v1/verify", json={"input": code, "identity_code": "100000003"}).get_json()
    assert two["verdict"] == "suspicious" and two["reason"] == "identity_mismatch", two
    assert "同一枚标志" in two["message"] and rules(two) == {"identity_mismatch"}
    flag = flags_of(w, "identity_mismatch")[code]
    # A public request's word: a warning for the brand, not a verdict for everyone.
    assert flag["severity"] == "warn"
    assert flag["evidence"]["identity_code_given"] == "100000003"
    assert flag["evidence"]["identity_code_on_file"] == "100000001"
    # The next shopper without the identity code sees the genuine label (a warn flag).
    assert verify(w.http, code)["verdict"] == "genuine"

    bad = w.http.post("/api/v1/verify", json={"input": code, "identity_code": "12"})
    assert bad.status_code == 400 and bad.get_json()["code"] == "invalid_identity_code"
    # A code never issued stays not_found whatever identity code comes with it.
    year = china_today(datetime.now(UTC)).year % 100
    nf = w.http.post(
        "/api/v1/verify", json={"input": f"0123{year:02d}999999999999", "identity_code": "100000003"}
    )
    assert nf.get_json()["verdict"] == "not_found"
    assert ADMIN  # the bootstrap token sees the same flags
    persist(w.app)
    assert code in {
        i["code"]
        for i in w.http.get("/api/v1/admin/flags?rule=identity_mismatch", headers=ADMIN).get_json()["items"]
    }


def test_the_in_use_fact_is_read_from_the_cached_label_group_not_the_database(world: World) -> None:
    """The not_in_use check adds no database read to a verify: the label group the verify
    path already holds carries the line's use records; a take into use moves the status
    generation, and the group is read again once, like any status change."""
    w = world
    number, codes = allocated_codes(w)
    assert rules(verify(w.http, codes["100000001"])) == {"not_in_use"}  # warms the group
    reads = metrics.value("db_reads")
    for identity in ("100000002", "100000003", "100000004"):
        assert rules(verify(w.http, codes[identity])) == {"not_in_use"}
    assert metrics.value("db_reads") == reads
    use = {"line": 1, "first_identity": "100000005", "last_identity": "100000008", "batch": "B1"}
    took = w.http.post(f"/api/v1/admin/orders/{number}/uses", json={**use, "person": "张三"}, headers=w.x)
    assert took.status_code == 201
    assert rules(verify(w.http, codes["100000005"])) == set()  # the new generation: read once
    reads = metrics.value("db_reads")
    assert rules(verify(w.http, codes["100000006"])) == set()
    assert rules(verify(w.http, codes["100000009"])) == {"not_in_use"}
    assert metrics.value("db_reads") == reads
