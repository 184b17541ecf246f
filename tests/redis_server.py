"""A redis-server child of the test on a free port, for tests that stop, stall or restart
their Redis (the shared server on 6379 is never touched), and a Redis Cluster of them.
Missing redis-server fails the test under REQUIRE_SERVICES=1 and skips it otherwise."""

from __future__ import annotations

import contextlib
import random
import shutil
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

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


def free_cluster_ports(n: int) -> list[int]:
    """n distinct ports whose cluster bus ports (+10000) are free too, all below 55536."""
    rng = random.Random()
    ports: list[int] = []
    while len(ports) < n:
        port = rng.randrange(20_000, 45_000)
        taken = {q for p in ports for q in (p, p + 10_000)}
        if {port, port + 10_000} & taken:
            continue
        try:
            for p in (port, port + 10_000):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", p))
        except OSError:
            continue
        ports.append(port)
    return ports


def wait_for(ready: Callable[[], Any], procs: list[subprocess.Popen[bytes]], seconds: float = 30) -> None:
    end = time.monotonic() + seconds
    while True:
        for proc in procs:
            if proc.poll() is not None:
                raise RuntimeError(f"a cluster node exited with {proc.returncode}")
        try:
            if ready():
                return
        except redis_lib.RedisError:
            pass
        if time.monotonic() > end:
            raise TimeoutError("the Redis Cluster did not get ready")
        time.sleep(0.1)


class ClusterChild:
    """A Redis Cluster of redis-server children: `primaries` primaries with `replicas`
    replicas each, optionally with AOF (fsync always), node timeout 2 s (a dead primary's
    replica is promoted a few seconds later)."""

    def __init__(self, root: Path, primaries: int = 3, replicas: int = 0, *, aof: bool = False) -> None:
        self.root = root
        self.primaries = primaries
        self.replicas = replicas
        self.aof = aof
        self.ports = free_cluster_ports(primaries * (1 + replicas))
        self.procs: dict[int, subprocess.Popen[bytes]] = {}
        self.waiting = ""  # what wait_ok last waited for (in its timeout's message)

    @property
    def nodes(self) -> str:
        return ",".join(f"127.0.0.1:{p}" for p in self.ports)

    @property
    def url(self) -> str:
        return f"redis+cluster://{self.nodes}"

    def start_node(self, port: int) -> None:
        server = shutil.which("redis-server")
        assert server is not None
        node = self.root / str(port)
        node.mkdir(exist_ok=True)
        persistence = (
            ["--appendonly", "yes", "--appendfsync", "always"] if self.aof else ["--appendonly", "no"]
        )
        # In the foreground, as children: a failed bind shows, and nothing outlives the test.
        self.procs[port] = subprocess.Popen(
            [server, "--port", str(port), "--bind", "127.0.0.1", "--cluster-enabled", "yes",
             "--cluster-config-file", str(node / "nodes.conf"), "--dir", str(node), "--save", "",
             *persistence, "--cluster-node-timeout", "2000",
             # A replica takes over however long it was cut off (the default refuses one
             # whose link is older than ten node timeouts).
             "--cluster-replica-validity-factor", "0", "--logfile", str(node / "log")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip

    def start(self) -> None:
        server, cli = shutil.which("redis-server"), shutil.which("redis-cli")
        if not server or not cli:
            if REQUIRED:
                pytest.fail("redis-server/redis-cli are needed for the cluster tests and REQUIRE_SERVICES=1")
            pytest.skip("redis-server is not installed")
        for port in self.ports:
            self.start_node(port)
        procs = list(self.procs.values())
        for port in self.ports:
            wait_for(lambda p=port: redis_lib.Redis(port=p, socket_timeout=1).ping(), procs)
        subprocess.run(
            [cli, "--cluster", "create", *(f"127.0.0.1:{p}" for p in self.ports),
             "--cluster-replicas", str(self.replicas), "--cluster-yes"],
            check=True, capture_output=True, timeout=60,
        )  # fmt: skip
        self.wait_ok()

    def wait_ok(self, seconds: float = 30, *, replicated: bool = True) -> None:
        """Every live node says the cluster is ok, and (`replicated`) every primary has its
        replicas in sync."""
        live = [p for p, proc in self.procs.items() if proc.poll() is None]

        def ok() -> bool:
            for port in live:
                node = redis_lib.Redis(port=port, socket_timeout=1)
                if node.execute_command("CLUSTER INFO")["cluster_state"] != "ok":
                    self.waiting = f"{port}: cluster state not ok"
                    return False
                info = node.info("replication")
                self.waiting = f"{port}: {info}"
                if not replicated:
                    continue
                if info["role"] == "master" and int(info["connected_slaves"]) < self.replicas:
                    return False
                if info["role"] == "slave" and info["master_link_status"] != "up":
                    return False  # still syncing: it could not take over yet
            return True

        try:
            wait_for(ok, [self.procs[p] for p in live], seconds)
        except TimeoutError as exc:
            raise TimeoutError(f"{exc}: {self.waiting}") from exc

    def primary_of(self, key: str) -> int:
        """The port of the primary serving `key`'s slot now."""
        for port, proc in self.procs.items():
            if proc.poll() is not None:
                continue
            node = redis_lib.Redis(port=port, socket_timeout=1)
            slot = int(node.execute_command("CLUSTER KEYSLOT", key))
            for start, end, primary, *_ in node.execute_command("CLUSTER SLOTS"):
                if start <= slot <= end:
                    return int(primary[1])
        raise RuntimeError("no live node knows the slot")

    def kill(self, port: int) -> None:
        proc = self.procs[port]
        proc.kill()
        proc.wait(timeout=10)

    def signal_all(self, sig: int) -> None:
        for proc in self.procs.values():
            proc.send_signal(sig)

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=10)
