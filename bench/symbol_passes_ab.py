"""A/B of the symbol stage's fallback passes: full resolution (before) against the reduced
copy on large photos where zxing's first read saw no symbol (after, `scanner/symbols.py`'s
`_REDUCE_ABOVE`).

Both readers run in this process on the same decoded photos, alternating which goes first
from one photo to the next, so a noisy host weighs on both alike. The photos are the
benchmark's own (bench/labels.py under --seed, and the never-tuned bench/labels_unseen.py
under its fixed seed), generated once. Each read gets the deadline it gets in production:
half the scanner's budget, counted from before the photo was decoded (the decode is timed
once and charged to both).

    python bench/symbol_passes_ab.py --n 300 --seed 1 [--unseen-n 200] [--whole] [--json out.json]

Reported: per photo set and kind, the truth symbols read (QR / other) by each, which must be
the same or better after; the symbol stage's median/p95 over all photos, over 12 MP photos
without a symbol, and over the photos that took the reduced copy; every photo whose
symbols were read differently. `--whole` then runs the whole scanner (OCR in its production
mode, "auto"; `--ocr always` for the digit reader on every photo) both ways over the same
photos, alternating likewise: whole-photo median/p95 per set, the OCR stage's median on
12 MP photos, and every photo whose reading differs.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.scanner_bench import _pct, log, write_samples, write_unseen  # noqa: E402
from scanner import Scanner, symbols  # noqa: E402
from scanner.core import _SYMBOL_SHARE  # noqa: E402
from scanner.image import load  # noqa: E402
from scanner.symbols import SymbolReader  # noqa: E402

VARIANTS = ("before", "after")
_BIG_MP = 11.5  # "12 MP", as scanner_bench counts it


def _load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f}"


def _ms(values: list[float]) -> str:
    med, p95 = _pct(values, 0.5), _pct(values, 0.95)
    if med is None or p95 is None:
        return "-"
    return f"{med:,.0f}/{p95:,.0f} ms (n={len(values)})"


def _alternating(k: int, runs: dict[str, Callable[[], dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    """Both variants on one photo, the first one alternating with the photo's index."""
    order = VARIANTS if k % 2 == 0 else VARIANTS[::-1]
    return {v: runs[v]() for v in order}


def _symbol_hits(m: dict[str, Any], symbols: list[list[str]]) -> tuple[int, int, int, int]:
    """(QR read, QR total, other read, other total) against the photo's truth."""
    got_qr = {p for s, p in symbols if s == "qr"}
    got_other = {p for s, p in symbols if s != "qr"}
    qr_hit = qr_tot = o_hit = o_tot = 0
    for s, p in m["truth_codes"]:
        if s == "qr":
            qr_tot += 1
            qr_hit += p in got_qr
        else:
            o_tot += 1
            o_hit += p in got_other
    return qr_hit, qr_tot, o_hit, o_tot


def _first_read_empty(passes: list[str]) -> bool:
    """The full-resolution reader ran its fallback passes without a rescue: the first read
    saw no symbol (or only a linear one; those photos keep full resolution too)."""
    return "rescue" not in passes and len(passes) > 1


def _sized_empty(out: dict[str, dict[str, Any]], side: int, m: dict[str, Any]) -> bool:
    return max(m["width"], m["height"]) == side and _first_read_empty(out[m["file"]]["before"]["passes"])


def _wrong(m: dict[str, Any], symbols: list[list[str]]) -> int:
    truth = {p for _, p in m["truth_codes"]}
    return sum(1 for _, p in symbols if p not in truth)


def print_reads(meta: list[dict[str, Any]], out: dict[str, dict[str, dict[str, Any]]]) -> None:
    print("Truth symbols read, per photo set and kind (QR / other symbols; wrong = read, not in truth):")
    print(f"  {'set':<7} {'kind':<10} {'photos':>6}  {'before':>22}  {'after':>22}")
    groups: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for m in meta:
        groups[(m["set"], m["kind"])].append(m)
        groups[(m["set"], "all")].append(m)
    for (set_name, kind), ms in sorted(groups.items(), key=lambda x: (x[0][0], x[0][1] == "all", x[0][1])):
        cells = []
        for v in VARIANTS:
            qh = qt = oh = ot = wrong = 0
            for m in ms:
                a, b, c, d = _symbol_hits(m, out[m["file"]][v]["symbols"])
                qh, qt, oh, ot = qh + a, qt + b, oh + c, ot + d
                wrong += _wrong(m, out[m["file"]][v]["symbols"])
            cells.append(f"QR {qh}/{qt} other {oh}/{ot} w{wrong}")
        print(f"  {set_name:<7} {kind:<10} {len(ms):>6}  {cells[0]:>22}  {cells[1]:>22}")
    print()


def print_differences(
    meta: list[dict[str, Any]], out: dict[str, dict[str, dict[str, Any]]], what: str
) -> int:
    differ = 0
    for m in meta:
        a, b = (out[m["file"]][v] for v in VARIANTS)
        if sorted(map(tuple, a[what])) != sorted(map(tuple, b[what])):
            differ += 1
            print(f"  READ DIFFERENTLY {m['file']}: before {sorted(a[what])} after {sorted(b[what])}")
    if not differ:
        print(f"  no photo read differently ({what})")
    return differ


def symbol_ab(meta: list[dict[str, Any]], photo_dir: Path, budget_ms: float) -> dict[str, Any]:
    readers = {"before": SymbolReader(reduce_large=False), "after": SymbolReader()}
    share_s = _SYMBOL_SHARE * budget_ms / 1000
    out: dict[str, dict[str, Any]] = {}
    start = last = time.perf_counter()
    for k, m in enumerate(meta):
        data = (photo_dir / m["file"]).read_bytes()
        t = time.perf_counter()
        gray = load(data, max_bytes=1 << 30, max_pixels=1 << 30).gray
        load_s = time.perf_counter() - t

        def run(v: str, gray: Any = gray, load_s: float = load_s) -> dict[str, Any]:
            t0 = time.perf_counter()
            symbols, passes = readers[v].read(gray, t0 + share_s - load_s)
            ms = (time.perf_counter() - t0) * 1000
            return {
                "ms": round(ms, 1),
                "symbols": [[s.symbology, s.payload] for s in symbols],
                "passes": passes,
            }

        out[m["file"]] = _alternating(k, {v: partial(run, v) for v in VARIANTS})
        now = time.perf_counter()
        if now - last > 15 or k + 1 == len(meta):
            last = now
            log(f"[symbols] {k + 1}/{len(meta)}  {now - start:.0f}s  load {_load()}")

    def shortcut(m: dict[str, Any]) -> bool:
        return any(p.startswith("reduce-") for p in out[m["file"]]["after"]["passes"])

    selections: dict[str, Callable[[dict[str, Any]], bool]] = {
        "all photos": lambda m: True,
        "dev set": lambda m: m["set"] == "dev",
        "never-tuned set": lambda m: m["set"] == "unseen",
        "12 MP, no symbol in the photo": lambda m: m["megapixels"] >= _BIG_MP and not m["truth_codes"],
        "12 MP, first read saw no symbol": lambda m: m["megapixels"] >= _BIG_MP and shortcut(m),
        "every photo that took the reduced copy": shortcut,
    }
    # Per photo size, the photos that ran the fallback passes without a rescue (the first read
    # saw no symbol, or only a linear one): where a reduced copy could pay.
    for side in sorted({max(m["width"], m["height"]) for m in meta}):
        selections[f"longest side {side}, fallbacks, no rescue"] = partial(_sized_empty, out, side)
    print("Symbol stage median/p95 (the reader alone, production deadline):")
    times: dict[str, dict[str, Any]] = {}
    for label, pick in selections.items():
        ms = [m for m in meta if pick(m)]
        if not ms:
            continue
        row = {v: [out[m["file"]][v]["ms"] for m in ms] for v in VARIANTS}
        times[label] = {
            v: {"median": _pct(row[v], 0.5), "p95": _pct(row[v], 0.95), "n": len(ms)} for v in VARIANTS
        }
        print(f"  {label:<40} before {_ms(row['before']):<28} after {_ms(row['after'])}")
    print()
    print_reads(meta, out)
    differ = print_differences(meta, out, "symbols")
    print()
    return {"times": times, "read_differently": differ, "outputs": out}


def whole_ab(meta: list[dict[str, Any]], photo_dir: Path, budget_ms: float, ocr: str) -> dict[str, Any]:
    from bench import labels, labels_unseen

    bodies = {"dev": labels.ALL_BODY_CODES, "unseen": labels_unseen.ALL_BODY_CODES}
    scanners = {
        v: Scanner(known_body_codes=bodies["dev"], time_budget_ms=budget_ms, ocr=ocr) for v in VARIANTS
    }
    # The scanner's own reader, with the reduced copy turned off: the behaviour before.
    scanners["before"]._symbols = SymbolReader(reduce_large=False)
    warm = next(m for m in meta if m["truth_digits"])
    for sc in scanners.values():  # OCR models load on first use
        sc.scan((photo_dir / warm["file"]).read_bytes(), known_body_codes=bodies[warm["set"]])
    out: dict[str, dict[str, Any]] = {}
    start = last = time.perf_counter()
    for k, m in enumerate(meta):
        data = (photo_dir / m["file"]).read_bytes()

        def run(v: str, data: bytes = data, set_name: str = m["set"]) -> dict[str, Any]:
            t0 = time.perf_counter()
            r = scanners[v].scan(data, known_body_codes=bodies[set_name])
            ms = (time.perf_counter() - t0) * 1000
            return {
                "ms": round(ms, 1),
                "symbols": [[f.symbology, f.payload] for f in r.found if f.symbology != "digits"],
                "digits": [["digits", f.payload] for f in r.found if f.symbology == "digits"],
                "ocr_ms": r.extra.get("ocr_ms"),
                "passes": r.passes,
            }

        out[m["file"]] = _alternating(k, {v: partial(run, v) for v in VARIANTS})
        now = time.perf_counter()
        if now - last > 15 or k + 1 == len(meta):
            last = now
            log(f"[whole] {k + 1}/{len(meta)}  {now - start:.0f}s  load {_load()}")
    print(f"Whole scanner (ocr={ocr}, budget {budget_ms:.0f} ms) median/p95, and the OCR stage on 12 MP:")
    summary: dict[str, Any] = {}
    for set_name in ("dev", "unseen"):
        ms = [m for m in meta if m["set"] == set_name]
        if not ms:
            continue
        row: dict[str, Any] = {}
        for v in VARIANTS:
            whole = [out[m["file"]][v]["ms"] for m in ms]
            ocr12 = [
                out[m["file"]][v]["ocr_ms"]
                for m in ms
                if m["megapixels"] >= _BIG_MP and out[m["file"]][v]["ocr_ms"] is not None
            ]
            digits = sum(
                1
                for m in ms
                if m["truth_digits"] and ["digits", m["truth_digits"]] in out[m["file"]][v]["digits"]
            )
            wrong_digits = sum(
                1 for m in ms for _, d in out[m["file"]][v]["digits"] if d != m["truth_digits"]
            )
            row[v] = {
                "median": _pct(whole, 0.5),
                "p95": _pct(whole, 0.95),
                "ocr_median_12mp": _pct(ocr12, 0.5),
                "ocr_p95_12mp": _pct(ocr12, 0.95),
                "ocr_n_12mp": len(ocr12),
                "digits_read": digits,
                "wrong_digits": wrong_digits,
            }
        summary[set_name] = row
        n_dig = sum(1 for m in ms if m["truth_digits"])
        for v in VARIANTS:
            r = row[v]
            print(
                f"  {set_name:<7} {v:<7} whole {_ms([out[m['file']][v]['ms'] for m in ms]):<28}"
                f" OCR 12 MP median/p95 {r['ocr_median_12mp'] or 0:,.0f}/{r['ocr_p95_12mp'] or 0:,.0f} ms"
                f" (n={r['ocr_n_12mp']})  digits {r['digits_read']}/{n_dig} wrong {r['wrong_digits']}"
            )
    print()
    print_reads(meta, out)
    differ = print_differences(meta, out, "symbols") + print_differences(meta, out, "digits")
    print()
    return {"summary": summary, "read_differently": differ, "outputs": out}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=300, help="development photos (bench/labels.py)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--unseen-n", type=int, default=200, help="never-tuned photos (0 skips them)")
    ap.add_argument("--unseen-seed", type=int, default=None, help="default: labels_unseen.SEED")
    ap.add_argument("--budget-ms", type=float, default=2500, help="the scanner's budget (its default)")
    ap.add_argument(
        "--reduce-above",
        type=int,
        default=None,
        help="the after reader's threshold (longest side, px); default: scanner/symbols.py's own",
    )
    ap.add_argument("--whole", action="store_true", help="also A/B the whole scanner")
    ap.add_argument("--no-symbols", action="store_true", help="skip the symbol-stage A/B")
    ap.add_argument("--ocr", default="auto", choices=("auto", "always"), help="the whole scanner's OCR mode")
    ap.add_argument("--json", type=Path, help="write every number and per-photo output here")
    ap.add_argument("--keep", type=Path, help="keep the generated photos in this directory")
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.unseen_seed is None:
        from bench.labels_unseen import SEED

        args.unseen_seed = SEED
    if args.reduce_above is not None:
        symbols._REDUCE_ABOVE = args.reduce_above  # read at each call: this run's threshold
    workdir = Path(tempfile.mkdtemp(prefix="symbol-ab-"))
    photo_dir = args.keep or workdir
    photo_dir.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {"args": {k: str(v) for k, v in vars(args).items()}}
    try:
        meta = write_samples(args.n, args.seed, ("easy", "medium", "hard"), photo_dir)
        if args.unseen_n > 0:
            meta += write_unseen(args.unseen_n, args.unseen_seed, photo_dir)
        big = sum(1 for m in meta if m["megapixels"] >= _BIG_MP)
        report["load_start"] = _load()
        print(
            f"symbol passes A/B: dev n={args.n} seed={args.seed}, never-tuned n={args.unseen_n} seed="
            f"{args.unseen_seed}; {len(meta)} photos, {big} of 12 MP; budget {args.budget_ms:.0f} ms;"
            f" reduce above {symbols._REDUCE_ABOVE} px to {symbols._REDUCED_SIDE} px;"
            f" {time.strftime('%Y-%m-%d %H:%M:%S %Z')}; load {report['load_start']}; {os.cpu_count()} CPUs\n"
        )
        if not args.no_symbols:
            report["symbols"] = symbol_ab(meta, photo_dir, args.budget_ms)
            print(f"load after the symbol A/B: {_load()}\n")
        if args.whole:
            report["whole"] = whole_ab(meta, photo_dir, args.budget_ms, args.ocr)
            print(f"load after the whole-scanner A/B: {_load()}\n")
        report["load_end"] = _load()
        if args.json:
            report["samples"] = meta
            args.json.write_text(json.dumps(report, indent=1, ensure_ascii=False))
            log(f"wrote {args.json}")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
