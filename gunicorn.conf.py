"""gunicorn settings (`gunicorn wsgi:app` reads this file from the working directory).

It reads the app's own settings (webapp.settings.Settings.from_env) for the address and
the deployment; the knobs below that are gunicorn's own stay environment variables."""

import gc
import os

from webapp.settings import Settings

_settings = Settings.from_env()

bind = f"{_settings.host}:{_settings.port}"
# The verify path is CPU-bound Python plus one Redis round trip: one sync worker per
# core measured best (../shared/bench/README.md); more workers than cores did not help.
worker_class = os.environ.get("GUNICORN_WORKER_CLASS", "sync")
threads = 1
workers = int(os.environ.get("WEB_CONCURRENCY", os.cpu_count() or 2))
if _settings.scan_store_url is None:
    # The embedded default keeps scan history in process memory: one process, so every
    # answer sees every scan. Production (MariaDB + Redis) runs one worker per core.
    workers = 1
    threads = 4
    worker_class = "gthread"
timeout = 30
graceful_timeout = 20
keepalive = 5
max_requests = int(os.environ.get("GUNICORN_MAX_REQUESTS", "0"))
max_requests_jitter = 100
# Off by default: gunicorn's access line carries the client's IP; the app writes its own
# JSON line per request (request id, route, status, duration; no IP).
accesslog = os.environ.get("GUNICORN_ACCESSLOG") or None
errorlog = "-"
# gunicorn 27 opens a control socket at one fixed path in the user's home by default,
# shared by every master on the host (the bench starts three); we manage workers with
# signals and the orchestrator, not gunicornc.
control_socket_disable = True
loglevel = os.environ.get("LOG_LEVEL", "info")


def on_starting(server):
    """The one place a served app migrates: the master, before any worker starts, so workers
    never race on the schema (by hand: `flask --app wsgi db upgrade`)."""
    from registry.engine import make_engine
    from webapp.schema import migrate

    engine = make_engine(Settings.from_env().database_url)
    migrate(engine)
    engine.dispose()


def post_worker_init(worker):
    """Build what serving needs (the code filter, the scan store and, embedded, its replay
    from the database) before this worker takes a request."""
    from webapp import warm

    warm(worker.wsgi)
    # What the worker built to serve (modules, the app, its warmed caches: ~160,000 objects
    # the collector tracks) lives as long as the worker. Frozen, the collector no longer
    # walks it: its full collections (one every ~20,000 first scans, ~100 ms each, ~5 µs
    # a verify on average, measured in process) walk only what serving made since.
    gc.collect()
    gc.freeze()
