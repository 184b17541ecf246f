"""Redis adapters for the verify path: the shared record cache, change generations and the
shared filter of issued codes. Every call is bounded in milliseconds and fails open.

redis-py's defaults are seconds (NOTES.md); a stuck Redis must cost a request tens of
milliseconds, not a worker. After an error the adapter stays away for `backoff_s` so an
outage costs one timeout per second per worker, not one per request, and each miss is
counted in `redis_errors`.

These tiers also run on Redis Cluster (`redis+cluster://` URLs) with the same key names
as on one server (so a rolling upgrade keeps reading what the old release writes): no
call spans slots atomically. Generations are two GETs in one pipeline, the filter's
transaction covers its bits alone, and many codes' keys are unlinked one per command.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import hiredis
import redis
from redis.backoff import ExponentialBackoff, NoBackoff
from redis.cluster import ClusterNode, RedisCluster
from redis.exceptions import RedisClusterException
from redis.retry import Retry

from cache import keys
from cache.bloom import BloomFilter, positions
from domain import metrics

log = logging.getLogger(__name__)


CLUSTER_SCHEME = "redis+cluster://"
# Up to this many bits a filter add sends BITFIELD SETs; past it, the whole string (measured).
_BITFIELD_MAX_BITS = 24_000
# What a failing Redis raises: a cluster that cannot be reached raises
# RedisClusterException, which is not a RedisError.
REDIS_ERRORS = (redis.RedisError, OSError, RedisClusterException)


def is_cluster(url: str | None) -> bool:
    return bool(url) and str(url).startswith(CLUSTER_SCHEME)


def cluster_nodes(url: str) -> tuple[list[ClusterNode], str | None, str | None]:
    """`redis+cluster://[user:password@]host:port[,host:port…]`: the startup nodes and
    credentials (any reachable node is enough; the rest are discovered)."""
    rest = url[len(CLUSTER_SCHEME) :].split("/", 1)[0]
    user = password = None
    if "@" in rest:
        auth, rest = rest.rsplit("@", 1)
        user, _, password = auth.rpartition(":")
        user = user or None
    nodes = []
    for part in rest.split(","):
        host, _, port = part.strip().rpartition(":")
        if not host or not port.isdigit():
            raise ValueError(f"not a host:port in REDIS_URL: {part!r}")
        nodes.append(ClusterNode(host, int(port)))  # type: ignore[no-untyped-call]  # redis-py leaves it untyped
    return nodes, user, password


class LazyCluster:
    """A RedisCluster built on first use, and again after a failed attempt: the client
    connects when it is created, and a cluster that is down at start must cost the app
    its cache (answers from the database), not its start."""

    def __init__(self, factory: Callable[[], RedisCluster]) -> None:
        self._factory = factory
        self._client: RedisCluster | None = None
        self._lock = threading.Lock()

    def _get(self) -> RedisCluster:
        if self._client is None:
            with self._lock:
                if self._client is None:
                    try:
                        self._client = self._factory()
                    except REDIS_ERRORS as exc:
                        raise redis.ConnectionError(f"Redis Cluster unreachable: {exc}") from exc
        return self._client

    def __getattr__(self, name: str) -> Any:
        return getattr(self._get(), name)

    def close(self) -> None:
        if self._client is not None:  # never built: nothing to close (and no reason to connect)
            self._client.close()


def reachable(client: Any) -> bool:
    """Every node answers (each primary of a cluster: one alone says nothing of the rest)."""
    try:
        if isinstance(client, LazyCluster):
            return bool(client.ping(target_nodes=RedisCluster.ALL_NODES))
        return bool(client.ping())
    except REDIS_ERRORS:
        return False


def make_redis(
    url: str,
    *,
    timeout_ms: int = 50,
    max_connections: int = 50,
    retries: int = 0,
    pool_wait_s: float | None = None,
) -> Any:
    """A client for `redis://…` (one server) or `redis+cluster://host:port[,host:port…]`
    (nodes of a Redis Cluster; the others are discovered). `retries`: how many times a
    call that timed out or lost its connection is tried again, with exponential backoff
    (redis-py's own Retry); the verify path never retries.

    `pool_wait_s`: when all `max_connections` are taken, wait up to this long for one
    (redis-py's BlockingConnectionPool) instead of failing at once. For writers only: a
    burst of admin writes must queue for a connection, not answer 503; the verify path
    keeps the failing pool, where waiting would hold a worker thread. One server only."""
    retry = Retry(ExponentialBackoff(cap=1.0, base=0.05), retries) if retries else None
    if is_cluster(url):
        nodes, user, password = cluster_nodes(url)
        # No waiting pool here: redis-py 8 builds each node's client from these keywords
        # (`connection_pool_class` is used only with from_url) and refuses `timeout`, so a
        # cluster writer keeps a failing pool per node (tests/integration/test_redis_cluster.py).
        return LazyCluster(
            lambda: RedisCluster(
                startup_nodes=nodes,
                username=user,
                password=password,
                socket_timeout=timeout_ms / 1000,
                socket_connect_timeout=max(timeout_ms, 100) / 1000,
                # Fail fast like the single-server client; MOVED/ASK redirects are still
                # followed (they are not errors to retry).
                retry=retry or Retry(NoBackoff(), 0),
                health_check_interval=0,
                max_connections=max_connections,
            )
        )
    options: dict[str, Any] = {
        "socket_timeout": timeout_ms / 1000,
        "socket_connect_timeout": max(timeout_ms, 100) / 1000,
        "retry_on_timeout": False,
        "retry": retry,
        "health_check_interval": 0,
        "max_connections": max_connections,
    }
    if pool_wait_s is not None:
        pool = redis.BlockingConnectionPool.from_url(url, timeout=pool_wait_s, **options)
        return redis.Redis(connection_pool=pool)
    return redis.Redis.from_url(url, **options)


class _Held:
    """A connection a thread keeps; back to its pool when the thread ends (its
    thread-local goes), so threads that come and go do not drain the pool."""

    __slots__ = ("conn", "pid", "pool")

    def __init__(self, pool: Any) -> None:
        self.pool, self.pid = pool, os.getpid()
        self.conn = pool.get_connection()

    def __del__(self) -> None:
        if self.pid == os.getpid():  # a forked child's copy is not its to give back
            # The interpreter may be ending: then there is nothing to give it back to.
            with contextlib.suppress(Exception):
                self.pool.release(self.conn)


class DirectCalls:
    """The verify path's own commands on one Redis server, without redis-py's command path.

    Each thread keeps one connection of the client's pool and sends commands packed by
    hiredis, read back by the connection's parser. redis-py's path (pool checkout and
    release, its retry wrapper and observability hooks, argument checks) cost ~55 µs of
    CPU per EVALSHA here against ~25 this way (`bench/verify_budget.py` shows the stage);
    the verify path makes one or two such calls a request. Timeouts and errors are the
    connection's own (redis-py's exceptions; a connection that failed reconnects on its
    next command), and none is retried: the callers fail open as before. Not for a
    cluster (its client routes by slot)."""

    def __init__(self, client: Any) -> None:
        self.pool = client.connection_pool
        self._local = threading.local()

    def _conn(self) -> Any:
        held: _Held | None = getattr(self._local, "held", None)
        if held is None or held.pid != os.getpid():  # first call of this thread, or a fork
            held = self._local.held = _Held(self.pool)
        return held.conn

    def execute(self, *args: Any) -> Any:
        conn = self._conn()
        # What the pool checks at every checkout: a kept connection the server closed
        # (a restart, CLIENT KILL, its idle `timeout`) reads as readable, and is opened
        # again here rather than failing the call (and opening the scan store's breaker).
        # One poll, ~2 µs.
        try:
            stale = conn._sock is not None and conn.can_read()
        except (redis.ConnectionError, redis.TimeoutError, OSError):
            stale = True
        if stale:
            conn.disconnect()
        try:
            packed = hiredis.pack_command(args)
        except TypeError as exc:  # None or another type Redis has no form for
            raise redis.DataError(str(exc)) from exc
        conn.send_packed_command((packed,), check_health=False)
        return conn.read_response()

    def script(self, text: str) -> Callable[..., Any]:
        """A Lua script called as redis-py's `Script` is (`keys=`, `args=`): EVALSHA, and
        SCRIPT LOAD then EVALSHA again when the server does not have it (a restart)."""
        sha = hashlib.sha1(text.encode(), usedforsecurity=False).hexdigest()  # Redis's script id

        def call(keys: Sequence[Any] = (), args: Sequence[Any] = ()) -> Any:
            try:
                return self.execute("EVALSHA", sha, len(keys), *keys, *args)
            except redis.exceptions.NoScriptError:
                self.execute("SCRIPT", "LOAD", text)
                return self.execute("EVALSHA", sha, len(keys), *keys, *args)

        return call


class Breaker:
    """Skips Redis for a moment after a failure (a minimal circuit breaker).

    Closed: every call goes through. A failure opens it for `backoff_s`: callers skip Redis
    without touching it. Then half-open: the first caller after the backoff tries (and
    holds the others off for another backoff meanwhile); its success closes the breaker,
    its failure opens it again. So an outage costs each worker one timeout per backoff,
    not one per request. Not pybreaker: that one holds a lock around every call and raises
    its own error on the call that trips; this is two attribute reads when closed.

    `clock` is for tests (a fake clock instead of waiting); `metric` counts the failures.
    """

    def __init__(
        self,
        backoff_s: float,
        *,
        metric: str = "redis_errors",
        name: str = "redis",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.backoff_s = backoff_s
        self.metric = metric
        self.name = name
        self.clock = clock
        self.open_until = 0.0  # 0: closed
        self._lock = threading.Lock()

    @property
    def healthy(self) -> bool:
        return self.clock() >= self.open_until

    def allow(self) -> bool:
        """May this caller try Redis now? Claims the half-open trial when it is due."""
        if not self.open_until:
            return True
        now = self.clock()
        if now < self.open_until:
            return False
        with self._lock:
            if now < self.open_until:  # another thread claimed the trial meanwhile
                return False
            self.open_until = now + self.backoff_s
        return True

    def succeeded(self) -> None:
        if self.open_until:
            self.open_until = 0.0
            log.info("%s answers again", self.name)

    def failed(self, exc: Exception) -> None:
        if self.healthy:
            log.warning(
                "%s unavailable, failing open for %.1fs: %s", self.name, self.backoff_s, type(exc).__name__
            )
        self.open_until = self.clock() + self.backoff_s
        metrics.incr(self.metric)


class RedisSharedCache:
    def __init__(
        self, client: redis.Redis, *, prefix: str = keys.PREFIX, backoff_s: float = 1.0, strict: bool = False
    ) -> None:
        self.client = client
        self.prefix = prefix
        self.breaker = Breaker(backoff_s)
        # strict: errors are raised, not failed open (an importer must know a delete failed).
        self.strict = strict

    @property
    def healthy(self) -> bool:
        return self.breaker.healthy

    def _run(self, fn: Any, default: Any) -> Any:
        if self.strict:
            return fn()
        if not self.breaker.healthy:
            metrics.incr("redis_skipped")
            return default
        try:
            return fn()
        except REDIS_ERRORS as exc:
            self.breaker.failed(exc)
            return default

    def get(self, key: str) -> bytes | None:
        value: bytes | None = self._run(lambda: self.client.get(self.prefix + key), None)
        return value

    def get_or_lock(self, key: str, lock_ms: int) -> tuple[bytes | None, bool]:
        """One round trip: the value, and whether this caller won the right to refill it."""

        def call() -> tuple[bytes | None, bool]:
            pipe = self.client.pipeline(transaction=False)
            pipe.get(self.prefix + key)
            pipe.set(self.prefix + keys.LOCK + key, b"1", nx=True, px=lock_ms)
            value, locked = pipe.execute()
            return value, bool(locked)

        # Redis down: everyone may refill, from the database.
        answer: tuple[bytes | None, bool] = self._run(call, (None, True))
        return answer

    def set(self, key: str, value: bytes, ttl_s: int, *, unlock: bool = False) -> None:
        def call() -> None:
            pipe = self.client.pipeline(transaction=False)
            pipe.set(self.prefix + key, value, ex=ttl_s)
            if unlock:
                pipe.delete(self.prefix + keys.LOCK + key)
            pipe.execute()

        self._run(call, None)

    def delete(self, keys: list[str]) -> None:
        def call() -> None:
            pipe = self.client.pipeline(transaction=False)
            if isinstance(self.client, LazyCluster):
                for k in keys:  # codes' keys span every slot
                    pipe.unlink(self.prefix + k)
            else:
                for start in range(0, len(keys), 5000):
                    pipe.unlink(*(self.prefix + k for k in keys[start : start + 5000]))
            pipe.execute()

        if keys:
            self._run(call, None)


class RedisGenerations:
    """Change counters in Redis: INCR on change, read by every worker a few times a second.

    The same read counts the imports in flight (`RedisFilterStore.importing`): while one
    is, workers check the shared filter's live bits before calling a code never issued,
    since their own copy predates the codes the import has saved so far.
    """

    NAMES = keys.GENERATION_NAMES

    def __init__(self, client: redis.Redis, *, prefix: str = keys.PREFIX) -> None:
        self.client = client
        self.keys = [keys.generation(n, prefix) for n in self.NAMES]
        # The imports in flight, under the generations' prefix: see `importing`.
        self.imports_key = prefix + keys.IMPORTS

    def current(self) -> dict[str, int] | None:
        try:
            # A pipeline of GETs, not MGET: the keys lie in two slots of a cluster.
            pipe = self.client.pipeline(transaction=False)
            for key in self.keys:
                pipe.get(key)
            pipe.zcount(self.imports_key, int(time.time() * 1000), "+inf")
            *values, imports = pipe.execute()
        except REDIS_ERRORS:
            metrics.incr("redis_errors")
            return None
        gens = {n: int(v or 0) for n, v in zip(self.NAMES, values, strict=True)}
        gens["imports"] = int(imports)
        return gens

    def bump(self, *names: str) -> None:
        # Admin writes must reach every worker: let a failure surface (the write is in the
        # database already; the caller reports the cache as degraded).
        pipe = self.client.pipeline(transaction=False)
        for name in names:
            pipe.incr(self.keys[self.NAMES.index(name)])
        pipe.execute()


class RedisFilterStore:
    """The Bloom filter's bits in one Redis string, shared by every worker and every import."""

    def __init__(self, client: redis.Redis, m_bits: int, k: int, *, key: str = keys.FILTER) -> None:
        # Any: redis-py leaves execute_command and watch untyped, and this may be a LazyCluster.
        self.client: Any = client
        self.m_bits = m_bits
        self.k = k
        self.key = key
        # The size the bits were built for: bits are trusted only under a matching meta,
        # so the meta is written after the bits and removed before a rebuild.
        self.meta_key = key + keys.FILTER_META
        self.building_key = key + keys.FILTER_BUILDING
        # Imports in flight: import token -> deadline (ms); read with the generations.
        self.imports_key = key + keys.FILTER_IMPORTS

    def load(self) -> BloomFilter | None:
        try:
            pipe = self.client.pipeline(transaction=False)
            pipe.get(self.meta_key)
            pipe.get(self.key)
            meta, data = pipe.execute()
        except REDIS_ERRORS:
            metrics.incr("redis_errors")
            return None
        if meta is None or meta.decode() != f"{self.m_bits}:{self.k}":
            return None  # never built, or built with another size: use the database until rebuilt
        return BloomFilter(self.m_bits, self.k, data or b"")

    def add(self, codes: Sequence[str | int]) -> None:
        """OR the codes (or organic codes' integer keys) into the shared bits.

        A few codes (a JSON call, a BQ batch): BITFIELD SETs of just their bits. A chunk of
        an import: read, merge locally, write back if nobody else wrote meanwhile (WATCH).
        Measured on this machine's Redis (2 M-code filter: 4 MiB, k=12): 5,000 codes cost
        0.15-0.25 s as BITFIELD SETs (redis-py packing 240 k arguments) against 0.05-0.06 s
        read-merge-write, 100,000 codes 2.8-3.6 s against 0.08-0.17 s; Redis itself spends
        a few ms either way. So bits for small writes, the string for chunks, over the
        import's own client (seconds, not the verify path's 50 ms).
        """
        if not codes:
            return
        if len(codes) * self.k <= _BITFIELD_MAX_BITS:
            bits = sorted({p for code in codes for p in positions(code, self.m_bits, self.k)})
            args: list[Any] = []
            for pos in bits:
                args += ("SET", "u1", pos, 1)
            self.client.execute_command("BITFIELD", self.key, *args)
        else:
            while True:
                with self.client.pipeline(transaction=True) as pipe:
                    try:
                        pipe.watch(self.key)
                        current = pipe.get(self.key)
                        bloom = BloomFilter(
                            self.m_bits, self.k, current if isinstance(current, bytes) else b""
                        )
                        bloom.update(codes)
                        pipe.multi()
                        pipe.set(self.key, bytes(bloom.bits))
                        pipe.execute()
                        break
                    except redis.WatchError:
                        continue
        # No meta is written here: bits added to a filter that is missing (never built, lost
        # with a Redis restart) hold only these codes, and must not be trusted as "every
        # issued code" (every older code would answer not_found). Start-up or
        # `flask rebuild-filter` builds it whole.

    def might_contain(self, code: str) -> bool | None:
        """Ask the shared bits themselves, in one round trip (BITFIELD_RO): for a worker
        whose copy may be older than an import in flight. None: cannot tell (no filter of
        this size, Redis away), so the caller asks the database."""
        args: list[Any] = []
        for pos in positions(code, self.m_bits, self.k):
            args += ("GET", "u1", pos)
        try:
            pipe = self.client.pipeline(transaction=False)
            pipe.get(self.meta_key)
            pipe.execute_command("BITFIELD_RO", self.key, *args)
            meta, bits = pipe.execute()
        except REDIS_ERRORS:
            metrics.incr("redis_errors")
            return None
        if meta is None or meta.decode() != f"{self.m_bits}:{self.k}":
            return None
        return all(bits)

    def importing(self, token: str, ttl_s: float) -> None:
        """Say an import is in flight for the next `ttl_s` (every chunk says it again). A
        deadline, not a flag: an importer that dies or loses Redis stops renewing it, and
        workers reload the filter once it lapses (the generation may never have moved)."""
        now_ms = int(time.time() * 1000)
        pipe = self.client.pipeline(transaction=False)
        pipe.zadd(self.imports_key, {token: now_ms + int(ttl_s * 1000)})
        pipe.zremrangebyscore(self.imports_key, "-inf", now_ms)
        pipe.expire(self.imports_key, int(ttl_s) * 2 + 1)
        pipe.execute()

    def imported(self, token: str) -> None:
        self.client.zrem(self.imports_key, token)

    def replace(self, bloom: BloomFilter) -> None:
        """Install a filter rebuilt from the database (flask rebuild-filter, first start).
        Three calls in order, never a transaction (bits and meta lie in two slots of a
        cluster): meanwhile readers find no matching meta and ask the database."""
        self.client.delete(self.meta_key)
        self.client.set(self.key, bytes(bloom.bits))
        self.client.set(self.meta_key, f"{self.m_bits}:{self.k}")

    def exists(self) -> bool:
        try:
            meta = self.client.get(self.meta_key)
        except REDIS_ERRORS:
            return False
        return isinstance(meta, bytes) and meta.decode() == f"{self.m_bits}:{self.k}"


class NullSharedCache:
    """No shared cache (the embedded default): every get misses, every caller may refill."""

    healthy = True

    def get(self, key: str) -> bytes | None:
        return None

    def get_or_lock(self, key: str, lock_ms: int) -> tuple[bytes | None, bool]:
        return None, True

    def set(self, key: str, value: bytes, ttl_s: int, *, unlock: bool = False) -> None:
        return None

    def delete(self, keys: list[str]) -> None:
        return None


class MemoryFilterStore:
    """The embedded default's filter: built in process from the registry's codes."""

    def __init__(self, m_bits: int, k: int, source: Any) -> None:
        self.m_bits = m_bits
        self.k = k
        self.source = source  # a callable returning an iterator of every issued code
        self._bloom: BloomFilter | None = None

    def load(self) -> BloomFilter | None:
        bloom = BloomFilter(self.m_bits, self.k)
        bloom.update(self.source())
        self._bloom = bloom
        return bloom

    def add(self, codes: Sequence[str | int]) -> None:
        if self._bloom is not None:
            self._bloom.update(codes)

    # One process, no shared bits: an import here is seen through the generations alone.
    def might_contain(self, code: str) -> bool | None:
        return None

    def importing(self, token: str, ttl_s: float) -> None:
        return None

    def imported(self, token: str) -> None:
        return None
