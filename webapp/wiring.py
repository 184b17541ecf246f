"""The adapter builders: SQL, the caches, the scan store, the photo scanner, WeChat, and
the services over them, for one app (or one CLI command, or one writer process).

Each member of `Container` is built on its first use, under one lock, and then read as a
plain attribute: `flask db upgrade` builds the engine and nothing else (no Redis, no
filter), an import builds the admin service without the scan store (no event replay),
a bulk writer process builds only what `AdminService.write_chunk` needs. A web worker
builds what serving needs at start (`warm`, from gunicorn's post_worker_init), before
its threads take requests.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable
from typing import Any, cast

from flask import Flask

from anomaly.adapter import ScanLedgerAdapter, build_scan_ledger
from anomaly.events import ScanEvent, hash_client
from anomaly.geo import locate, places
from cache.bloom import BloomFilter
from cache.projection import MemoryProjection, RedisProjection, buckets_for
from cache.recent_visits import build_recent_visits
from cache.records import RecordResolver
from cache.redis_cache import (
    DirectCalls,
    LazyCluster,
    MemoryFilterStore,
    NullSharedCache,
    RedisFilterStore,
    RedisGenerations,
    RedisSharedCache,
    make_redis,
    reachable,
)
from domain.ports import CodeProjection, FilterStore, Generations, RecentVisits, SharedCache
from registry.accounts import SqlAccounts, SqlAuditLog
from registry.alerts import SqlAlertStore
from registry.cases import SqlCaseReader
from registry.engine import make_engine, make_lookup_engine
from registry.evidence import SqlEvidenceReader
from registry.generations import SqlGenerations
from registry.grain import SqlGrain
from registry.issuing import SqlIssuing
from registry.overview import SqlOverviewReader
from registry.scans import SqlScanArchive
from registry.sealing import SecretBox
from registry.store import SqlRegistry
from services.accounts import AccountService
from services.admin import AdminService
from services.alerts import AlertService
from services.audit import AuditService
from services.cases import CaseService
from services.evidence import EvidenceService
from services.exports import FlagExport
from services.grain import GrainService
from services.issuing import IssuingService
from services.overview import OverviewService
from services.photos import PhotoService
from services.scans import ScanAdminService
from services.shoppers import ShopperService
from services.verify import VerifyService
from webapp.lazy import lazy
from webapp.scanning import ScannerAdapter, engines
from webapp.settings import Settings
from webapp.webhooks import Deliverer, HttpSender

log = logging.getLogger(__name__)


def rebuild_projection(settings: Settings, progress: Any = None) -> int | None:
    """Write every issued code into the Redis projection from the registry (its own
    clients: a rebuild reads for minutes); None when another process is rebuilding."""
    assert settings.redis_url is not None
    client = make_redis(settings.redis_url, timeout_ms=30_000, max_connections=4, retries=3)
    registry = SqlRegistry(make_engine(settings.database_url))
    try:
        store = RedisProjection(client, buckets_for(settings.expected_codes))
        return store.rebuild(registry.iter_records, progress)
    finally:
        client.close()
        registry.engine.dispose()


def start_rebuild(settings: Settings) -> threading.Thread:
    """`rebuild_projection` in a daemon thread of this process (start-up)."""

    def run() -> None:
        try:
            n = rebuild_projection(settings)
            if n is not None:
                log.info("code projection rebuilt: %d codes", n)
        except Exception:
            log.exception("code projection rebuild failed; misses are asked of the database")

    thread = threading.Thread(target=run, name="projection-rebuild", daemon=True)
    thread.start()
    return thread


def ensure_filter(store: RedisFilterStore, registry: SqlRegistry, redis_client: Any) -> None:
    """Build the shared filter from the registry once, by one process, if Redis has none."""
    if store.exists():
        return
    if not redis_client.set(store.building_key, b"1", nx=True, ex=600):
        return  # another process is building it; until then lookups go to the database
    try:
        bloom = BloomFilter(store.m_bits, store.k)
        bloom.update(registry.iter_codes())
        store.replace(bloom)
        RedisGenerations(redis_client).bump("codes")
    finally:
        redis_client.delete(store.building_key)


class Container:
    """Every adapter and service of one app, each built on first use (services.catalog's
    `Services` is the part the blueprints see)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._lock = threading.RLock()  # builders call each other: verify -> resolver -> filters

    # -- SQL ---------------------------------------------------------------------------------

    @lazy
    def engine(self) -> Any:
        return make_engine(self.settings.database_url)

    @lazy
    def registry(self) -> SqlRegistry:
        return SqlRegistry(self.engine, make_lookup_engine(self.settings.database_url))

    @lazy
    def scan_sql(self) -> SqlScanArchive:
        return SqlScanArchive(self.engine)

    # -- caches ------------------------------------------------------------------------------

    @lazy
    def redis(self) -> Any:
        """The verify path's Redis client (50 ms, fails open), or None when embedded."""
        s = self.settings
        return make_redis(s.redis_url, timeout_ms=s.redis_timeout_ms) if s.redis_url else None

    @lazy
    def _filter_size(self) -> tuple[int, int]:
        return BloomFilter.sized_for(self.settings.expected_codes)

    @lazy
    def shared(self) -> SharedCache:
        return RedisSharedCache(self.redis) if self.redis is not None else NullSharedCache()

    @lazy
    def generations(self) -> Generations:
        return RedisGenerations(self.redis) if self.redis is not None else SqlGenerations(self.registry)

    @lazy
    def filters(self) -> FilterStore:
        m_bits, k = self._filter_size
        if self.redis is None:
            return MemoryFilterStore(m_bits, k, self.registry.iter_codes)
        store = RedisFilterStore(self.redis, m_bits, k)
        url = self.settings.redis_url
        assert url is not None
        probe = make_redis(url, timeout_ms=1000)
        up = reachable(probe)
        probe.close()
        if not up:
            # Asked with a short timeout first: a hung Redis would hold the start for the
            # build's long one. Until a filter exists, lookups ask the database.
            log.warning("redis unreachable at start: no code filter until the next start or rebuild-filter")
            return store
        # Start-up may take longer than a request: a slow first build is fine here.
        builder = make_redis(url, timeout_ms=30_000)
        try:
            ensure_filter(store, self.registry, builder)
        except Exception:  # Redis went away meanwhile: serve from the database
            log.exception("could not build the code filter at start")
        finally:
            builder.close()
        return store

    @lazy
    def projection(self) -> CodeProjection:
        """Every issued code in the key store (cache.projection), read by the verify path.
        Embedded: a dict built from the registry now. On Redis: a registry without codes
        marks the empty projection complete; otherwise a web worker's `warm` rebuilds it
        if it is off (`ensure_projection`)."""
        if self.redis is None:
            memory = MemoryProjection(self.registry.iter_records)
            memory.rebuild(self.registry.iter_records)
            return memory
        store = RedisProjection(self.redis, buckets_for(self.settings.expected_codes), direct=True)
        url = self.settings.redis_url
        assert url is not None
        probe = make_redis(url, timeout_ms=1000)
        try:
            if reachable(probe) and store.state() is not None:
                RedisProjection(probe, store.buckets).mark_complete_if_empty(self.registry.has_codes)
        except Exception:  # Redis went away meanwhile: the projection stays off
            log.exception("could not check the code projection at start")
        finally:
            probe.close()
        return store

    @lazy
    def _writer_projection(self) -> CodeProjection:
        if self.redis is None:
            return self.projection
        url = self.settings.redis_url
        assert url is not None
        writer = make_redis(url, timeout_ms=5000, max_connections=8, retries=3, pool_wait_s=5.0)
        return RedisProjection(writer, buckets_for(self.settings.expected_codes))

    @lazy
    def _writer_caches(self) -> tuple[Generations, FilterStore | None]:
        """Admin writes' and imports' own: they move the filter (MBs) and must see every
        failure, so seconds and a few retries, not the verify path's 50 ms."""
        if self.redis is None:
            return self.generations, self.filters
        url = self.settings.redis_url
        assert url is not None
        m_bits, k = self._filter_size
        writer = make_redis(url, timeout_ms=5000, max_connections=8, retries=3, pool_wait_s=5.0)
        return RedisGenerations(writer), RedisFilterStore(writer, m_bits, k)

    @lazy
    def resolver(self) -> RecordResolver:
        resolver = RecordResolver(
            self.registry,
            self.shared,
            self.generations,
            self.filters,
            refresh_s=self.settings.generation_refresh_s,
            projection=self.projection,
        )
        projection = self.projection
        if (
            isinstance(projection, RedisProjection)
            and not projection.grouped
            and self.settings.scan_store_url == self.settings.redis_url
        ):
            # The scan store is the projection's own Redis server: its script resolves a
            # code this worker does not hold in the scan's round trip (anomaly/scan.lua).
            resolver.in_store = projection.store_place
        return resolver

    # -- scans -------------------------------------------------------------------------------

    @lazy
    def scan_redis(self) -> Any:
        url = self.settings.scan_store_url
        if url is None:
            return None
        if url == self.settings.redis_url:
            return self.redis
        return make_redis(url, timeout_ms=self.settings.redis_timeout_ms)

    @staticmethod
    def _direct(client: Any) -> Callable[[str], Any] | None:
        """The verify path's scripts on one server skip redis-py's command path."""
        if client is None or isinstance(client, LazyCluster):
            return None
        return DirectCalls(client).script

    @lazy
    def scans(self) -> ScanLedgerAdapter:
        scans = build_scan_ledger(
            self.settings.secret_key.encode(),
            self.scan_redis,
            dict(self.settings.rules),
            flag_sink=self.scan_sql.upsert_flag,
            event_sink=self.scan_sql.store_events,
            register_script=self._direct(self.scan_redis),
        )
        if self.scan_redis is None:
            # Embedded default: scan history lives in this process; rebuild it from the database.
            sql = self.scan_sql
            restored = scans.restore((ScanEvent(**e) for e in sql.iter_events()), sql.flag_states())
            if restored:
                log.info("restored %d scan events into the in-process scan store", restored)
        return scans

    # -- services (services.catalog.Services) ------------------------------------------------

    @lazy
    def verify(self) -> VerifyService:
        return VerifyService(self.resolver, self.scans, throttle=self.settings.rate_limits)

    @lazy
    def admin(self) -> AdminService:
        generations, filters = self._writer_caches
        return AdminService(
            self.registry,
            self.resolver,
            generations,
            filters,
            self.settings.admin_bootstrap_token,
            places().region_name,
            projection=self._writer_projection,
        )

    @lazy
    def issuing(self) -> IssuingService:
        return IssuingService(
            SqlIssuing(self.registry),
            self.admin,
            self.registry.body_numbering,
            self.registry.certificate,
            self.audit,
        )

    @lazy
    def grain(self) -> GrainService:
        return GrainService(SqlGrain(self.registry), self.admin.changed)

    @lazy
    def scan_admin(self) -> ScanAdminService:
        return ScanAdminService(self.verify, self.scans, self.scan_sql, self.registry, self.audit)

    @lazy
    def cases(self) -> CaseService:
        return CaseService(
            self.scan_sql,
            SqlCaseReader(self.engine),
            self.registry,
            self.resolver,
            self.verify,
            self.audit,
            city_point=places().city_point,
        )

    @lazy
    def audit(self) -> AuditService:
        return AuditService(SqlAuditLog(self.engine))

    @lazy
    def accounts(self) -> AccountService:
        return AccountService(SqlAccounts(self.engine), self.audit, self.registry.scope_target_id)

    @lazy
    def shoppers(self) -> ShopperService:
        secret = self.settings.secret_key.encode()
        return ShopperService(self.scan_sql, functools.partial(hash_client, secret), locate)

    @lazy
    def photos(self) -> PhotoService:
        s = self.settings
        return PhotoService(
            ScannerAdapter(max_bytes=s.max_upload_bytes, time_budget_ms=s.scan_time_budget_ms), self.verify
        )

    @lazy
    def overview(self) -> OverviewService:
        return OverviewService(SqlOverviewReader(self.engine), places().city_point)

    @lazy
    def alerts(self) -> AlertService:
        sender = HttpSender(allow_private=self.settings.webhook_allow_private)
        box = SecretBox(self.settings.secret_key, self.settings.previous_secret_keys)
        return AlertService(SqlAlertStore(self.engine, box), sender, audit=self.audit)

    @lazy
    def evidence(self) -> EvidenceService:
        from dashboard.chinamap import china_geojson

        # Imported here: fpdf and its fonts cost ~0.2 s of every process's start (a CLI
        # import's, each worker's), and only the evidence pack uses them.
        from webapp.evidence_pdf import EvidencePdf

        # One copy of the outline for every pack: the PDF only reads it, and a fresh deep
        # copy per pack (china_geojson's contract) cost 60-100 ms of each.
        pdf = EvidencePdf(functools.cache(china_geojson), places().city_point)
        return EvidenceService(self.cases, SqlEvidenceReader(self.engine), pdf)

    @lazy
    def exports(self) -> FlagExport:
        return FlagExport(self.scan_admin)

    def start_deliverer(self) -> Deliverer:
        """Send webhook alerts from a thread of this process (the embedded default, which
        has no worker; `flask worker` starts its own)."""
        self.seal_webhook_secrets()
        return Deliverer(self.alerts.deliver_due).start()

    def seal_webhook_secrets(self) -> None:
        """Secrets stored before they were sealed are sealed now (once; the senders call it
        as they start). A failure is logged, never fatal: they are still readable."""
        try:
            sealed = self.alerts.store.seal_stored()
        except Exception:
            log.warning("could not seal stored webhook secrets", exc_info=True)
            return
        if sealed:
            log.info("sealed %d webhook secrets stored in clear", sealed)

    @property
    def max_upload_bytes(self) -> int:
        return self.settings.max_upload_bytes

    def readiness(self) -> dict[str, str]:
        database = "ok" if self.registry.ping() else "down"
        cache = "embedded" if self.redis is None else "ok" if reachable(self.redis) else "down"
        scans = cache
        if self.scan_redis is not None and self.scan_redis is not self.redis:
            scans = "ok" if reachable(self.scan_redis) else "down"
        return {"database": database, "cache": cache, "scan_store": scans}

    def engines(self) -> dict[str, bool]:
        return engines()

    @lazy
    def recent_visits(self) -> RecentVisits:
        """The web result page's recent visits, beside the scan store (its Redis, or here)."""
        return build_recent_visits(self.scan_redis, self.settings.secret_key.encode())

    @lazy
    def wechat(self) -> Any:
        """The mini-program's adapters (webapp.wechat.WeChatAdapters); its protocol layer is
        imported only here, so a build without it runs the rest."""
        from webapp.wechat import WeChatAdapters

        return WeChatAdapters(self.settings, lambda: self.redis)

    def check_image(self, photo: bytes, kind: str) -> bool | None:
        """WeChat's image content check on a photo the web shows to others; None when WeChat
        is not configured here."""
        s = self.settings
        if not (s.wechat_appid and s.wechat_secret):
            return None
        return bool(self.wechat.check_image(photo, kind))

    def warm(self) -> None:
        """Build what serving needs now, not on the first request: the filter, the scan
        store (and, embedded, its replay from the database), every service."""
        for name in ("verify", "admin", "issuing", "grain", "scan_admin", "shoppers", "photos"):
            getattr(self, name)
        self.ensure_projection()
        if self.redis is not None:
            self.resolver.on_projection_off = functools.partial(self.ensure_projection, only_lost=True)

    def ensure_projection(self, *, only_lost: bool = False) -> threading.Thread | None:
        """A projection that is off (never built, Redis lost it, a writer's mark lapsed) is
        rebuilt from the registry in a background thread of this web worker, by one process
        at a time (a lock), while it serves: misses are asked of the database meanwhile.
        Only serving processes do it: a CLI command would end before the rebuild does.
        `only_lost`: the check a serving worker makes while it serves (every 30 s while off):
        only a projection Redis lost or a dead writer left, with no writer saving now
        (`RedisProjection.lost`); at start, any projection that is off."""
        if self.redis is None:
            return None
        try:
            projection = self.projection
            if only_lost:  # a serving worker's look while it serves (RecordResolver)
                if isinstance(projection, RedisProjection) and projection.lost():
                    return start_rebuild(self.settings)
            elif projection.state() == "off":
                return start_rebuild(self.settings)
        except Exception:
            log.exception("could not check the code projection")
        return None


def container(app: Flask) -> Container:
    """The root's own view of an app's adapters and services (CLI commands, tests, bench)."""
    return cast(Container, app.extensions["container"])
