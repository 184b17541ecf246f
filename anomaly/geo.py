"""Offline coarse place: latitude/longitude → (city, province) for China.

Nearest county seat among ~3,200 (anomaly/data/places.csv, derived from cpca's MIT-licensed
adcode table), bucketed on a 1° grid so a lookup reads a few dozen points. Coordinates
further than `max_km` from every seat (abroad, at sea) have no place. Nothing is
downloaded: the table ships in the repository.

There is no IP → place here: no registry package ships an IP database we may use, so a
scan without coordinates has no place (ip2region's PyPI package ships no data file).
"""

from __future__ import annotations

import csv
import functools
import math
from pathlib import Path

_DATA = Path(__file__).with_name("data") / "places.csv"
EARTH_KM = 6371.0


def distance_km(lat1: float, lng1: float, lat2: float, lng2: float) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lng2 - lng1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_KM * math.asin(min(1.0, math.sqrt(a)))


class Places:
    def __init__(self, rows: list[tuple[float, float, str, str]], max_km: float = 150.0) -> None:
        self.max_km = max_km
        self.grid: dict[tuple[int, int], list[tuple[float, float, str, str]]] = {}
        for row in rows:
            self.grid.setdefault((math.floor(row[0]), math.floor(row[1])), []).append(row)

    def locate(self, lat: float, lng: float) -> tuple[str, str] | None:
        """(city, province) of the nearest county seat, or None when nothing is near."""
        best, best_km = None, self.max_km
        cell_lat, cell_lng = math.floor(lat), math.floor(lng)
        for dlat in (-1, 0, 1):
            for dlng in (-1, 0, 1):
                for row in self.grid.get((cell_lat + dlat, cell_lng + dlng), ()):
                    km = distance_km(lat, lng, row[0], row[1])
                    if km < best_km:
                        best, best_km = row, km
        if best is None:
            # Sparse west (Xinjiang, Tibet): seats can be more than one cell away.
            for rows in self.grid.values():
                for row in rows:
                    km = distance_km(lat, lng, row[0], row[1])
                    if km < best_km:
                        best, best_km = row, km
        return (best[2], best[3]) if best else None


@functools.cache
def places() -> Places:
    with _DATA.open(encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        rows = [(float(r["lat"]), float(r["lng"]), r["city"], r["province"]) for r in reader]
    return Places(rows)


def locate(lat: float | None, lng: float | None) -> tuple[str | None, str | None]:
    if lat is None or lng is None:
        return None, None
    found = places().locate(lat, lng)
    return found if found else (None, None)
