"""gunicorn settings (`gunicorn wsgi:app` reads this file from the working directory)."""

import os

bind = f"{os.environ.get('HOST', '127.0.0.1')}:{os.environ.get('PORT', '8000')}"
# The verify path is CPU-bound Python plus one Redis round trip: one sync worker per
# core measured best (shared/bench/README.md); more workers than cores did not help.
worker_class = os.environ.get("GUNICORN_WORKER_CLASS", "sync")
threads = 1
workers = int(os.environ.get("WEB_CONCURRENCY", os.cpu_count() or 2))
if (os.environ.get("DATABASE_URL") or "sqlite").startswith("sqlite") and not os.environ.get("REDIS_URL"):
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
accesslog = os.environ.get("GUNICORN_ACCESSLOG") or None
errorlog = "-"
# gunicorn 27 opens a control socket at one fixed path in the user's home by default,
# shared by every master on the host (the bench starts three); we manage workers with
# signals and the orchestrator, not gunicornc.
control_socket_disable = True
loglevel = os.environ.get("LOG_LEVEL", "info")


def on_starting(server):
    """Migrate once in the master before workers start, so they never race on the schema."""
    from registry.engine import make_engine, upgrade
    from verify_api.settings import Settings

    settings = Settings.from_env()
    engine = make_engine(settings.database_url)
    upgrade(engine)
    engine.dispose()
