"""Offline coarse place for scans: (lat, lng) → (city, province), and IPv4 → (city, province).

Coordinates: nearest county-level seat among ~3,200 (anomaly/data/places.csv, derived from
the MIT-licensed adcode table of the `cpca` package; see anomaly/data/LICENSE-cpca.txt),
each mapped to its prefecture-level city and province ("杭州市", "浙江省"). Seats rather
than the ~370 prefecture centres because a prefecture can be 300 km across: near a border
its own centre may be farther than the neighbour's, while its county seats are not.
Coordinates further than `max_km` from every seat (abroad, at sea) have no place; a
Vietnamese or Korean town within that distance of the border is attributed to the Chinese
city next to it, which errs towards "same place", never towards a flag.

IP: the ip2region v2 database (Apache-2.0, lionsoul2014/ip2region) that the `ip-region`
package ships as `ipregion/ip2region.xdb`. Only its data file is read, memory-mapped (so
gunicorn workers share the pages); the package's own code, which calls web APIs, is never
imported. Another `.xdb` file (a newer ip2region build) can be configured by path.

Both tables load once, on first use; a lookup reads only memory (a few microseconds).
"""

from __future__ import annotations

import csv
import functools
import importlib.util
import ipaddress
import math
import mmap
import os
import socket
import struct
from collections.abc import Iterable
from pathlib import Path

_DATA = Path(__file__).with_name("data") / "places.csv"
EARTH_KM = 6371.0
_KM_PER_DEG = math.pi * EARTH_KM / 180
_CELL_DEG = 0.5

Place = tuple[str | None, str | None]


def distance_km(lat1: float, lng1: float, lat2: float, lng2: float) -> float:
    """Great-circle (haversine) distance."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lng2 - lng1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_KM * math.asin(min(1.0, math.sqrt(a)))


class Places:
    """Nearest-seat search on a 0.5° grid, ring by ring outwards from the query's cell,
    stopping once no farther ring can hold a nearer seat."""

    def __init__(self, rows: Iterable[tuple[float, float, str, str]], max_km: float = 150.0) -> None:
        self.max_km = max_km
        self.grid: dict[tuple[int, int], list[tuple[float, float, str, str]]] = {}
        for row in rows:
            self.grid.setdefault(self._cell(row[0], row[1]), []).append(row)
        self.provinces = frozenset(row[3] for rows_ in self.grid.values() for row in rows_)
        cities: dict[str, set[str]] = {}
        for rows_ in self.grid.values():
            for _lat, _lng, city, province in rows_:
                cities.setdefault(province, set()).add(city)
        self.cities = {province: frozenset(names) for province, names in cities.items()}
        self._centres: dict[tuple[str, str], tuple[float, float]] | None = None

    @staticmethod
    def _cell(lat: float, lng: float) -> tuple[int, int]:
        return math.floor(lat / _CELL_DEG), math.floor(lng / _CELL_DEG)

    def locate(self, lat: float, lng: float) -> tuple[str, str] | None:
        """(city, province) of the nearest seat within `max_km`, or None."""
        if not (-90.0 <= lat <= 90.0 and -180.0 <= lng <= 180.0):
            return None
        ci, cj = self._cell(lat, lng)
        # A cell's east-west width shrinks with latitude: bound it at the widest latitude
        # the search can reach, so the ring bound below never overestimates.
        reach_deg = self.max_km / _KM_PER_DEG
        cos_min = max(math.cos(math.radians(min(89.0, abs(lat) + reach_deg))), 0.01)
        cell_km = _CELL_DEG * _KM_PER_DEG * cos_min
        rings = math.ceil(self.max_km / cell_km) + 1
        cos_lat = math.cos(math.radians(lat))
        best: tuple[float, float, str, str] | None = None
        best_km = self.max_km
        for ring in range(rings + 1):
            # Every seat in ring r lies at least (r - 1) whole cells away.
            if best is not None and (ring - 1) * cell_km > best_km:
                break
            for i, j in _ring(ci, cj, ring):
                for row in self.grid.get((i, j), ()):
                    # Equirectangular distance: within 0.1 % of haversine at these ranges.
                    dy = row[0] - lat
                    dx = (row[1] - lng) * cos_lat
                    km = math.sqrt(dx * dx + dy * dy) * _KM_PER_DEG
                    if km < best_km:
                        best, best_km = row, km
        return (best[2], best[3]) if best else None

    def province_name(self, short: str) -> str | None:
        """The full province name for ip2region's short forms ("北京" → "北京市",
        "广西" → "广西壮族自治区"); full names pass through."""
        if short in self.provinces:
            return short
        matches = [p for p in self.provinces if p.startswith(short)]
        return matches[0] if len(matches) == 1 else None

    def city_name(self, province: str, short: str) -> str | None:
        known = self.cities.get(province, frozenset())
        if short in known:
            return short
        matches = [c for c in known if c.startswith(short)]
        return matches[0] if len(matches) == 1 else None

    def city_point(self, province: str, city: str) -> tuple[float, float] | None:
        """(lng, lat) to draw a city at: the mean of its county seats (a prefecture's seat
        is not in the table as such); None for a city the table does not know."""
        if self._centres is None:
            sums: dict[tuple[str, str], list[float]] = {}
            for rows_ in self.grid.values():
                for lat, lng, name, prov in rows_:
                    acc = sums.setdefault((prov, name), [0.0, 0.0, 0.0])
                    acc[0] += lng
                    acc[1] += lat
                    acc[2] += 1
            self._centres = {k: (round(a[0] / a[2], 3), round(a[1] / a[2], 3)) for k, a in sums.items()}
        return self._centres.get((province, city))

    def region_name(self, name: str) -> str | None:
        """A province or city as scans name it ("浙江" → "浙江省", "苏州" → "苏州市"); None
        when it names no place, or more than one."""
        if (province := self.province_name(name)) is not None:
            return province
        exact = [name for known in self.cities.values() if name in known]
        if exact:
            return name
        prefixed = {c for known in self.cities.values() for c in known if c.startswith(name)}
        return prefixed.pop() if len(prefixed) == 1 else None


def _ring(ci: int, cj: int, r: int) -> Iterable[tuple[int, int]]:
    if r == 0:
        yield ci, cj
        return
    for j in range(cj - r, cj + r + 1):
        yield ci - r, j
        yield ci + r, j
    for i in range(ci - r + 1, ci + r):
        yield i, cj - r
        yield i, cj + r


@functools.cache
def places() -> Places:
    with _DATA.open(encoding="utf-8") as fh:
        rows = [(float(r["lat"]), float(r["lng"]), r["city"], r["province"]) for r in csv.DictReader(fh)]
    return Places(rows)


def locate(lat: float | None, lng: float | None) -> Place:
    """(city, province) for coordinates, (None, None) when unknown or not in China."""
    if lat is None or lng is None or math.isnan(lat) or math.isnan(lng):
        return None, None
    found = places().locate(lat, lng)
    return found if found else (None, None)


# ip2region xdb v2 layout: a 256-byte header, a 256×256 vector index of (start, end) segment
# pointers by the address's first two bytes, then 14-byte segments
# (start ip, end ip, region length, region pointer), all little-endian.
_HEADER = 256
_VECTOR = 256 * 256 * 8
_SEGMENT = struct.Struct("<IIHI")
_POINTERS = struct.Struct("<II")


class IpPlaces:
    """IPv4 → (city, province) from an ip2region `.xdb` file, memory-mapped."""

    def __init__(self, path: str | os.PathLike[str], names: Places | None = None) -> None:
        self.path = Path(path)
        # Shoppers come back from the same addresses: the lookup is on every verify.
        self._memo = functools.lru_cache(maxsize=65_536)(self._locate)
        with self.path.open("rb") as fh:
            self._buf = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
        if len(self._buf) < _HEADER + _VECTOR or struct.unpack_from("<H", self._buf, 0)[0] != 2:
            self._buf.close()
            raise ValueError(f"{self.path} is not an ip2region xdb v2 file")
        self.names = names or places()

    def region(self, ip: str) -> str | None:
        """The raw region text, "中国|0|浙江省|杭州市|电信"; None for IPv6 and unknown text."""
        n = _ipv4_int(ip)
        if n is None:
            return None  # the v2 format covers IPv4 only
        start, end = _POINTERS.unpack_from(self._buf, _HEADER + ((n >> 24) * 256 + ((n >> 16) & 0xFF)) * 8)
        lo, hi = 0, (end - start) // _SEGMENT.size
        while lo <= hi:
            mid = (lo + hi) // 2
            first, last, length, ptr = _SEGMENT.unpack_from(self._buf, start + mid * _SEGMENT.size)
            if n < first:
                hi = mid - 1
            elif n > last:
                lo = mid + 1
            else:
                return self._buf[ptr : ptr + length].decode("utf-8", "replace")
        return None

    def locate(self, ip: str | None) -> Place:
        """(city, province) in the same names as `locate`; (None, None) outside China or
        for private, unknown and IPv6 addresses. The city may be None with a province."""
        return self._memo(ip)

    def _locate(self, ip: str | None) -> Place:
        text = self.region(ip) if ip else None
        if not text:
            return None, None
        parts = text.split("|")
        if len(parts) < 4 or parts[0] != "中国":
            return None, None
        province = self.names.province_name(parts[2]) if parts[2] != "0" else None
        if province is None:
            return None, None
        city = self.names.city_name(province, parts[3]) if parts[3] != "0" else None
        return city, province

    def close(self) -> None:
        self._buf.close()


def _ipv4_int(ip: str) -> int | None:
    """An IPv4 address as its number; None for anything else (IPv6, not an address).
    A plain dotted address by inet_pton (~1 µs, the lookup runs for every new shopper's
    address), anything else by the ipaddress module (~8 µs), which decides what counts."""
    try:
        packed = socket.inet_pton(socket.AF_INET, ip)
    except (OSError, ValueError):
        packed = None
    if packed is not None and f"{packed[0]}.{packed[1]}.{packed[2]}.{packed[3]}" == ip:
        return int.from_bytes(packed, "big")
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return None
    return int(addr) if addr.version == 4 else None


def shipped_xdb() -> Path | None:
    """The ip2region database inside the installed `ip-region` package, if any. Found
    without importing the package (its __init__ imports requests and calls web APIs)."""
    spec = importlib.util.find_spec("ipregion")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        candidate = Path(folder) / "ip2region.xdb"
        if candidate.is_file():
            return candidate
    return None


def ip_places(path: str | None = None) -> IpPlaces | None:
    """The IP table: `path` when given (a configured `.xdb`), else the shipped one; None
    when neither exists, and scans without coordinates then have no place. Opened once
    per path and process."""
    return _ip_places(path or None)


@functools.cache
def _ip_places(path: str | None) -> IpPlaces | None:
    chosen = Path(path) if path else shipped_xdb()
    return IpPlaces(chosen) if chosen else None


def locate_ip(ip: str | None, path: str | None = None) -> Place:
    table = ip_places(path)
    return table.locate(ip) if table else (None, None)
