"""The composition root: `create_app(settings)` builds every adapter once and registers
the blueprints. Nothing happens at import time."""

from __future__ import annotations

import functools
import itertools
import logging
import os
import re
import uuid
from dataclasses import dataclass
from typing import Any, cast

from flask import Blueprint, Flask, Response, request
from flask.sessions import SessionInterface
from werkzeug.middleware.proxy_fix import ProxyFix

from anomaly.adapter import ScanStore, build_recorder
from anomaly.events import ScanEvent, hash_client
from anomaly.geo import locate, places
from cache.bloom import BloomFilter
from cache.records import RecordResolver
from cache.redis_cache import (
    MemoryFilterStore,
    NullSharedCache,
    RedisFilterStore,
    RedisGenerations,
    RedisSharedCache,
    is_cluster,
    make_redis,
    reachable,
)
from domain import metrics
from domain.ports import FilterStore, Generations, SharedCache
from registry.engine import make_engine, make_lookup_engine, upgrade
from registry.generations import SqlGenerations
from registry.scans import SqlScanStore
from registry.store import SqlRegistry
from services.admin import AdminService
from services.photos import PhotoService
from services.scans import ScanAdminService
from services.shoppers import ShopperService
from services.verify import VerifyService
from verify_api import problems
from verify_api.scanning import ScannerAdapter
from verify_api.settings import Settings, SettingsError

log = logging.getLogger(__name__)

# Security headers on every response (a small hook rather than flask-talisman, whose
# defaults force HTTPS redirects and session-cookie settings this app has no use for, and
# which adds two hooks per request on the verify path). The pages' scripts and styles are
# files under /static and /docs/assets, so no inline script or style is allowed; Swagger
# UI draws its icons from data: URLs; nothing may frame a page (clickjacking).
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
        "frame-ancestors 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
}
# A client's X-Request-Id is echoed (and logged) only when it looks like an id: past that
# a header of any length and content would land in our logs and answers.
_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")


@dataclass
class Container:
    """Everything the blueprints use, built once per app (app.extensions["verify"])."""

    settings: Settings
    registry: SqlRegistry
    redis: Any
    scan_redis: Any
    shared: SharedCache
    generations: Generations
    filters: FilterStore | None
    resolver: RecordResolver
    scans: ScanStore
    verify: VerifyService
    admin: AdminService
    scan_sql: SqlScanStore
    scan_admin: ScanAdminService
    shoppers: ShopperService
    photos: PhotoService


def container(app: Flask) -> Container:
    return app.extensions["verify"]


def _ensure_filter(store: RedisFilterStore, registry: SqlRegistry, redis_client: Any) -> None:
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


def build(settings: Settings) -> Container:
    engine = make_engine(settings.database_url)
    if settings.migrate_on_start:
        upgrade(engine)
    registry = SqlRegistry(engine, make_lookup_engine(settings.database_url))
    m_bits, k = BloomFilter.sized_for(settings.expected_codes)
    redis_client = None
    filters: FilterStore | None
    shared: SharedCache
    generations: Generations
    writer_caches: tuple[Generations, FilterStore | None, SharedCache | None]  # admin writes' own
    if is_cluster(settings.scan_store_url):
        raise SettingsError(
            "the scan store needs one Redis server, not a cluster: set SCAN_REDIS_URL to a "
            "redis:// URL when REDIS_URL is a redis+cluster:// one"
        )
    if settings.redis_url:
        redis_client = make_redis(settings.redis_url, timeout_ms=settings.redis_timeout_ms)
        shared = RedisSharedCache(redis_client)
        generations = RedisGenerations(redis_client)
        filters = RedisFilterStore(redis_client, m_bits, k)
        # Admin writes and imports get a client of their own: they move the filter (MBs) and
        # must see every failure, so seconds and a few retries, not the verify path's 50 ms.
        writer = make_redis(settings.redis_url, timeout_ms=5000, max_connections=8, retries=3)
        writer_caches = (
            RedisGenerations(writer),
            RedisFilterStore(writer, m_bits, k),
            RedisSharedCache(writer, strict=True),
        )
        probe = make_redis(settings.redis_url, timeout_ms=1000)
        up = reachable(probe)
        probe.close()
        if not up:
            # Asked with a short timeout first: a hung Redis would hold the start for the
            # build's long one. Until a filter exists, lookups ask the database.
            log.warning("redis unreachable at start: no code filter until the next start or rebuild-filter")
        else:
            # Start-up may take longer than a request: a slow first build is fine here.
            builder = make_redis(settings.redis_url, timeout_ms=30_000)
            try:
                _ensure_filter(filters, registry, builder)
            except Exception:  # Redis went away meanwhile: serve from the database
                log.exception("could not build the code filter at start")
            finally:
                builder.close()
    else:
        shared = NullSharedCache()
        generations = SqlGenerations(registry)
        filters = MemoryFilterStore(m_bits, k, registry.iter_codes)
        writer_caches = (generations, filters, None)
    resolver = RecordResolver(registry, shared, generations, filters, refresh_s=settings.generation_refresh_s)
    scan_sql = SqlScanStore(engine)
    scan_client = None
    if settings.scan_store_url:
        same = settings.scan_store_url == settings.redis_url
        scan_client = (
            redis_client
            if same
            else make_redis(settings.scan_store_url, timeout_ms=settings.redis_timeout_ms)
        )
    scans = build_recorder(
        settings.secret_key.encode(),
        scan_client,
        dict(settings.rules),
        flag_sink=scan_sql.upsert_flag,
        event_sink=scan_sql.store_events,
    )
    if scan_client is None:
        # Embedded default: scan history lives in this process; rebuild it from the database.
        restored = scans.restore((ScanEvent(**e) for e in scan_sql.iter_events()), scan_sql.flag_states())
        if restored:
            log.info("restored %d scan events into the in-process scan store", restored)
    verify = VerifyService(resolver, scans, throttle=settings.rate_limits)
    return Container(
        settings=settings,
        registry=registry,
        redis=redis_client,
        scan_redis=scan_client,
        shared=shared,
        generations=generations,
        filters=filters,
        resolver=resolver,
        scans=scans,
        verify=verify,
        admin=AdminService(
            registry,
            resolver,
            writer_caches[0],
            writer_caches[1],
            settings.admin_bootstrap_token,
            places().region_name,
            shared=writer_caches[2],
        ),
        scan_sql=scan_sql,
        scan_admin=ScanAdminService(verify, scans, scan_sql, registry),
        shoppers=ShopperService(
            scan_sql, functools.partial(hash_client, settings.secret_key.encode()), locate
        ),
        photos=PhotoService(
            ScannerAdapter(max_bytes=settings.max_upload_bytes, time_budget_ms=settings.scan_time_budget_ms),
            verify,
        ),
    )


def create_app(settings: Settings | None = None) -> Flask:
    settings = settings or Settings.from_env()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    app = Flask(__name__, static_folder="static", template_folder="templates")
    app.config.update(
        SECRET_KEY=settings.secret_key,
        MAX_CONTENT_LENGTH=settings.max_admin_upload_bytes,
        JSON_AS_ASCII=False,
    )
    app.json.ensure_ascii = False  # type: ignore[attr-defined]
    if settings.proxy_count:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=settings.proxy_count, x_proto=settings.proxy_count)  # type: ignore[method-assign]
    app.extensions["verify"] = build(settings)
    problems.register(app)

    from verify_api import admin, cli, docs, health, public, web
    from verify_api.limits import bearer_key, client_key, init_limits

    for module in (public, admin, health, docs, web):
        app.register_blueprint(module.bp)
    cli.register(app)
    _optional_blueprints(app)
    # The public API per IP and per client id; the mini-program's shoppers the same, per
    # IP and per session token. Photo uploads per IP, with their own tighter limit.
    limited = [(public.bp, client_key, "public.scan_photo")]
    if "wechat" in app.blueprints:
        limited.append((cast(Blueprint, app.blueprints["wechat"]), bearer_key, "wechat.scan"))
    init_limits(app, settings, limited)

    # No cookie sessions anywhere: skip Flask building a signing serializer per request.
    app.session_interface = _NoSessions()
    ids = itertools.count()
    prefix = f"{os.getpid():x}-{uuid.uuid4().hex[:6]}-"

    @app.after_request
    def _stamp(resp: Response) -> Response:
        # Stamped here rather than in a before_request hook: one hook less on every request.
        given = request.headers.get("X-Request-Id")
        resp.headers["X-Request-Id"] = (
            given if given and _REQUEST_ID.fullmatch(given) else f"{prefix}{next(ids):x}"
        )
        resp.headers.update(SECURITY_HEADERS)
        if resp.status_code >= 500:
            metrics.incr("responses_5xx")
        return resp

    return app


class _NoSessions(SessionInterface):
    def open_session(self, app: Flask, request: Any) -> None:
        return None

    def save_session(self, app: Flask, session: Any, response: Response) -> None:
        return None


def _optional_blueprints(app: Flask) -> None:
    """Blueprints of the other entrypoints, registered when their package provides one."""
    import importlib

    for name in ("miniprogram_backend.blueprint", "dashboard.blueprint"):
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
            continue
        module.init_app(app)
