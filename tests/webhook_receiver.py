"""A real local HTTP receiver for webhook tests: records every POST (headers, exact body
bytes, when it arrived) and answers from a script of statuses (the last one repeats)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float  # time.monotonic() on arrival


@dataclass
class Receiver:
    url: str
    statuses: list[int]
    received: list[Received] = field(default_factory=list)
    location: str | None = None  # the Location of a 3xx answer
    arrived: threading.Condition = field(default_factory=threading.Condition)

    def wait_for(self, n: int, timeout_s: float) -> list[Received]:
        """The first `n` requests, waiting up to `timeout_s` for them."""
        with self.arrived:
            self.arrived.wait_for(lambda: len(self.received) >= n, timeout_s)
            return list(self.received)


@contextmanager
def receiver(statuses: list[int] | None = None, location: str | None = None) -> Iterator[Receiver]:
    state = Receiver("", list(statuses or [200]), location=location)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            with state.arrived:
                n = len(state.received)
                status = state.statuses[min(n, len(state.statuses) - 1)]
                state.received.append(Received(self.path, dict(self.headers.items()), body, time.monotonic()))
                state.arrived.notify_all()
            self.send_response(status)
            if 300 <= status < 400 and state.location:
                self.send_header("Location", state.location)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}/hooks/flags"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
