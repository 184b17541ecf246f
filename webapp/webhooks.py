"""Sending webhook alerts: the HTTP adapter (domain.alerts.WebhookSender over urllib3) and
the delivery loop the worker runs beside its stream consumer (`flask worker`), or the
embedded web process runs in a thread (it has no worker).

The sender never follows a redirect (a 3xx is a failed try, logged with its status) and,
unless WEBHOOK_ALLOW_PRIVATE is set, sends only to public addresses: the URL's name is
resolved once, every address must be global, and the connection goes to that address
(with the name as Host and TLS server name), so a name that resolves elsewhere between
the check and the connection cannot reach the internal network.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import threading
import time
from collections.abc import Callable
from urllib.parse import urlsplit

import urllib3

from domain.alerts import SendResult

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 3.0
READ_TIMEOUT_S = 10.0
USER_AGENT = "organic-verify-webhooks/1"
UNRESOLVED = "the host does not resolve: "


class HttpSender:
    def __init__(
        self,
        *,
        allow_private: bool = False,
        connect_timeout_s: float = CONNECT_TIMEOUT_S,
        read_timeout_s: float = READ_TIMEOUT_S,
    ) -> None:
        self.allow_private = allow_private
        self.timeout = urllib3.Timeout(connect=connect_timeout_s, read=read_timeout_s)

    def _resolve(self, url: str) -> tuple[str, str, int, str] | str:
        """(scheme, host, port, address to connect to), or why not."""
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme not in ("http", "https") or not parts.hostname:
            return "not an http or https URL with a host"
        if parts.username or parts.password:
            return "credentials in the URL are not allowed; the signature authenticates us"
        try:
            port = parts.port or (443 if scheme == "https" else 80)
        except ValueError:
            return "the port is not a number from 1 to 65535"
        host = parts.hostname
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (socket.gaierror, UnicodeError):
            return f"{UNRESOLVED}{host}"
        addresses = [str(info[4][0]) for info in infos]
        if not self.allow_private:
            for address in addresses:
                if not ipaddress.ip_address(address.split("%")[0]).is_global:
                    return f"the host {host} resolves to a non-public address"
        return scheme, host, port, addresses[0]

    def check_url(self, url: str) -> str | None:
        """Why a webhook may not have this URL. A name that does not resolve now is
        allowed (DNS may be away, the receiver not yet set up): each send checks again."""
        resolved = self._resolve(url)
        if isinstance(resolved, str):
            return None if resolved.startswith(UNRESOLVED) else resolved
        return None

    def send(self, url: str, body: bytes, headers: dict[str, str]) -> SendResult:
        start = time.perf_counter()

        def took() -> int:
            return round((time.perf_counter() - start) * 1000)

        resolved = self._resolve(url)
        if isinstance(resolved, str):
            return SendResult(None, resolved, took())
        scheme, host, port, address = resolved
        parts = urlsplit(url)
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        default_port = 443 if scheme == "https" else 80
        all_headers = {
            **headers,
            "Host": host if port == default_port else f"{host}:{port}",
            "User-Agent": USER_AGENT,
        }
        pool: urllib3.HTTPConnectionPool
        if scheme == "https":
            pool = urllib3.HTTPSConnectionPool(
                address, port, timeout=self.timeout, retries=False, server_hostname=host, assert_hostname=host
            )
        else:
            pool = urllib3.HTTPConnectionPool(address, port, timeout=self.timeout, retries=False)
        try:
            response = pool.urlopen(
                "POST", path, body=body, headers=all_headers, redirect=False, preload_content=False
            )
            status = response.status
            response.drain_conn()
            response.release_conn()
        except urllib3.exceptions.HTTPError as exc:
            return SendResult(None, f"{type(exc).__name__}: {exc}"[:300], took())
        finally:
            pool.close()
        error = None
        if 300 <= status < 400:
            error = "redirects are not followed"
        elif not 200 <= status < 300:
            error = f"the receiver answered {status}"
        return SendResult(status, error, took())


class Deliverer:
    """Sends the outbox's due alerts every `poll_s` until stopped (a daemon thread)."""

    def __init__(self, deliver_due: Callable[[], int], *, poll_s: float = 1.0) -> None:
        self.deliver_due = deliver_due
        self.poll_s = poll_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def run(self) -> None:
        while not self._stop.is_set():
            try:
                # Keep going while a pass found a full batch; otherwise wait for the next poll.
                while self.deliver_due() and not self._stop.is_set():
                    pass
            except Exception:  # the database away: the outbox keeps the alerts; try again
                log.exception("webhook delivery pass failed; retrying")
            self._stop.wait(self.poll_s)

    def start(self) -> Deliverer:
        self._thread = threading.Thread(target=self.run, name="webhook-deliverer", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float | None = 15.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
