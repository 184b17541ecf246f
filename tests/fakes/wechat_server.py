"""A local fake of WeChat's server API (real HTTP on 127.0.0.1, a random port), for tests.

Scriptable: a js_code "err-<errcode>" answers that errcode; `expire_current()` makes the
next call carrying the current token fail with 40001 once; text containing "RISKY" fails
the content check; an image whose bytes contain b"RISKY" fails the image check. Every
access token it issues is counted in `issued`, across threads and processes' calls.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest


class FakeWeChat:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.issued = 0
        self.valid: set[str] = set()
        self.expire_next: set[str] = set()
        self.calls: list[str] = []
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self) -> FakeWeChat:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def expire_current(self) -> None:
        with self.lock:
            self.expire_next |= self.valid

    def _issue(self) -> dict:
        with self.lock:
            self.issued += 1
            token = f"token-{self.issued}"
            self.valid.add(token)
        time.sleep(0.05)  # a real round trip takes time: races have room to happen
        return {"access_token": token, "expires_in": 7200}

    def _token_ok(self, token: str | None) -> dict | None:
        with self.lock:
            if token in self.expire_next:
                self.expire_next.discard(token)
                self.valid.discard(token)
                return {
                    "errcode": 40001,
                    "errmsg": "invalid credential, access_token is invalid or not latest",
                }
            if token not in self.valid:
                return {"errcode": 40001, "errmsg": "invalid credential"}
        return None

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                return None

            def _send(self, body: dict) -> None:
                raw = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def _body(self) -> bytes:
                return self.rfile.read(int(self.headers.get("Content-Length") or 0))

            def do_GET(self) -> None:
                url = urlsplit(self.path)
                q = {k: v[0] for k, v in parse_qs(url.query).items()}
                fake.calls.append(url.path)
                if url.path == "/cgi-bin/token":
                    return self._send(fake._issue())
                if url.path == "/sns/jscode2session":
                    code = q.get("js_code", "")
                    if code.startswith("err-"):
                        return self._send({"errcode": int(code[4:]), "errmsg": "scripted"})
                    problem = fake._token_ok(q.get("access_token"))
                    if problem:
                        return self._send(problem)
                    openid = "o" + hashlib.sha256(code.encode()).hexdigest()[:27]
                    return self._send({"openid": openid, "session_key": "SK-" + code[::-1], "errcode": 0})
                self.send_error(404)
                return None

            def do_POST(self) -> None:
                url = urlsplit(self.path)
                q = {k: v[0] for k, v in parse_qs(url.query).items()}
                body = self._body()
                fake.calls.append(url.path)
                if url.path == "/cgi-bin/stable_token":
                    return self._send(fake._issue())
                problem = fake._token_ok(q.get("access_token"))
                if problem:
                    return self._send(problem)
                if url.path == "/wxa/msg_sec_check":
                    data = json.loads(body)
                    risky = "RISKY" in data.get("content", "")
                    return self._send(
                        {
                            "errcode": 0,
                            "result": {
                                "suggest": "risky" if risky else "pass",
                                "label": 20001 if risky else 100,
                            },
                        }
                    )
                if url.path == "/wxa/img_sec_check":
                    if b"RISKY" in body:
                        return self._send({"errcode": 87014, "errmsg": "risky content"})
                    return self._send({"errcode": 0, "errmsg": "ok"})
                self.send_error(404)
                return None

        return Handler


@pytest.fixture
def fake_wechat() -> Iterator[FakeWeChat]:
    fake = FakeWeChat().start()
    yield fake
    fake.stop()
