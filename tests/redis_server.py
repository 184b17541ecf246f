"""A redis-server child of the test on a free port, for tests that stop, stall or restart
their Redis (the shared server on 6379 is never touched). Missing redis-server fails the
test under REQUIRE_SERVICES=1 and skips it otherwise."""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest
import redis as redis_lib

from tests.conftest import REQUIRED


class RedisChild:
    def __init__(self, root: Path, why: str) -> None:
        self.root = root
        self.why = why  # which tests need it, for the failure message
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = int(s.getsockname()[1])
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        server = shutil.which("redis-server")
        if server is None:
            if REQUIRED:
                pytest.fail(f"redis-server is needed for {self.why} and REQUIRE_SERVICES=1")
            pytest.skip("redis-server is not installed")
        self.proc = subprocess.Popen(
            [server, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.root),
             "--save", "", "--appendonly", "no", "--logfile", str(self.root / "log")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        client = redis_lib.Redis(port=self.port, socket_timeout=1)
        end = time.monotonic() + 20
        while True:
            try:
                client.ping()
                return
            except redis_lib.ConnectionError:
                if time.monotonic() > end or self.proc.poll() is not None:
                    raise
                time.sleep(0.05)

    def pause(self) -> None:
        # CLIENT UNPAUSE would itself wait out the pause: a long pause, ended by restart().
        redis_lib.Redis(port=self.port).execute_command("CLIENT", "PAUSE", 60_000, "ALL")

    def kill(self) -> None:
        """Gone at once, its data with it."""
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(timeout=10)

    def shutdown_saving(self) -> None:
        """Gone at once; its data comes back with the next start (a restart)."""
        assert self.proc is not None
        with contextlib.suppress(redis_lib.ConnectionError):
            redis_lib.Redis(port=self.port, socket_timeout=5).shutdown(save=True)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()
