"""CPU seconds spent by each party of a bulk write on one host: this process (all its
threads), its children, MariaDB's threads serving one database's connections, and the
Redis server. On a host shared with other work, wall-clock rates move with the neighbours;
the CPU a million codes costs each party does not (much), and their sum over the cores
bounds the rate an idle host could reach.

MariaDB runs a thread per connection and names it in information_schema.PROCESSLIST.TID:
the threads whose connection uses the database are read from /proc four times a second
while the work runs (a connection that closes between two reads loses at most its last
quarter second) and once at the end; MariaDB's background threads, shared by every
database, are not counted. Redis's CPU is the
whole server's (INFO cpu): other users of the server add to it.
"""

from __future__ import annotations

import os
import resource
import threading
import time
from dataclasses import dataclass, field
from typing import Any

_TICK = os.sysconf("SC_CLK_TCK")


def _mysqld_pid() -> int | None:
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                with open(f"/proc/{pid}/comm") as fh:
                    if fh.read().strip() in ("mariadbd", "mysqld"):
                        return int(pid)
            except OSError:
                continue
    return None


def _thread_cpu(pid: int, tid: int) -> float:
    try:
        with open(f"/proc/{pid}/task/{tid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TICK


def _self_cpu() -> float:
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


@dataclass
class CpuAccount:
    """Start before the work, `stop` after it (while its connections are still open)."""

    sql: Any  # a pymysql connection (autocommit) to ask PROCESSLIST
    database: str
    redis: Any
    mysqld: int | None = field(default_factory=_mysqld_pid)

    def __post_init__(self) -> None:
        self._before = self._all_threads()
        self._seen: dict[int, float] = {}  # tid -> its CPU at the last read
        self._redis = self._redis_cpu()
        self._self = _self_cpu()
        self._wall = time.perf_counter()
        self._done = threading.Event()
        self._sampler = threading.Thread(target=self._sample_until_done, daemon=True)
        self._sampler.start()

    def _all_threads(self) -> dict[int, float]:
        if self.mysqld is None:
            return {}
        return {int(t): _thread_cpu(self.mysqld, int(t)) for t in os.listdir(f"/proc/{self.mysqld}/task")}

    def _redis_cpu(self) -> float:
        info = self.redis.info("cpu")
        return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])

    def _sample(self) -> None:
        if self.mysqld is None:
            return
        with self.sql.cursor() as cur:
            cur.execute(
                "SELECT tid FROM information_schema.processlist WHERE db = %s AND id <> CONNECTION_ID()",
                (self.database,),
            )
            tids = [int(r[0]) for r in cur.fetchall()]
        for tid in tids:
            self._seen[tid] = _thread_cpu(self.mysqld, tid)

    def _sample_until_done(self) -> None:
        while not self._done.wait(0.25):
            self._sample()

    def stop(self) -> dict[str, float]:
        wall = time.perf_counter() - self._wall
        app = _self_cpu() - self._self
        redis_s = self._redis_cpu() - self._redis
        self._done.set()
        self._sampler.join()
        self._sample()
        db_s = sum(cpu - self._before.get(tid, 0.0) for tid, cpu in self._seen.items())
        return {"wall": wall, "app": app, "mariadb": db_s, "redis": redis_s}


def report(n: int, cpu: dict[str, float], cores: int = 2) -> str:
    """CPU seconds per million codes by party, and the rate their sum allows on idle cores."""
    per_m = {k: v * 1_000_000 / n for k, v in cpu.items()}
    busy = per_m["app"] + per_m["mariadb"] + per_m["redis"]
    bound = 1_000_000 / max(busy / cores, per_m["mariadb"], 1e-9)
    return (
        f"CPU s per 1 M codes: app {per_m['app']:.1f} (all its threads and processes), "
        f"MariaDB {per_m['mariadb']:.1f} (the database's connections), Redis {per_m['redis']:.1f} "
        f"(whole server); sum {busy:.1f} -> at most {bound:,.0f} codes/s on {cores} idle cores"
    )
