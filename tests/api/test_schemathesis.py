"""Every operation of the OpenAPI document against the app, in process, by schemathesis.

Positive and negative data (the document's examples, its coverage cases and a few fuzzed
ones per operation), on both deployments with the demo data seeded so valid inputs reach
real records. Each answer is checked both ways: no 5xx, a documented status code, content
type and headers, a body that matches the documented schema, bad input refused and good
input accepted. Admin operations carry the bootstrap token, /wx/v1 ones a session from
the local fake of WeChat. Generation is derandomized with a fixed seed: a failure here is
the same on every run, never a flake.
"""

from __future__ import annotations

import csv
import io
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date
from typing import Any

import pymysql
import pytest
import redis as redis_lib
import schemathesis
from flask import Flask
from hypothesis import strategies as st
from jsonschema import Draft202012Validator
from PIL import Image
from schemathesis.config import SchemathesisConfig
from schemathesis.specs.openapi.checks import negative_data_rejection

from registry.scans import _encode_cursor
from tests.conftest import ADMIN, MYSQL_URL, _mysql_parts, _redis_db_url, _unavailable, make_app, settings_for
from tests.fakes.wechat_server import FakeWeChat
from tests.images import symbol
from verify_api.docs import spec
from webapp import container
from webapp.demo import demo_rows, seed

# Fuzzed cases per operation and generation mode; the examples and coverage phases add
# their own (a fixed set each). Bounded so the whole file stays well inside CI's time.
MAX_EXAMPLES = 15

CONFIG = SchemathesisConfig.from_dict(
    {
        "seed": 14,
        "generation": {
            "mode": "all",  # positive and negative
            "max-examples": MAX_EXAMPLES,
            "deterministic": True,
            "database": "none",
            # The token is the fixture's, never a generated one (see `auth_for`).
            "with-security-parameters": False,
        },
        "phases": {
            "examples": {"enabled": True},
            "coverage": {"enabled": True},
            "fuzzing": {"enabled": True},
        },
        "checks": {
            "not_a_server_error": {"enabled": True},
            "status_code_conformance": {"enabled": True},
            "content_type_conformance": {"enabled": True},
            "response_headers_conformance": {"enabled": True},
            "response_schema_conformance": {"enabled": True},
            "negative_data_rejection": {"enabled": True},
            "positive_data_acceptance": {"enabled": True},
        },
    }
)

TODAY = date.today()
_DEMO = demo_rows(TODAY)
DEMO_CODES = [row["code"] for row in _DEMO["codes"]] + [
    pair[role] for batch in _DEMO["batches"] for pair in batch["codes"] for role in ("a_code", "b_code")
]


def _png(payload: str) -> bytes:
    out = io.BytesIO()
    Image.fromarray(symbol(payload)).save(out, format="PNG")
    return out.getvalue()


# A schema can say "an image" but not "a photo of a label": valid photos are QR codes of
# demo codes (what a shopper photographs), so positive cases reach a verify answer.
schemathesis.openapi.media_type(
    "image/png", st.sampled_from([_png(f"https://label.example.cn/c/{code}") for code in DEMO_CODES[:4]])
)


def _csv(rows: list[dict[str, str]]) -> bytes:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=["code", "certificate", "product", "issued_on", "order"])
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue().encode()


# A code file: demo rows (idempotent upserts) and rows that are wrong in ways the
# per-row report must name.
_CSV_ROW = st.one_of(
    st.sampled_from(
        [
            {k: r[k] or "" for k in ("code", "certificate", "product", "issued_on", "order")}
            for r in _DEMO["codes"]
        ]
    ),
    st.fixed_dictionaries(
        {
            "code": st.from_regex(r"\A[0-9]{0,20}\Z"),
            "certificate": st.sampled_from(["0123OP2600017", "nope", ""]),
            "product": st.sampled_from(["有机大米", "", "x"]),
        }
    ),
)
schemathesis.openapi.media_type("text/csv", st.lists(_CSV_ROW, max_size=5).map(_csv))
# What a shopper reports: a code from a label (demo ones, and others of the right shape).
schemathesis.openapi.format(
    "label-code", st.one_of(st.sampled_from(DEMO_CODES), st.from_regex(r"\A0123[0-9]{14}\Z"))
)

# The flags' page cursor is opaque: valid ones are those the API hands out.
schemathesis.openapi.format(
    "flag-cursor",
    st.builds(
        _encode_cursor, st.datetimes(timezones=st.just(UTC)), st.integers(min_value=1, max_value=10**9)
    ),
)

# A webhook's URL: http(s) to a public name (private addresses are refused by design).
schemathesis.openapi.format(
    "webhook-url", st.from_regex(r"\Ahttps?://[a-z]{3,12}\.example\.com(/[a-z0-9]{0,12}){0,2}\Z")
)
schema = schemathesis.openapi.from_dict(spec(), config=CONFIG)

# Bulk writes answer bad rows one by one (CONTRACT: "report per-row errors without
# dropping the good rows"): a row that breaks its schema is a 200 naming that row in
# `rejected`, not a 4xx for the whole request. For these operations the generic
# negative_data_rejection check is replaced by `bad_rows_are_rejected_row_by_row`,
# which asks more: every schema-invalid row, and each one by its index.
_ROW_SCHEMAS = {
    "POST /api/v1/admin/bodies": "BodyRow",
    "POST /api/v1/admin/certificates": "CertificateRow",
    "POST /api/v1/admin/codes": "CodeRow",
    "POST /api/v1/admin/scans": "ScanEventRow",
    "POST /api/v1/admin/product-specs": "SpecRow",
    "POST /api/v1/admin/orders/{number}/printer-codes": "PrinterCodeRow",
    "POST /api/v1/admin/grain-purchases": "GrainPurchaseRow",
}


def _row_validator(name: str) -> Draft202012Validator:
    return Draft202012Validator({"$ref": f"#/components/schemas/{name}", "components": spec()["components"]})


_ROW_VALIDATORS = {label: _row_validator(name) for label, name in _ROW_SCHEMAS.items()}


def bad_rows_are_rejected_row_by_row(ctx: Any, response: Any, case: Any) -> bool | None:
    validator = _ROW_VALIDATORS.get(case.operation.label)
    if validator is None or not isinstance(case.body, (list, dict)) or case.media_type != "application/json":
        return None
    rows = case.body if isinstance(case.body, list) else [case.body]  # one object is one row
    if response.status_code != 200 or case.method.upper() != "POST":
        return None  # other answers (and the OPTIONS of the method checks) are judged elsewhere
    rejected = {item["row"] for item in response.json()["rejected"]}
    invalid = [i for i, row in enumerate(rows) if not validator.is_valid(row)]
    missed = [i for i in invalid if i not in rejected]
    assert not missed, (
        f"rows {missed} break the row schema but were not rejected: {[rows[i] for i in missed]}"
    )
    return True


@dataclass
class Target:
    app: Flask
    tokens: dict[str, str]
    cases: dict[str, int] = field(default_factory=dict)

    def auth_for(self, security: list[dict[str, Any]] | None) -> dict[str, str]:
        for requirement in security or []:
            for scheme in requirement:
                return {"Authorization": f"Bearer {self.tokens[scheme]}"}
        return {}


@pytest.fixture(scope="module")
def wechat() -> Iterator[FakeWeChat]:
    fake = FakeWeChat().start()
    yield fake
    fake.stop()


def _seeded(app: Flask) -> Flask:
    c = container(app)
    seed(c.admin, date.today(), c.scan_admin)
    return app


@pytest.fixture(scope="module", params=["embedded", "services"])
def target(
    request: pytest.FixtureRequest, wechat: FakeWeChat, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Target]:
    wx = {"wechat_appid": "wx-app", "wechat_secret": "wx-secret", "wechat_api_base": wechat.base}
    cleanup = []
    if request.param == "embedded":
        db = tmp_path_factory.mktemp("schemathesis") / "verify.sqlite3"
        settings = settings_for(f"sqlite:///{db}", **wx)
    else:
        name = f"ovt_st_{uuid.uuid4().hex[:10]}"
        try:
            conn = pymysql.connect(**_mysql_parts(), connect_timeout=3)  # type: ignore[arg-type]
            redis_url = _redis_db_url()
            redis_client = redis_lib.Redis.from_url(redis_url, socket_timeout=2)
            redis_client.ping()
        except (pymysql.MySQLError, redis_lib.RedisError) as exc:
            _unavailable("MariaDB or Redis", exc)
        with conn.cursor() as cur:
            cur.execute(f"CREATE DATABASE {name} CHARACTER SET utf8mb4")
        redis_client.flushdb()
        from sqlalchemy.engine import make_url

        url = make_url(MYSQL_URL).set(database=name).render_as_string(hide_password=False)
        settings = settings_for(url, redis_url, **wx)

        def drop() -> None:
            with conn.cursor() as cur:
                cur.execute(f"DROP DATABASE IF EXISTS {name}")
            conn.close()
            redis_client.flushdb()
            redis_client.close()

        cleanup.append(drop)
    app = _seeded(make_app(settings))
    login = app.test_client().post("/wx/v1/login", json={"js_code": "schemathesis-shopper"})
    assert login.status_code == 200, login.get_data(as_text=True)
    tokens = {"bearer": ADMIN["Authorization"].split()[1], "wx": login.get_json()["token"]}
    found = Target(app, tokens)
    yield found
    total = sum(found.cases.values())
    print(
        f"\nschemathesis on {request.param}: {total} cases over {len(found.cases)} operations",
        file=sys.stderr,
    )
    for fn in cleanup:
        fn()


@schema.parametrize()
def test_every_operation_answers_as_its_document_says(case: Any, target: Target) -> None:
    label = case.operation.label
    target.cases[label] = target.cases.get(label, 0) + 1
    # What `from_wsgi` sets: checks that send requests of their own (ignored_auth sends
    # one without the token) go to this deployment's app too.
    case.operation.schema.app = case.operation.app = target.app
    security = case.operation.definition.raw.get("security")
    bulk = case.operation.label in _ROW_VALIDATORS
    case.call_and_validate(
        headers=target.auth_for(security),
        additional_checks=[bad_rows_are_rejected_row_by_row],
        excluded_checks=[negative_data_rejection] if bulk else [],
    )
