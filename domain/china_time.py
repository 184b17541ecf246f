"""China time (Asia/Shanghai, UTC+8 all year): what a shopper, a brand or an inspector
reads. Instants are kept and exchanged in UTC (API timestamps are ISO-8601 with an
offset); every date or time a person reads is China time, and every "today" that decides
a verdict (a certificate's last valid day, a code's year part) is China's today: between
00:00 and 08:00 Beijing time UTC still says yesterday.

The zone comes from the system's zoneinfo, or from the pinned `tzdata` package where the
system has none (slim container images).
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

CHINA = ZoneInfo("Asia/Shanghai")


def aware(value: datetime) -> datetime:
    """A stored naive datetime is UTC (the registry and the scan store write UTC)."""
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def in_china(value: datetime) -> datetime:
    return aware(value).astimezone(CHINA)


def china_today(now: datetime) -> date:
    """The calendar day in China at the instant `now`."""
    return in_china(now).date()


def iso_utc(value: datetime | None) -> str | None:
    """An instant for an API answer: ISO-8601 in UTC with its offset (`Z`)."""
    if value is None:
        return None
    return aware(value).astimezone(UTC).isoformat().replace("+00:00", "Z")


def parse_instant(text: str | None) -> datetime | None:
    """An ISO-8601 instant from an answer (with `Z` or an offset; naive is UTC)."""
    if not text:
        return None
    try:
        return aware(datetime.fromisoformat(text))
    except ValueError:
        return None


def china_minute(value: datetime | None) -> str | None:
    """`2026-12-03 01:09`: the date and time of day, China time, for people."""
    return in_china(value).strftime("%Y-%m-%d %H:%M") if value is not None else None


def china_day(value: datetime | None) -> str | None:
    """`2026-12-03`: the China date of an instant."""
    return in_china(value).date().isoformat() if value is not None else None
