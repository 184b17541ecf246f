"""What a flag's page and the code lookup read about one code: its scan events (with the
scanner's hash shortened), its daily counts kept after raw events are rolled up, and the
shoppers' reports with their photos. Who may read them is the service's decision (it asks
domain.access with the code's owner); these queries take the code as given."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from registry import schema as t

# Shown on the flag's page: enough to tell scans apart, never the scanner's whole keyed hash.
SCANNER_CHARS = 8


def _utc(value: datetime | None) -> datetime | None:
    return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


class SqlCaseReader:
    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    def scans(self, code: str, *, limit: int) -> list[dict[str, Any]]:
        """The code's scan events, newest first, at most `limit`."""
        e = t.scan_events
        query = (
            sa.select(
                e.c.event_id,
                e.c.at,
                e.c.channel,
                e.c.verdict,
                e.c.client_hash,
                e.c.city,
                e.c.province,
                e.c.lat,
                e.c.lng,
            )
            .where(e.c.code == code)
            .order_by(e.c.at.desc(), e.c.event_id.desc())
            .limit(limit)
        )
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
        return [
            {
                "event_id": r.event_id,
                "at": _utc(r.at),
                "channel": r.channel,
                "verdict": r.verdict,
                "scanner": r.client_hash[:SCANNER_CHARS] if r.client_hash else None,
                "city": r.city,
                "province": r.province,
                # Rounded to 0.01° when stored (about a kilometre): where, not who.
                "lat": r.lat,
                "lng": r.lng,
            }
            for r in rows
        ]

    def scan_totals(self, code: str, since: datetime | None = None) -> dict[str, Any]:
        """Counts over the code's retained events (from `since` on when given): scans,
        distinct scanners, cities, provinces, first and last scan."""
        e = t.scan_events
        query = sa.select(
            sa.func.count().label("scans"),
            sa.func.count(sa.distinct(e.c.client_hash)).label("scanners"),
            sa.func.count(sa.distinct(e.c.city)).label("cities"),
            sa.func.count(sa.distinct(e.c.province)).label("provinces"),
            sa.func.min(e.c.at).label("first_at"),
            sa.func.max(e.c.at).label("last_at"),
        ).where(e.c.code == code)
        if since is not None:
            query = query.where(e.c.at >= since.astimezone(UTC).replace(tzinfo=None))
        with self.engine.connect() as conn:
            r = conn.execute(query).one()
        return {
            "scans": int(r.scans),
            "scanners": int(r.scanners),
            "cities": int(r.cities),
            "provinces": int(r.provinces),
            "first_at": _utc(r.first_at),
            "last_at": _utc(r.last_at),
        }

    def scans_by_place(self, code: str) -> list[dict[str, Any]]:
        """Scans and distinct scanners per province and city, most scans first."""
        e = t.scan_events
        query = (
            sa.select(
                e.c.province,
                e.c.city,
                sa.func.count().label("scans"),
                sa.func.count(sa.distinct(e.c.client_hash)).label("scanners"),
                sa.func.min(e.c.at).label("first_at"),
                sa.func.max(e.c.at).label("last_at"),
            )
            .where(e.c.code == code)
            .group_by(e.c.province, e.c.city)
            .order_by(sa.func.count().desc(), e.c.province, e.c.city)
        )
        with self.engine.connect() as conn:
            return [
                {
                    "province": r.province,
                    "city": r.city,
                    "scans": int(r.scans),
                    "scanners": int(r.scanners),
                    "first_at": _utc(r.first_at),
                    "last_at": _utc(r.last_at),
                }
                for r in conn.execute(query)
            ]

    def scans_by_channel(self, code: str) -> dict[str, int]:
        e = t.scan_events
        query = sa.select(e.c.channel, sa.func.count()).where(e.c.code == code).group_by(e.c.channel)
        with self.engine.connect() as conn:
            return {str(channel): int(n) for channel, n in conn.execute(query)}

    def scans_by_day(self, code: str) -> list[dict[str, Any]]:
        """Per UTC day: the rolled-up days (raw events deleted by retention) and the days
        still held as events, oldest first."""
        e, r = t.scan_events, t.scan_rollups
        day = sa.func.date(e.c.at)
        live = (
            sa.select(
                day.label("day"),
                sa.func.count().label("scans"),
                sa.func.count(sa.distinct(e.c.client_hash)).label("scanners"),
            )
            .where(e.c.code == code)
            .group_by(day)
        )
        rolled = sa.select(r.c.day, r.c.scans, r.c.scanners).where(r.c.code == code)
        with self.engine.connect() as conn:
            days: dict[str, dict[str, Any]] = {}
            for row in [*conn.execute(rolled), *conn.execute(live)]:
                key = str(row.day)
                found = days.setdefault(key, {"day": key, "scans": 0, "scanners": 0})
                found["scans"] += int(row.scans)
                found["scanners"] = max(found["scanners"], int(row.scanners))
        return [days[k] for k in sorted(days)]

    def reports(self, code: str) -> list[dict[str, Any]]:
        """The shoppers' reports on the code, newest first (the photo itself is read alone)."""
        rp = t.reports
        query = (
            sa.select(
                rp.c.id,
                rp.c.text,
                rp.c.shop,
                rp.c.city,
                rp.c.province,
                rp.c.created_at,
                rp.c.photo_type,
                (rp.c.photo.is_not(None)).label("has_photo"),
            )
            .where(rp.c.code == code)
            .order_by(rp.c.created_at.desc(), rp.c.id.desc())
        )
        with self.engine.connect() as conn:
            return [
                {
                    "id": r.id,
                    "text": r.text,
                    "shop": r.shop,
                    "city": r.city,
                    "province": r.province,
                    "at": _utc(r.created_at),
                    "has_photo": bool(r.has_photo),
                }
                for r in conn.execute(query)
            ]

    def report_photo(self, report_id: int) -> tuple[str, bytes, str] | None:
        """(the report's code, its photo, the photo's media type), or None without one."""
        rp = t.reports
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(rp.c.code, rp.c.photo, rp.c.photo_type).where(rp.c.id == report_id)
            ).first()
        if row is None or row.photo is None:
            return None
        return row.code, bytes(row.photo), row.photo_type or "application/octet-stream"

    def flags_of(self, code: str) -> list[dict[str, Any]]:
        """Every flag on the code (the code's owner is checked by the caller)."""
        f = t.flags
        query = sa.select(f.c.id, f.c.rule, f.c.severity, f.c.status, f.c.raised_at, f.c.note).where(
            f.c.code == code
        )
        with self.engine.connect() as conn:
            return [
                {
                    "id": r.id,
                    "rule": r.rule,
                    "severity": r.severity,
                    "status": r.status,
                    "raised_at": _utc(r.raised_at),
                    "note": r.note,
                }
                for r in conn.execute(query.order_by(f.c.raised_at.desc()))
            ]
