"""Derive anomaly/data/places.csv from cpca's adcodes.csv (MIT; see anomaly/data/LICENSE-cpca.txt).

    pip download --no-deps cpca==0.5.5 && unzip cpca-0.5.5-py3-none-any.whl
    python scripts/derive_places.py cpca/resources/adcodes.csv > anomaly/data/places.csv

Every county-level seat with coordinates becomes one row (lat, lng, prefecture-level
city, province); municipalities map to themselves, and county-level cities directly
under a province keep their own name.
"""

import csv
import sys

MUNICIPALITIES = {"11", "12", "31", "50"}


def main(path: str) -> None:
    with open(path, encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    by = {r["adcode"]: r for r in rows}
    out = []
    for r in rows:
        code = r["adcode"]
        if not r["latitude"] or code[6:] != "000000" or code[2:] == "0" * 10:
            continue
        prov = by.get(code[:2] + "0" * 10)
        if prov is None:
            continue
        if code[:2] in MUNICIPALITIES:
            city = prov["name"]
        elif code[4:] == "00000000":
            city = r["name"]
        else:
            parent = by.get(code[:4] + "0" * 8)
            direct = parent is None or "直辖" in parent["name"] or not parent["latitude"]
            city = r["name"] if direct else parent["name"]
        out.append((round(float(r["latitude"]), 4), round(float(r["longitude"]), 4), city, prov["name"]))
    # Provinces with no rows of their own below them (Hong Kong, Macau, Taiwan).
    for r in rows:
        if r["adcode"][2:] == "0" * 10 and r["latitude"] and not any(o[3] == r["name"] for o in out):
            out.append(
                (round(float(r["latitude"]), 4), round(float(r["longitude"]), 4), r["name"], r["name"])
            )
    out.sort()
    writer = csv.writer(sys.stdout)
    writer.writerow(["lat", "lng", "city", "province"])
    writer.writerows(out)


if __name__ == "__main__":
    main(sys.argv[1])
