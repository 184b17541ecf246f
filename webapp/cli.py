"""Operator commands: `flask --app wsgi <command>`.

Each command builds only what it uses (the container builds members on first use):
`db upgrade` the engine alone (no Redis, no filter), `import-codes` the admin service
and its caches (no scan store, so no replay of scan events), `seed-demo` the admin and
scan services, `worker` the SQL scan archive and its own Redis client."""

from __future__ import annotations

import csv
import gc
import sys
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import click
from flask import Flask
from flask.cli import AppGroup

from cache.bloom import BloomFilter
from domain.accounts import ROLES
from domain.bulk import Scope
from domain.errors import DomainError
from domain.spreadsheets import spreadsheet_safe
from registry.engine import downgrade
from services.accounts import MAX_PASSWORD, MIN_PASSWORD
from services.admin import ImportStopped
from services.sheets import CsvTable, Progress, rows_from_xlsx
from webapp.bulk import write, writer_process
from webapp.demo import seed, seed_demo_account
from webapp.schema import migrate
from webapp.wiring import container

db = AppGroup("db", help="Schema migrations (Alembic).")


@db.command("upgrade")
@click.argument("revision", default="head")
def db_upgrade(revision: str) -> None:
    """Migrate the database to REVISION (default: head)."""
    from flask import current_app

    migrate(container(current_app).engine, revision)
    click.echo(f"database at {revision}")


@db.command("downgrade")
@click.argument("revision")
def db_downgrade(revision: str) -> None:
    """Migrate the database down to REVISION (e.g. base)."""
    from flask import current_app

    downgrade(container(current_app).engine, revision)
    click.echo(f"database at {revision}")


def register(app: Flask) -> None:
    app.cli.add_command(db)

    @app.cli.command("create-token")
    @click.argument("name")
    @click.option("--scope", "scope_kind", type=click.Choice(["all", "body", "organization"]), required=True)
    @click.option("--target", help="the body's 4-digit code, or the organization's name")
    @click.option(
        "--expires-in-days",
        # Bounded: a date past year 9999 was an OverflowError traceback, not a message.
        type=click.IntRange(0, 36500),
        default=365,
        show_default=True,
        help="days until the token stops working; 0 = never",
    )
    def create_token(name: str, scope_kind: str, target: str | None, expires_in_days: int) -> None:
        """Create an admin bearer token; it is shown once and stored only as a hash."""
        expires_at = datetime.now(UTC) + timedelta(days=expires_in_days) if expires_in_days else None
        try:
            raw = container(app).admin.create_token(name, scope_kind, target, expires_at=expires_at)
        except DomainError as exc:  # an unknown body or organization: say so, no traceback
            raise click.ClickException(exc.detail) from exc
        click.echo(raw)
        if expires_at is not None:
            click.echo(f"expires {expires_at:%Y-%m-%d %H:%M} UTC", err=True)

    @app.cli.command("revoke-token")
    @click.argument("token")
    def revoke_token(token: str) -> None:
        """Revoke an admin token by its id or its name (a name must match one token)."""
        c = container(app)
        ids = [int(token)] if token.isdigit() else c.registry.token_ids_named(token)
        if len(ids) > 1:
            raise click.ClickException(f"{len(ids)} tokens are named {token!r} (ids {ids}); give the id")
        if not ids:
            raise click.ClickException(f"no token {token!r}")
        try:
            item = c.admin.revoke_token(ids[0], Scope("all", None, None, "cli"))
        except DomainError as exc:
            raise click.ClickException(exc.detail) from exc
        click.echo(f"token {item['id']} ({item['name']}) revoked at {item['revoked_at']}")

    @app.cli.command("import-codes")
    @click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
    @click.option(
        "--rejects",
        type=click.Path(dir_okay=False, path_type=Path),
        help="write rejected rows here as CSV (row,key,code,detail)",
    )
    @click.option("--chunk", default=100_000, show_default=True, help="rows per transaction")
    def import_codes(path: Path, rejects: Path | None, chunk: int) -> None:
        """Import organic codes from a CSV or XLSX file of any size, with progress."""
        c = container(app)
        scope = Scope("all", None, None, "cli")
        progress = Progress(sys.stderr)
        options: dict[str, Any] = {"chunk": chunk, "progress": progress, "bulk_file": True}
        pool = None
        if c.registry.dialect in ("mysql", "mariadb"):
            pool = writer_process(c.settings)
            options.update(executor=pool, writer=write)
        stopped: ImportStopped | None = None
        # The cyclic collector off while the import runs (and in the writer processes it
        # forks): it walked the import's large live lists (a block's lines, its columns)
        # hundreds of times a million rows, ~0.8 s of CPU, and an import makes no cycles
        # to speak of (a million-row import peaks at the same memory without it).
        collecting = gc.isenabled()
        gc.disable()
        try:
            if path.suffix.lower() == ".xlsx":
                result = c.admin.import_codes(rows_from_xlsx(path.read_bytes()), scope, **options)
            else:
                with path.open(encoding="utf-8-sig", newline="") as fh:
                    result = c.admin.import_codes(CsvTable(fh), scope, **options)
        except ImportStopped as exc:
            # Part landed: say exactly what, write the rejects met so far, exit non-zero.
            stopped, result = exc, exc.result
        except DomainError as exc:  # nothing landed (a file without a header, Redis away)
            raise click.ClickException(f"{exc.code}: {exc.detail}") from exc
        finally:
            if collecting:
                gc.enable()
            if pool is not None:
                pool.shutdown()
        elapsed = max(1e-9, time.monotonic() - progress.start)
        click.echo(
            f"\n{result.accepted:,} codes accepted, {len(result.rejected):,} rejected "
            f"in {elapsed:.1f}s ({result.accepted / elapsed:,.0f} codes/s)",
            err=True,
        )
        if rejects is not None:
            with rejects.open("w", newline="", encoding="utf-8") as fh:
                writer = csv.writer(fh)
                writer.writerow(["row", "key", "code", "detail"])
                for err in result.rejected:
                    # Keys and details quote the input: a spreadsheet must show, not run, them.
                    writer.writerow([spreadsheet_safe(v) for v in (err.row, err.key, err.code, err.detail)])
        elif result.rejected:
            for err in result.rejected[:20]:
                click.echo(f"row {err.row}: {err.key}: {err.code}: {err.detail}", err=True)
        if stopped is not None:
            raise click.ClickException(f"{stopped.code}: {stopped.detail}")

    @app.cli.command("seed-demo")
    def seed_demo() -> None:
        """Load demo data covering every verdict and print codes and URLs to try, and the
        dashboard's demo account (its password is new at every run)."""
        samples = seed(container(app).admin, date.today(), container(app).scan_admin)
        port = container(app).settings.port
        click.echo("Demo codes (open in a browser, or POST to /api/v1/verify):")
        for verdict, code in samples.items():
            click.echo(f"  {verdict:32s} http://127.0.0.1:{port}/c/{code}")
        click.echo(f"API docs: http://127.0.0.1:{port}/docs")
        login, password = seed_demo_account(container(app).accounts)
        click.echo(
            f"Dashboard: http://127.0.0.1:{port}/dashboard/login  account {login}  password {password}"
        )

    @app.cli.command("create-user")
    @click.argument("login")
    @click.option("--role", type=click.Choice(ROLES), required=True)
    @click.option("--scope", "scope_kind", type=click.Choice(["all", "body", "organization"]), required=True)
    @click.option("--target", help="the body's 4-digit code, or the organization's name")
    @click.option("--name", default="", help="the person's name, shown in the dashboard")
    @click.password_option(
        "--password",
        envvar="DASHBOARD_PASSWORD",
        help=f"{MIN_PASSWORD} to {MAX_PASSWORD} characters; asked for when not given (or DASHBOARD_PASSWORD)",
    )
    def create_user(
        login: str, role: str, scope_kind: str, target: str | None, name: str, password: str
    ) -> None:
        """Create a dashboard account (email or phone) with a role and a scope."""
        try:
            account = container(app).accounts.create_user(
                login, password, role, scope_kind, target, name=name
            )
        except DomainError as exc:
            raise click.ClickException(exc.detail) from exc
        where = f"{scope_kind} {target}" if target else scope_kind
        click.echo(f"account {account.id} {account.login}: {account.role.label}, scope {where}")

    @app.cli.command("worker")
    @click.option("--once", is_flag=True, help="drain what is there now, then exit")
    @click.option("--batch", default=500, show_default=True, help="stream entries read and written at once")
    @click.option(
        "--claim-idle-ms",
        default=60_000,
        show_default=True,
        help="take over another consumer's unacknowledged entries idle this long (it died)",
    )
    @click.option("--consumer", help="this consumer's name in the group  [default: hostname-pid]")
    def worker(once: bool, batch: int, claim_idle_ms: int, consumer: str | None) -> None:
        """Run every background consumer: scan events and flags from Redis into the database,
        and the webhook alerts their flags queued (embedded: the alerts alone)."""
        import signal
        import threading

        from anomaly.worker import StreamWorker
        from cache.redis_cache import make_redis
        from webapp.webhooks import Deliverer

        c = container(app)
        alerts = c.alerts
        c.seal_webhook_secrets()
        if c.settings.scan_store_url is None:
            # Embedded: scans and flags are written in process; the outbox is in the database.
            if once:
                sent = 0
                while n := alerts.deliver_due():
                    sent += n
                click.echo(f"webhook alerts delivered: {sent}")
                return
            click.echo("embedded mode: scans are written in process; sending webhook alerts only")
            deliverer = Deliverer(alerts.deliver_due)
            if threading.current_thread() is threading.main_thread():
                signal.signal(signal.SIGTERM, lambda *_: deliverer.stop(timeout=0))
                signal.signal(signal.SIGINT, lambda *_: deliverer.stop(timeout=0))
            deliverer.run()
            return
        # Blocking reads need a timeout above the block time, unlike the verify path's 50 ms.
        client = make_redis(c.settings.scan_store_url, timeout_ms=5000)
        w = StreamWorker(
            client,
            c.scan_sql.write_events,
            c.scan_sql.upsert_flag,
            consumer=consumer,
            batch=batch,
            claim_idle_ms=claim_idle_ms,
        )
        if once:
            w.drain()
            sent = 0
            while n := alerts.deliver_due():
                sent += n
            click.echo(f"drained: {w.stats}; webhook alerts delivered: {sent}")
        else:
            # Alerts go out from their own thread: a slow receiver never holds up the streams.
            deliverer = Deliverer(alerts.deliver_due).start()
            try:
                w.run()
            finally:
                deliverer.stop()

    @app.cli.group("aggregates")
    def aggregates_group() -> None:
        """The dashboard's aggregate tables, which the worker keeps current."""

    @aggregates_group.command("rebuild")
    def aggregates_rebuild() -> None:
        """Count every stored scan event and flag again under today's owners (after this
        release's migration, or a certificate's change of holder). Stop the worker first."""
        from registry.aggregates import rebuild
        from registry.engine import make_engine

        # Its own engine: one statement reads every event, far past the 10 s read timeout.
        engine = make_engine(container(app).settings.database_url, statement_timeout_s=3600)
        counts = rebuild(engine, progress=lambda step: click.echo(f"  {step}"))
        engine.dispose()
        click.echo("rebuilt: " + ", ".join(f"{name} {n:,} rows" for name, n in counts.items()))

    @app.cli.command("retention")
    @click.option("--days", default=400, show_default=True, help="keep raw scan events this many days")
    def retention(days: int) -> None:
        """Roll raw scan events older than --days into daily counts and delete them."""
        from datetime import timedelta

        deleted = container(app).scan_sql.roll_up(date.today() - timedelta(days=days))
        click.echo(f"rolled up and deleted {deleted:,} events older than {days} days")

    @app.cli.command("rebuild-projection")
    def rebuild_projection_cmd() -> None:
        """Write every issued code into the key store's projection (cache.projection) from
        the database, with progress; the service keeps serving meanwhile (misses are asked
        of the database until it completes). Needed after a Redis loss, a resize
        (EXPECTED_CODES), or a writer whose projection mark lapsed."""
        from webapp.wiring import rebuild_projection

        c = container(app)
        if c.redis is None:
            click.echo("embedded mode: the projection is built in process at start")
            return

        def progress(n: int, seconds: float) -> None:
            click.echo(f"\r{n:,} codes written, {n / max(seconds, 1e-9):,.0f} codes/s", nl=False, err=True)

        n = rebuild_projection(c.settings, progress)
        click.echo("", err=True)
        if n is None:
            raise click.ClickException("another process is rebuilding the projection")
        click.echo(f"projection rebuilt from {n:,} codes")

    @app.cli.command("rebuild-filter")
    def rebuild_filter() -> None:
        """Rebuild the shared filter of issued codes from the database (after a resize)."""
        c = container(app)
        if c.redis is None:
            click.echo("embedded mode: the filter is built in process at start")
            return
        from cache.redis_cache import RedisFilterStore

        store = c.admin.filters  # the writers' client: a 4 MiB SET needs seconds, not 50 ms
        assert isinstance(store, RedisFilterStore)
        bloom = BloomFilter(store.m_bits, store.k)
        n = 0
        for code in c.registry.iter_codes():
            bloom.add(code)
            n += 1
        store.replace(bloom)
        c.admin.generations.bump("codes")
        click.echo(f"filter rebuilt from {n:,} codes ({store.m_bits // 8:,} bytes, k={store.k})")
