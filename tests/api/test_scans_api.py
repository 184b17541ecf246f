"""POST /api/v1/scans on both deployments: photos in, codes and a verdict out; every
malformed upload a 4xx problem, never a 500 (including a fuzzing pass)."""

from __future__ import annotations

import io
from datetime import date

import pytest
from flask import Flask
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.images import bomb_png, canvas, encode, label, paste, symbol
from webapp import container
from webapp.demo import seed

PROBLEM_STATUSES = {400, 413, 415, 422}


@pytest.fixture
def demo(any_app: Flask) -> dict[str, str]:
    return seed(container(any_app).admin, date.today())


def post(app: Flask, data: bytes, field: str = "image", **form: str):  # type: ignore[no-untyped-def]
    return app.test_client().post(
        "/api/v1/scans",
        data={field: (io.BytesIO(data), "label.jpg"), **form},
        content_type="multipart/form-data",
        headers={"Accept-Language": "en"},
    )


def test_qr_photo_is_verified(any_app: Flask, demo: dict[str, str]) -> None:
    resp = post(any_app, encode(label(qr=f"https://trace.example.cn/c/{demo['genuine']}")), client="dev-1")
    assert resp.status_code == 200, resp.get_data(as_text=True)
    body = resp.get_json()
    assert body["found"][0]["symbology"] == "qr"
    assert body["found"][0]["code"] == demo["genuine"]
    assert body["verification"]["verdict"] == "genuine"
    assert body["verification"]["scans"]["count"] == 1
    assert body["verification"]["scans"]["you"]["count"] == 1


def test_printed_digits_photo_is_verified(any_app: Flask, demo: dict[str, str]) -> None:
    body = post(any_app, encode(label(code=demo["voided"]))).get_json()
    assert [(f["symbology"], f["code"]) for f in body["found"]] == [("digits", demo["voided"])]
    assert body["verification"]["verdict"] == "voided"


def test_every_code_is_returned_and_the_label_code_wins(any_app: Flask, demo: dict[str, str]) -> None:
    img = label(qr=demo["genuine"])
    paste(img, symbol("6901234567892", "EAN13", scale=3), (650, 600))
    body = post(any_app, encode(img, "PNG")).get_json()
    by_symbology = {f["symbology"]: f for f in body["found"]}
    assert by_symbology["ean13"]["code"] is None  # a product number, never a label code
    assert body["verification"]["code"] == demo["genuine"]


def test_a_barcode_alone_is_found_but_not_verified(any_app: Flask, demo: dict[str, str]) -> None:
    img = paste(canvas(), symbol("6901234567892", "EAN13", scale=3), (300, 300))
    body = post(any_app, encode(img, "PNG")).get_json()
    assert body["found"][0]["payload"] == "6901234567892" and body["verification"] is None


def test_no_code(any_app: Flask) -> None:
    resp = post(any_app, encode(canvas()))
    assert resp.status_code == 422 and resp.get_json()["code"] == "no_code_found"
    assert resp.mimetype == "application/problem+json"


@pytest.mark.parametrize(
    "make,status,code",
    [
        (lambda: b"", 415, "not_an_image"),
        (lambda: b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF", 415, "not_an_image"),
        (lambda: encode(label(code="012326100000000001"))[:4000], 422, "corrupt_image"),
        (lambda: bomb_png(20_000), 413, "too_many_pixels"),
    ],
    ids=["zero-bytes", "pdf-named-jpg", "truncated-jpeg", "bomb"],
)
def test_malformed_uploads(embedded_app: Flask, make, status: int, code: str) -> None:  # type: ignore[no-untyped-def]
    resp = post(embedded_app, make())
    assert resp.status_code == status, resp.get_data(as_text=True)
    assert resp.get_json()["code"] == code


def _raw_multipart(payload: bytes) -> bytes:
    # Built by hand: the test client would spool a large body to a temporary file it never closes.
    head = b'--b\r\nContent-Disposition: form-data; name="image"; filename="a.jpg"\r\n\r\n'
    return head + payload + b"\r\n--b--\r\n"


def test_over_8mb_is_refused_before_the_body_is_read(embedded_app: Flask) -> None:
    body = _raw_multipart(b"\xff\xd8\xff" + b"\x00" * (9 * 1024 * 1024))
    http = embedded_app.test_client()
    resp = http.post("/api/v1/scans", data=body, content_type="multipart/form-data; boundary=b")
    assert resp.status_code == 413 and resp.get_json()["code"] == "image_too_large"
    # Without a Content-Length (chunked upload) the per-request limit stops the read.
    chunked = http.post(
        "/api/v1/scans",
        input_stream=io.BytesIO(body),
        content_type="multipart/form-data; boundary=b",
        environ_overrides={"wsgi.input_terminated": True},
    )
    assert chunked.status_code == 413, chunked.get_data(as_text=True)
    assert chunked.mimetype == "application/problem+json"


def test_request_shape_problems(embedded_app: Flask) -> None:
    http = embedded_app.test_client()
    assert http.post("/api/v1/scans", json={"image": "x"}).get_json()["code"] == "multipart_required"
    missing = http.post("/api/v1/scans", data={"lat": "1"}, content_type="multipart/form-data")
    assert missing.status_code == 400 and missing.get_json()["code"] == "image_required"
    bad_lat = post(embedded_app, encode(canvas()), lat="91")
    assert bad_lat.status_code == 400
    bad_location = post(embedded_app, encode(canvas()), location="{nope")
    assert bad_location.status_code == 400


_JPEG = encode(label(code="012326100000000001", qr="012326100000000001"), quality=70)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    cut=st.integers(0, len(_JPEG)),
    flips=st.lists(st.tuples(st.integers(0, len(_JPEG) - 1), st.integers(0, 255)), max_size=12),
    prefix=st.sampled_from(
        [b"", b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"RIFF\x00\x00\x00\x00WEBP", b"GIF89a", b"BM"]
    ),
)
def test_fuzzed_uploads_never_500(
    embedded_app: Flask, cut: int, flips: list[tuple[int, int]], prefix: bytes
) -> None:
    data = bytearray(_JPEG[:cut])
    for at, value in flips:
        if at < len(data):
            data[at] = value
    resp = post(embedded_app, prefix + bytes(data))
    assert resp.status_code in PROBLEM_STATUSES | {200}, resp.get_data(as_text=True)
    if resp.status_code != 200:
        assert resp.mimetype == "application/problem+json"
