"""The brand-protection overview (issue 16, item 2) for one scope and period: read from the
aggregate tables only (domain.ports.OverviewReader), never raw scan events, so its cost
does not grow with the events stored."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

from domain.bulk import Scope
from domain.china_time import china_today
from domain.overview import DayCount, GaugeRow, Overview, Period, PlaceCount, Ranked, scope_key
from domain.ports import OverviewReader

TOP = 10
GAUGE_ROWS = 12


def _series(counts: list[DayCount], period: Period) -> dict[str, list[int]]:
    index = {day: i for i, day in enumerate(period.dates())}
    series: dict[str, list[int]] = {}
    for c in counts:
        series.setdefault(c.key, [0] * period.days)[index[c.day]] += c.count
    # The largest series first: the legend and stacking read best that way.
    return dict(sorted(series.items(), key=lambda kv: (-sum(kv[1]), kv[0])))


def _provinces(places: list[PlaceCount]) -> list[PlaceCount]:
    totals: dict[str, list[int]] = {}
    for p in places:
        t = totals.setdefault(p.province, [0, 0])
        t[0] += p.scans
        t[1] += p.suspicious
    return sorted(
        (PlaceCount(name, "", scans, suspicious) for name, (scans, suspicious) in totals.items()),
        key=lambda p: (-p.scans, p.province),
    )


class OverviewService:
    def __init__(
        self,
        reader: OverviewReader,
        city_point: Callable[[str, str], tuple[float, float] | None] = lambda _p, _c: None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        """`city_point`: where to draw a city on the map, (lng, lat), from the places table."""
        self.reader = reader
        self.city_point = city_point
        self.clock = clock
        # The page's five reads are independent: asked at once, the page waits for the
        # slowest, not for their sum.
        self._pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="overview")

    def period(self, days: str | int | None) -> Period:
        """The period asked for (domain.overview.PERIOD_DAYS), ending China's today."""
        return Period.choose(days, china_today(self.clock()))

    def overview(self, scope: Scope, period: Period) -> Overview:
        key = scope_key(scope)
        first, last = period.first, period.last
        asked_flags = self._pool.submit(self.reader.flags_by_day, key, first, last)
        asked_places = self._pool.submit(self.reader.places, key, first, last)
        asked_ranked = self._pool.submit(self.reader.top_targets, key, first, last, TOP)
        asked_gauge = self._pool.submit(self.reader.gauge, scope, GAUGE_ROWS)
        scans = _series(self.reader.scans_by_day(key, first, last), period)
        flags = _series(asked_flags.result(), period)
        places = asked_places.result()
        ranked = asked_ranked.result()
        gauge = asked_gauge.result()
        cities = sorted((p for p in places if p.city), key=lambda p: (-p.scans, p.province, p.city))
        return Overview(
            scope=scope,
            period=period,
            days=period.dates(),
            scans_by_verdict=scans,
            flags_by_rule=flags,
            provinces=_provinces(places),
            cities=cities,
            top_certificates=_top(ranked, "certificate"),
            top_products=_top([r for r in ranked if r.kind != "certificate"], None),
            gauge=gauge,
            points={(p.province, p.city): xy for p in cities if (xy := self.city_point(p.province, p.city))},
            totals={
                "scans": sum(map(sum, scans.values())),
                "suspicious": sum(scans.get("suspicious", [])),
                "flags": sum(map(sum, flags.values())),
            },
        )

    def gauge(self, scope: Scope) -> list[GaugeRow]:
        """Per certificate product in scope: its distinct codes seen in a genuine scan, times
        each code's package weight, against its certified tonnes; the fullest first."""
        return self.reader.gauge(scope, GAUGE_ROWS)


def _top(ranked: list[Ranked], kind: str | None) -> list[Ranked]:
    chosen = [r for r in ranked if kind is None or r.kind == kind]
    return sorted(chosen, key=lambda r: (-r.flags, r.name, r.id))[:TOP]
