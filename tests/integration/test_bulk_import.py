"""`flask import-codes` on MariaDB + Redis: LOAD DATA through the writer processes, rows as
written (escapes included), bad rows reported, good ones verifiable at once."""

from __future__ import annotations

import csv
import gc
from datetime import date
from pathlib import Path

import sqlalchemy as sa
from flask import Flask

from domain.bulk import Scope
from webapp import container

CERT = f"0123OP{date.today().year % 100:02d}00017"
YY = f"{date.today().year % 100:02d}"


def _code(n: int) -> str:
    return f"0123{YY}{n:012d}"


def test_cli_import_lands_every_good_row_exactly(service_app: Flask, tmp_path: Path) -> None:
    c = container(service_app)
    scope = Scope("all", None, None, "test")
    c.admin.upsert_bodies([{"code": "0123", "name": "Test body"}], scope)
    c.admin.upsert_certificates(
        [
            {
                "number": CERT,
                "body_code": "0123",
                "holder": "示范农场",
                "valid_from": f"20{YY}-01-01",
                "valid_until": f"20{YY}-12-31",
                "products": [{"name": "有机大米"}],
            }
        ],
        scope,
    )
    # Identity codes LOAD DATA would misread if written raw: a tab, a backslash, "\N".
    identities = {1: "plain-1", 2: "tab\there", 3: "back\\slash", 4: "\\N", 5: "", 6: "line\nbreak"}
    path = tmp_path / "codes.csv"
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["code", "identity_code", "certificate", "product", "issued_on", "package"])
        for n, identity in identities.items():
            w.writerow([_code(n), identity, CERT, "有机大米", f"20{YY}-02-01", "5kg"])
        w.writerow(["12345", "x", CERT, "有机大米", "", ""])  # not a code
        w.writerow([_code(7), "", "0123OP0000099", "有机大米", "", ""])  # unknown certificate
        for n in range(100, 2100):  # more than one chunk at --chunk 500
            w.writerow([_code(n), "", CERT, "有机大米", "", ""])
    rejects = tmp_path / "rejects.csv"
    result = service_app.test_cli_runner().invoke(
        args=["import-codes", str(path), "--rejects", str(rejects), "--chunk", "500"]
    )
    assert result.exit_code == 0, result.output
    assert "2,006 codes accepted, 2 rejected" in result.output
    assert gc.isenabled()  # off while the import ran, on again after it

    with rejects.open(newline="", encoding="utf-8") as fh:
        rejected = list(csv.DictReader(fh))
    assert [(r["row"], r["code"]) for r in rejected] == [("6", "invalid_code"), ("7", "unknown_certificate")]

    with c.registry.engine.connect() as conn:
        rows = dict(
            conn.execute(
                sa.text("SELECT code, identity_code FROM organic_codes WHERE code < :top"),
                {"top": int(_code(100))},
            ).all()
        )
        total = conn.execute(sa.text("SELECT COUNT(*) FROM organic_codes")).scalar()
    assert total == 2006
    assert rows == {int(_code(n)): (identity or None) for n, identity in identities.items()}
    with c.registry.engine.connect() as conn:
        issued = dict(
            conn.execute(
                sa.text("SELECT code, issued_on FROM organic_codes WHERE code IN (:a, :b)"),
                {"a": int(_code(1)), "b": int(_code(100))},
            ).all()
        )
    # A date as given; none given is NULL (LOAD DATA's \N), not a zero date.
    assert issued == {int(_code(1)): date.fromisoformat(f"20{YY}-02-01"), int(_code(100)): None}

    client = service_app.test_client()
    for n in (1, 4, 2099):
        answer = client.post("/api/v1/verify", json={"input": _code(n)}).get_json()
        assert answer["verdict"] == "genuine", answer
    assert client.post("/api/v1/verify", json={"input": _code(7)}).get_json()["verdict"] == "not_found"
