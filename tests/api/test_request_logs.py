"""Structured logs (issue 15, item 7): one JSON line per request, with the request id the
answer carries, the route, the status and the duration; never the IP, the client id or
the code."""

from __future__ import annotations

from datetime import date

import orjson
import pytest
from flask import Flask

from webapp import container
from webapp.demo import seed

IP = "203.0.113.77"
CLIENT = "shopper-private-id-42"


def _lines(err: str) -> list[dict[str, object]]:
    return [orjson.loads(line) for line in err.splitlines() if line.startswith("{")]


def test_one_request_writes_one_json_line_with_its_id_route_status_and_duration(
    embedded_app: Flask, capsys: pytest.CaptureFixture[str]
) -> None:
    code = seed(container(embedded_app).admin, date.today())["genuine"]
    http = embedded_app.test_client()
    capsys.readouterr()
    resp = http.post(
        "/api/v1/verify",
        json={"input": code, "client": CLIENT},
        headers={"X-Request-Id": "req-abc.123"},
        environ_base={"REMOTE_ADDR": IP},
    )
    assert resp.status_code == 200
    err = capsys.readouterr().err
    requests = [line for line in _lines(err) if line.get("logger") == "webapp.request"]
    assert len(requests) == 1
    line = requests[0]
    assert line["request_id"] == resp.headers["X-Request-Id"] == "req-abc.123"
    assert line["route"] == "/api/v1/verify"
    assert line["method"] == "POST"
    assert line["status"] == 200
    assert isinstance(line["duration_ms"], float) and line["duration_ms"] >= 0
    assert line["level"] == "info" and "timestamp" in line
    for secret in (IP, CLIENT, code):
        assert secret not in err


def test_a_path_that_carries_a_code_is_logged_as_its_route_template(
    embedded_app: Flask, capsys: pytest.CaptureFixture[str]
) -> None:
    code = seed(container(embedded_app).admin, date.today())["genuine"]
    http = embedded_app.test_client()
    capsys.readouterr()
    resp = http.get(f"/api/v1/codes/{code}", environ_base={"REMOTE_ADDR": IP})
    err = capsys.readouterr().err
    (line,) = [line for line in _lines(err) if line.get("logger") == "webapp.request"]
    assert line["route"] == "/api/v1/codes/<path:code>"
    assert line["request_id"] == resp.headers["X-Request-Id"]
    assert code not in err and IP not in err


def test_an_unknown_path_is_logged_without_a_route(
    embedded_app: Flask, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    resp = embedded_app.test_client().get("/no/such/page")
    (line,) = [line for line in _lines(capsys.readouterr().err) if line.get("logger") == "webapp.request"]
    assert resp.status_code == 404
    assert line["status"] == 404 and line["route"] is None


def test_a_broken_log_pipe_loses_the_line_not_the_answer(
    embedded_app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    class Broken:
        def write(self, _text: str) -> int:
            raise BrokenPipeError

        def flush(self) -> None:
            raise BrokenPipeError

    monkeypatch.setattr("sys.stderr", Broken())
    assert embedded_app.test_client().get("/healthz").status_code == 200
