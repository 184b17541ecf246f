"""The request helpers every entrypoint shares: the JSON body, parsed once per request,
and the bearer token."""

from __future__ import annotations

import json

import pytest
from flask import Flask

from domain.errors import BadInput
from verify_api.request_input import bearer_token, form_fields, json_body, json_body_or_none


@pytest.fixture
def app() -> Flask:
    return Flask(__name__)


def test_the_body_is_parsed_once_however_many_readers_ask(app: Flask) -> None:
    with app.test_request_context(method="POST", json={"input": "x", "client": "c1"}):
        first = json_body()
        assert first == {"input": "x", "client": "c1"}
        # The rate-limit hook and then the view: one parse, the same object.
        assert json_body_or_none() is first
        assert json_body() is first


@pytest.mark.parametrize(
    ("kwargs", "code"),
    [
        ({"data": "{not json", "content_type": "application/json"}, "invalid_json"),
        ({"data": "input=1", "content_type": "application/x-www-form-urlencoded"}, "json_required"),
        ({}, "json_required"),
    ],
)
def test_a_body_that_is_not_json_is_a_400_every_time_it_is_read(app: Flask, kwargs: dict, code: str) -> None:
    with app.test_request_context(method="POST", **kwargs):
        assert json_body_or_none() is None
        for _ in range(2):
            with pytest.raises(BadInput) as err:
                json_body()
            assert err.value.code == code


@pytest.mark.parametrize(
    "data",
    [
        b"\xef\xbb\xbf" + json.dumps({"input": "x"}).encode(),  # a BOM, as some Windows tools send
        json.dumps({"input": "x"}).encode("utf-16"),
    ],
)
def test_what_the_fast_parser_refuses_but_json_allows_is_still_read(app: Flask, data: bytes) -> None:
    with app.test_request_context(method="POST", data=data, content_type="application/json"):
        assert json_body() == {"input": "x"}


@pytest.mark.parametrize(
    ("header", "token"),
    [
        ("Bearer abc", "abc"),
        ("bearer   abc  ", "abc"),
        ("Bearer ", None),
        ("Bearer", None),
        ("Basic abc", None),
        ("abc", None),
        (None, None),
    ],
)
def test_bearer_tokens(app: Flask, header: str | None, token: str | None) -> None:
    headers = {"Authorization": header} if header is not None else {}
    with app.test_request_context(headers=headers):
        assert bearer_token() == token


def test_a_form_field_sent_as_null_or_empty_is_absent(app: Flask) -> None:
    # wx.uploadFile's formData and generated clients send a missing number as "null" or "".
    form = {"code": "012326100000000001", "lat": "31.2", "lng": "null", "shop": ""}
    with app.test_request_context(method="POST", data=form):
        assert form_fields() == {"code": "012326100000000001", "lat": "31.2"}
