"""Photo-scanning benchmark: single decoders vs the project scanner on the same synthetic photos.

Generates labelled label photos once (bench/labels.py: easy / medium / hard tiers, QR,
printed digits, EAN-13 / Code 128 / DataMatrix, negatives full of code-like numbers),
writes them to a temporary directory, then runs each engine in its own fresh process
(so its peak RSS is its own) over the same files:

  zxing         zxingcpp.read_barcodes, default options
  pyzbar        pyzbar.decode (no DataMatrix)
  opencv        cv2.QRCodeDetector().detectAndDecodeMulti (QR only)
  opencv-aruco  cv2.QRCodeDetectorAruco, when this OpenCV has it
  rapidocr      RapidOCR on the whole photo; 17/18-digit runs after removing spaces/dashes
  union         zxing ∪ pyzbar ∪ opencv(-aruco), computed from their runs (time = sum)
  project       scanner.Scanner().scan(bytes), OCR in its production ("auto") mode
  project-ocr   the same with ocr="always", on the OCR subset: its printed-digit reading

Single engines get the photo decoded by Pillow with ImageOps.exif_transpose (the project
scanner gets the raw bytes and must honour EXIF itself). Times include that decoding.

    python bench/scanner_bench.py --n 300 --seed 1 [--engines all] [--no-ocr]
        [--ocr-limit N] [--json out.json] [--keep DIR]

Progress goes to stderr; the tables to stdout.
"""

from __future__ import annotations

import argparse
import io
import json
import multiprocessing as mp
import os
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# bench.labels (numpy, cv2, zxing-cpp) is imported lazily, in the parent only: the engine
# workers re-import this module when spawned and must carry nothing but their engine, so
# that their peak RSS is the engine's own.
TIERS = ("easy", "medium", "hard")
SINGLE_QR_ENGINES = ("zxing", "pyzbar", "opencv", "opencv-aruco")
OCR_ENGINES = ("rapidocr", "project-ocr")
ALL_ENGINES = (*SINGLE_QR_ENGINES, "rapidocr", "project", "project-ocr")
# A printed organic code: 17 or 18 digits not part of a longer run.
_CODE_RUN = re.compile(r"(?<!\d)\d{17,18}(?!\d)")
_SEPARATORS = re.compile(r"[\s\-‐‑‒–—_.·]+")


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------- memory


def _proc_status_kb(field: str) -> int | None:
    """VmHWM/VmRSS of this process. VmHWM is the high-water mark of this process's own
    address space: unlike ru_maxrss it is not inherited from the parent across exec, and
    our parent holds generated images we must not be charged for."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def _peak_rss_kb() -> int:
    hwm = _proc_status_kb("VmHWM")
    if hwm is not None:
        return hwm
    import resource

    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


# ----------------------------------------------------------------------------- engines
# Each factory returns run(data: bytes, bodies: frozenset[str]) -> (symbols [(symbology,
# payload)], digits [str]); `bodies` are the certification bodies of the photo's set (only
# the project scanner uses them).

Result = tuple[list[tuple[str, str]], list[str]]


def _decode_gray(data: bytes) -> Any:
    import numpy as np
    from PIL import Image, ImageOps

    with Image.open(io.BytesIO(data)) as im:
        return np.asarray(ImageOps.exif_transpose(im).convert("L"))


_ZXING_NAMES = {
    "QRCode": "qr",
    "MicroQRCode": "qr",
    "DataMatrix": "datamatrix",
    "EAN13": "ean13",
    "Code128": "code128",
    "EAN8": "ean8",
    "UPCA": "upca",
    "UPCE": "upce",
    "ITF": "itf",
}


def _zxing() -> Callable[[bytes, frozenset[str]], Result]:
    import zxingcpp

    def run(data: bytes, bodies: frozenset[str]) -> Result:
        gray = _decode_gray(data)
        out = []
        for r in zxingcpp.read_barcodes(gray):
            name = str(r.format).split(".")[-1]
            # str(BarcodeFormat) is "QR Code"/"EAN-13" in zxing-cpp 3; .name is the enum name.
            enum_name = getattr(r.format, "name", name)
            out.append((_ZXING_NAMES.get(enum_name, enum_name.lower()), r.text))
        return out, []

    return run


def _pyzbar() -> Callable[[bytes, frozenset[str]], Result]:
    from pyzbar import pyzbar

    names = {"QRCODE": "qr", "EAN13": "ean13", "CODE128": "code128", "EAN8": "ean8", "UPCA": "upca"}

    def run(data: bytes, bodies: frozenset[str]) -> Result:
        gray = _decode_gray(data)
        return [
            (names.get(r.type, r.type.lower()), r.data.decode("utf-8", "replace"))
            for r in pyzbar.decode(gray)
        ], []

    return run


def _opencv(aruco: bool) -> Callable[[bytes, frozenset[str]], Result]:
    import cv2

    detector = cv2.QRCodeDetectorAruco() if aruco else cv2.QRCodeDetector()

    def run(data: bytes, bodies: frozenset[str]) -> Result:
        gray = _decode_gray(data)
        ok, infos, _points, _straight = detector.detectAndDecodeMulti(gray)
        return ([("qr", t) for t in infos if t] if ok else []), []

    return run


def organic_runs(texts: Iterable[str]) -> list[str]:
    """17/18-digit runs in OCR'd lines, after removing the spaces/dashes printed between
    digit groups ("有机码 0123 24 1234 5678 90" → 012324…); a longer run is not a code."""
    found: list[str] = []
    for text in texts:
        compact = _SEPARATORS.sub("", text)
        for m in _CODE_RUN.findall(compact):
            if m not in found:
                found.append(m)
    return found


def _rapidocr() -> Callable[[bytes, frozenset[str]], Result]:
    import numpy as np
    from PIL import Image, ImageOps
    from rapidocr_onnxruntime import RapidOCR

    engine = RapidOCR()

    def run(data: bytes, bodies: frozenset[str]) -> Result:
        with Image.open(io.BytesIO(data)) as im:
            bgr = np.ascontiguousarray(np.asarray(ImageOps.exif_transpose(im).convert("RGB"))[:, :, ::-1])
        result, _ = engine(bgr)
        return [], organic_runs(r[1] for r in (result or []))

    return run


_LAST_EXTRA: dict[str, float] = {}
# --budget-ms reaches the spawned engine workers through their environment.
_BUDGET_ENV = "SCANNER_BENCH_BUDGET_MS"


def _project(ocr: str, body_codes: frozenset[str]) -> Callable[[bytes, frozenset[str]], Result]:
    from scanner import Scanner  # ImportError is reported as "not available"

    budget = os.environ.get(_BUDGET_ENV)
    kwargs: dict[str, Any] = {"time_budget_ms": float(budget)} if budget else {}
    try:
        scanner = Scanner(known_body_codes=body_codes, ocr=ocr, **kwargs)
    except TypeError:  # a Scanner without the ocr switch: its default behaviour
        scanner = Scanner(known_body_codes=body_codes)

    def run(data: bytes, bodies: frozenset[str]) -> Result:
        result = scanner.scan(data, known_body_codes=bodies)
        symbols = [(f.symbology, f.payload) for f in result.found if f.symbology != "digits"]
        digits = [f.payload for f in result.found if f.symbology == "digits"]
        # The OCR stage's own time, for the "OCR median on a 12 MP photo" criterion.
        _LAST_EXTRA.clear()
        _LAST_EXTRA.update(result.extra)
        return symbols, digits

    return run


def make_engine(name: str, body_codes: frozenset[str]) -> Callable[[bytes, frozenset[str]], Result]:
    if name == "zxing":
        return _zxing()
    if name == "pyzbar":
        return _pyzbar()
    if name in ("opencv", "opencv-aruco"):
        return _opencv(aruco=name == "opencv-aruco")
    if name == "rapidocr":
        return _rapidocr()
    if name == "project":
        return _project("auto", body_codes)
    if name == "project-noocr":
        return _project("never", body_codes)
    if name == "project-ocr":
        return _project("always", body_codes)
    raise ValueError(f"unknown engine {name!r}")


def engine_worker(
    name: str, files: list[str], warm_file: str, body_codes: dict[str, list[str]], out_path: str
) -> None:
    """Runs in a fresh (spawned) process: set up one engine, run it over `files`.
    `body_codes`: per photo set, the bodies its codes are issued by (unseen photos are
    named "u…")."""
    report: dict[str, Any] = {"engine": name}
    bodies = {k: frozenset(v) for k, v in body_codes.items()}
    try:
        run = make_engine(name, bodies["dev"])
    except ImportError as exc:
        report["unavailable"] = f"{type(exc).__name__}: {exc}"
        Path(out_path).write_text(json.dumps(report))
        return
    except AttributeError as exc:  # e.g. cv2 without QRCodeDetectorAruco
        report["unavailable"] = f"{type(exc).__name__}: {exc}"
        Path(out_path).write_text(json.dumps(report))
        return
    try:
        # Load models and first-call paths before timing starts.
        run(Path(warm_file).read_bytes(), bodies["dev"])
    except Exception as exc:  # the warm-up only loads things; a failure shows up per image
        log(f"[{name}] warm-up failed: {exc!r}")
    report["rss_after_setup_kb"] = _proc_status_kb("VmRSS")
    results: list[dict[str, Any]] = []
    start = last = time.perf_counter()
    for k, path in enumerate(files):
        data = Path(path).read_bytes()
        t0 = time.perf_counter()
        try:
            symbols, digits = run(data, bodies["unseen" if Path(path).name.startswith("u") else "dev"])
            error = None
        except Exception as exc:  # an engine crash on one photo is a miss, not the end of the run
            symbols, digits, error = [], [], f"{type(exc).__name__}: {exc}"[:200]
        ms = (time.perf_counter() - t0) * 1000
        results.append(
            {
                "file": Path(path).name,
                "ms": round(ms, 2),
                "symbols": symbols,
                "digits": digits,
                "error": error,
                "extra": dict(_LAST_EXTRA),
            }
        )
        _LAST_EXTRA.clear()
        now = time.perf_counter()
        if now - last > 10 or k + 1 == len(files):
            last = now
            eta = (now - start) / (k + 1) * (len(files) - k - 1)
            log(f"[{name}] {k + 1}/{len(files)}  {now - start:.0f}s elapsed, ~{eta:.0f}s left")
    report["results"] = results
    report["peak_rss_kb"] = _peak_rss_kb()
    Path(out_path).write_text(json.dumps(report))


def run_engine(name: str, files: list[str], workdir: Path) -> dict[str, Any]:
    from bench import labels, labels_unseen

    out = workdir / f"result-{name}.json"
    ctx = mp.get_context("spawn")
    bodies = {"dev": sorted(labels.ALL_BODY_CODES), "unseen": sorted(labels_unseen.ALL_BODY_CODES)}
    args = (name, files, str(workdir / "warm.jpg"), bodies, str(out))
    proc = ctx.Process(target=engine_worker, args=args, name=f"bench-{name}")
    proc.start()
    proc.join()
    if proc.exitcode != 0 or not out.exists():
        return {"engine": name, "unavailable": f"worker exited with code {proc.exitcode}"}
    report: dict[str, Any] = json.loads(out.read_text())
    return report


# ----------------------------------------------------------------------------- scoring


def _pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(q * (len(s) - 1))))]


def _rate(hit: int, total: int) -> float | None:
    return hit / total if total else None


def score(
    meta: list[dict[str, Any]],
    outputs: dict[str, dict[str, Any]],
    *,
    qr: bool,
    digits: bool,
    other: bool = True,
    rss_kb: int | None,
    rss_setup_kb: int | None,
) -> dict[str, Any]:
    """Per tier (and "all"): read rates, wrong codes, false positives on negatives, times."""
    by_tier: dict[str, dict[str, Any]] = {}
    for tier in (*TIERS, "all"):
        rows = [(m, outputs[m["file"]]) for m in meta if m["file"] in outputs and tier in (m["tier"], "all")]
        if not rows:
            continue
        qr_hit = qr_tot = sym_hit = sym_tot = 0
        d_hit = {"ge12": 0, "lt12": 0}
        d_tot = {"ge12": 0, "lt12": 0}
        wrong_qr = wrong_sym = wrong_digits = 0
        neg_tot = neg_fp = errors = 0
        times = [o["ms"] for _, o in rows]
        times_12mp = [o["ms"] for m, o in rows if m["megapixels"] >= 11.5]
        for m, o in rows:
            errors += o["error"] is not None
            truth_payloads = {p for _, p in m["truth_codes"]}
            got_qr = {p for s, p in o["symbols"] if s == "qr"}
            got_other = {(s, p) for s, p in o["symbols"] if s != "qr"}
            for s, p in m["truth_codes"]:
                if s == "qr":
                    qr_tot += 1
                    qr_hit += p in got_qr
                else:
                    sym_tot += 1
                    sym_hit += any(p == gp for _, gp in got_other)
            if m["kind"] == "negative":
                neg_tot += 1
                organic_symbol = any(_CODE_RUN.fullmatch(p) and p not in truth_payloads for _, p in got_other)
                if got_qr or organic_symbol or any(_CODE_RUN.fullmatch(d) for d in o["digits"]):
                    neg_fp += 1
            else:
                wrong_qr += len(got_qr - truth_payloads)
                wrong_digits += sum(1 for d in o["digits"] if d != m["truth_digits"])
            wrong_sym += sum(1 for _, p in got_other if p not in truth_payloads)
            if m["truth_digits"]:
                band = "ge12" if (m["digit_height_px"] or 0) >= 12 else "lt12"
                d_tot[band] += 1
                d_hit[band] += m["truth_digits"] in o["digits"]
        by_tier[tier] = {
            "images": len(rows),
            "qr_read": _rate(qr_hit, qr_tot) if qr else None,
            "qr_hits": qr_hit,
            "qr_total": qr_tot,
            "other_sym_read": _rate(sym_hit, sym_tot) if qr and other else None,
            "digits_read_ge12": _rate(d_hit["ge12"], d_tot["ge12"]) if digits else None,
            "digits_read_lt12": _rate(d_hit["lt12"], d_tot["lt12"]) if digits else None,
            "digits_total_ge12": d_tot["ge12"],
            "digits_total_lt12": d_tot["lt12"],
            "wrong_qr": wrong_qr if qr else None,
            "wrong_other_sym": wrong_sym if qr else None,
            "wrong_digits": wrong_digits if digits else None,
            "negatives": neg_tot,
            "fp_negatives": neg_fp,
            "errors": errors,
            "median_ms": _pct(times, 0.5),
            "p95_ms": _pct(times, 0.95),
            "median_ms_12mp": _pct(times_12mp, 0.5),
            "images_12mp": len(times_12mp),
            "peak_rss_mb": round(rss_kb / 1024, 1) if rss_kb else None,
            "rss_after_setup_mb": round(rss_setup_kb / 1024, 1) if rss_setup_kb else None,
        }
    return by_tier


def union_outputs(reports: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per file: every symbol any of the engines read; time = their sum (run one after another)."""
    merged: dict[str, dict[str, Any]] = {}
    for rep in reports:
        for r in rep["results"]:
            m = merged.setdefault(r["file"], {"ms": 0.0, "symbols": [], "digits": [], "error": None})
            m["ms"] += r["ms"]
            for sym in r["symbols"]:
                if list(sym) not in [list(s) for s in m["symbols"]]:
                    m["symbols"].append(sym)
    return merged


# ----------------------------------------------------------------------------- output


def _fmt(v: Any, kind: str = "") -> str:
    if v is None:
        return "-"
    if kind == "rate":
        return f"{100 * v:5.1f}%"
    if kind == "ms":
        return f"{v:7.0f}" if v >= 100 else f"{v:7.1f}"
    return str(v)


COLUMNS = (
    ("engine", 13, None),
    ("tier", 6, None),
    ("imgs", 4, "images"),
    ("QR read", 7, "qr_read"),
    ("1D/DM", 6, "other_sym_read"),
    ("dig>=12", 7, "digits_read_ge12"),
    ("dig<12", 6, "digits_read_lt12"),
    ("wrongQR", 7, "wrong_qr"),
    ("wrongDig", 8, "wrong_digits"),
    ("wrongSym", 8, "wrong_other_sym"),
    ("FP neg", 7, "fp_neg"),
    ("med ms", 7, "median_ms"),
    ("p95 ms", 7, "p95_ms"),
    ("med@12MP", 8, "median_ms_12mp"),
    ("peakMB", 6, "peak_rss_mb"),
)


def print_table(engines: dict[str, dict[str, Any]]) -> None:
    header = "  ".join(f"{name:>{w}}" if i > 1 else f"{name:<{w}}" for i, (name, w, _) in enumerate(COLUMNS))
    print(header)
    print("-" * len(header))
    for name, data in engines.items():
        if "unavailable" in data:
            print(f"{name:<13}  not available ({data['unavailable']})")
            continue
        for tier, row in data["tiers"].items():
            cells = []
            for i, (_, w, key) in enumerate(COLUMNS):
                if i == 0:
                    cells.append(f"{name:<{w}}")
                    continue
                if i == 1:
                    cells.append(f"{tier:<{w}}")
                    continue
                if key == "fp_neg":
                    val = f"{row['fp_negatives']}/{row['negatives']}" if row["negatives"] else "-"
                elif key in ("qr_read", "other_sym_read", "digits_read_ge12", "digits_read_lt12"):
                    val = _fmt(row[key], "rate")
                elif key in ("median_ms", "p95_ms", "median_ms_12mp"):
                    val = _fmt(row[key], "ms")
                else:
                    val = _fmt(row[key])
                cells.append(f"{val:>{w}}")
            print("  ".join(cells))
        print()


def ratios(engines: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Project vs the best single QR engine, vs the union, and its speed vs zxing-cpp."""
    out: dict[str, Any] = {}
    proj = engines.get("project")
    if not proj or "unavailable" in proj:
        return out
    singles = {n: e for n, e in engines.items() if n in SINGLE_QR_ENGINES and "unavailable" not in e}
    for tier in (*TIERS, "all"):
        p = proj["tiers"].get(tier, {}).get("qr_read")
        if p is None:
            continue
        best_name, best = max(
            ((n, e["tiers"][tier]["qr_read"] or 0.0) for n, e in singles.items() if tier in e["tiers"]),
            key=lambda x: x[1],
            default=("", 0.0),
        )
        union = engines.get("union", {}).get("tiers", {}).get(tier, {}).get("qr_read")
        out[tier] = {
            "project_qr_read": p,
            "best_single": best_name,
            "best_single_qr_read": best,
            "vs_best_single": (p / best) if best else None,
            "union_qr_read": union,
            "vs_union": (p / union) if union else None,
        }
    z = engines.get("zxing", {}).get("tiers", {}).get("all", {}).get("median_ms")
    pm = proj["tiers"].get("all", {}).get("median_ms")
    if z and pm:
        out["project_median_ms"] = pm
        out["zxing_median_ms"] = z
        out["time_vs_zxing"] = pm / z
    return out


def print_ratios(r: dict[str, Any]) -> None:
    if not r:
        print("ratios: project scanner not available")
        return
    print("Project vs single engines (QR read rate):")
    for tier in (*TIERS, "all"):
        if tier not in r:
            continue
        x = r[tier]
        vs_b = f"{x['vs_best_single']:.3f}" if x["vs_best_single"] is not None else "-"
        vs_u = f"{x['vs_union']:.3f}" if x["vs_union"] is not None else "-"
        union = _fmt(x["union_qr_read"], "rate")
        print(
            f"  {tier:<6} project {_fmt(x['project_qr_read'], 'rate')}  best single ({x['best_single']}) "
            f"{_fmt(x['best_single_qr_read'], 'rate')} -> x{vs_b}   union {union} -> x{vs_u}"
        )
    if "time_vs_zxing" in r:
        print(
            f"  median time: project {r['project_median_ms']:.1f} ms"
            f" vs zxing-cpp {r['zxing_median_ms']:.1f} ms -> x{r['time_vs_zxing']:.2f}"
        )


# ----------------------------------------------------------------------------- main


def _folded_angle(degrees: float) -> float:
    """How far a text line leans from horizontal, 0-90°: a label turned by 180° + a reads
    like one turned by a (the reader turns upside-down lines)."""
    return abs((degrees + 90) % 180 - 90)


def _sample_meta(s: Any, name: str, photo_set: str, angle: float) -> dict[str, Any]:
    return {
        "file": name,
        "set": photo_set,
        "index": s.index,
        "tier": s.tier,
        "kind": s.kind,
        "truth_codes": [list(c) for c in s.truth_codes],
        "truth_digits": s.truth_digits,
        "digit_height_px": s.digit_height_px,
        "megapixels": s.megapixels,
        "width": s.width,
        "height": s.height,
        "format": s.format,
        "exif_orientation": s.exif_orientation,
        "qr_module_px": s.qr_module_px,
        "layout": s.layout,
        "angle": round(angle, 2),
        "bytes": len(s.image),
    }


def write_samples(n: int, seed: int, tiers: tuple[str, ...], directory: Path) -> list[dict[str, Any]]:
    from bench.labels import generate

    meta: list[dict[str, Any]] = []
    start = last = time.perf_counter()
    for s in generate(n, seed, tiers=tiers):
        name = f"{s.index:05d}-{s.tier}-{s.kind.replace('+', '_')}.{'png' if s.format == 'png' else 'jpg'}"
        (directory / name).write_bytes(s.image)
        meta.append(_sample_meta(s, name, "dev", _folded_angle(s.distortions.get("rotation", 0.0))))
        now = time.perf_counter()
        if now - last > 5 or len(meta) == n:
            last = now
            log(f"[generate] {len(meta)}/{n}  {now - start:.0f}s")
    return meta


def write_unseen(n: int, seed: int, directory: Path) -> list[dict[str, Any]]:
    """The never-tuned set (bench/labels_unseen.py); file names start with "u"."""
    from bench.labels_unseen import generate

    meta: list[dict[str, Any]] = []
    start = last = time.perf_counter()
    for s in generate(n, seed):
        name = f"u{s.index:05d}-{s.tier}-{s.kind.replace('+', '_')}.jpg"
        (directory / name).write_bytes(s.image)
        row = _sample_meta(s, name, "unseen", _folded_angle(s.angle))
        row.update(face=s.face, troubles=list(s.troubles))
        meta.append(row)
        now = time.perf_counter()
        if now - last > 5 or len(meta) == n:
            last = now
            log(f"[generate unseen] {len(meta)}/{n}  {now - start:.0f}s")
    return meta


ANGLE_BANDS = ((0.0, 10.0, "0-10°"), (10.0, 20.0, "10-20°"), (20.0, 35.0, "20-35°"), (35.0, 90.1, ">35°"))


def angle_table(meta: list[dict[str, Any]], outputs: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Printed-code read rates per band of the label's in-plane angle (folded to 0-90°)."""
    rows = []
    for lo, hi, label in ANGLE_BANDS:
        ms = [m for m in meta if m["truth_digits"] and m["file"] in outputs and lo <= m["angle"] < hi]
        if not ms:
            continue
        hit = [m["truth_digits"] in outputs[m["file"]]["digits"] for m in ms]
        big = [h for m, h in zip(ms, hit, strict=True) if (m["digit_height_px"] or 0) >= 12]
        rows.append(
            {
                "band": label,
                "photos": len(ms),
                "read": sum(hit),
                "rate": _rate(sum(hit), len(ms)),
                "photos_ge12": len(big),
                "rate_ge12": _rate(sum(big), len(big)),
            }
        )
    return rows


def digits_summary(meta: list[dict[str, Any]], outputs: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """All photos with a printed code (any print size), wrong codes, false positives, times."""
    ms = [m for m in meta if m["file"] in outputs]
    pos = [m for m in ms if m["truth_digits"]]
    read = sum(m["truth_digits"] in outputs[m["file"]]["digits"] for m in pos)
    wrong = sum(
        d != m["truth_digits"] for m in ms if m["kind"] != "negative" for d in outputs[m["file"]]["digits"]
    )
    neg = [m for m in ms if m["kind"] == "negative"]
    fp = sum(bool(outputs[m["file"]]["digits"]) for m in neg)
    times = [outputs[m["file"]]["ms"] for m in ms]
    ocr_12 = [
        outputs[m["file"]]["extra"].get("ocr_ms")
        for m in ms
        if m["megapixels"] >= 11.5 and outputs[m["file"]].get("extra", {}).get("ocr_ms") is not None
    ]
    return {
        "digit_photos": len(pos),
        "digits_read": read,
        "digits_rate": _rate(read, len(pos)),
        "wrong_digits": wrong,
        "negatives": len(neg),
        "fp_negatives": fp,
        "median_ms": _pct(times, 0.5),
        "p95_ms": _pct(times, 0.95),
        "ocr_median_ms_12mp": _pct(ocr_12, 0.5),
        "photos_12mp": len(ocr_12),
    }


def print_digit_sets(per_set: dict[str, dict[str, Any]]) -> None:
    print("Printed digits (project-ocr) per photo set; angle = the label's in-plane lean, folded to 0-90°:")
    for name, d in per_set.items():
        sm = d["summary"]
        print(
            f"  {name:<7} all digit photos {sm['digits_read']}/{sm['digit_photos']} = "
            f"{_fmt(sm['digits_rate'], 'rate')}; wrong codes {sm['wrong_digits']}; "
            f"false positives {sm['fp_negatives']}/{sm['negatives']} negatives; "
            f"whole photo median {_fmt(sm['median_ms'], 'ms').strip()} ms, "
            f"p95 {_fmt(sm['p95_ms'], 'ms').strip()} ms; OCR stage median on 12 MP "
            f"{_fmt(sm['ocr_median_ms_12mp'], 'ms').strip()} ms ({sm['photos_12mp']} photos)"
        )
    print()
    print(f"  {'set':<7} {'angle':<7} {'photos':>6} {'read':>5} {'rate':>7} {'>=12px':>7} {'rate':>7}")
    for name, d in per_set.items():
        for r in d["angles"]:
            print(
                f"  {name:<7} {r['band']:<7} {r['photos']:>6} {r['read']:>5} {_fmt(r['rate'], 'rate'):>7}"
                f" {r['photos_ge12']:>7} {_fmt(r['rate_ge12'], 'rate'):>7}"
            )
    print()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=300, help="photos to generate (default 300)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--tiers", default=",".join(TIERS), help="comma-separated subset of easy,medium,hard")
    ap.add_argument("--engines", default="all", help=f"all, or comma-separated from {','.join(ALL_ENGINES)}")
    ap.add_argument(
        "--no-ocr", action="store_true", help="skip RapidOCR; the project scanner runs with ocr=never"
    )
    ap.add_argument(
        "--ocr-limit",
        type=int,
        default=None,
        help="OCR engines run on at most this many of the photos with printed digits or negatives "
        "(default: all of them)",
    )
    ap.add_argument(
        "--unseen-n",
        type=int,
        default=200,
        help="photos of the never-tuned set (bench/labels_unseen.py) read by the OCR engines and the "
        "project scanner beside the development set (default 200; 0 skips it)",
    )
    ap.add_argument("--unseen-seed", type=int, default=None, help="default: labels_unseen.SEED (fixed)")
    ap.add_argument(
        "--budget-ms",
        type=float,
        default=None,
        help="the project scanner's time budget (default: its own, 2500 ms). On a host shared "
        "with other work the budget, not the reader, decides what is read: a larger one measures "
        "what the reader can read",
    )
    ap.add_argument("--json", type=Path, help="write every number (and per-photo outputs) here")
    ap.add_argument("--keep", type=Path, help="keep the generated photos in this directory")
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.unseen_seed is None:
        from bench.labels_unseen import SEED

        args.unseen_seed = SEED
    if args.budget_ms is not None:
        os.environ[_BUDGET_ENV] = str(args.budget_ms)
    tiers = tuple(t.strip() for t in args.tiers.split(",") if t.strip())
    wanted = list(ALL_ENGINES) if args.engines == "all" else [e.strip() for e in args.engines.split(",")]
    for e in wanted:
        if e not in ALL_ENGINES:
            raise SystemExit(f"unknown engine {e!r}; choose from {', '.join(ALL_ENGINES)}")
    if args.no_ocr:
        wanted = [e for e in wanted if e not in OCR_ENGINES]
    workdir = Path(tempfile.mkdtemp(prefix="scanner-bench-"))
    photo_dir = args.keep or workdir
    photo_dir.mkdir(parents=True, exist_ok=True)
    try:
        from bench.labels import make_sample

        # A photo outside the measured set, to warm each engine up (models, first calls).
        (workdir / "warm.jpg").write_bytes(make_sample(0, args.seed + 99_991, "easy", "qr+digits").image)
        meta = write_samples(args.n, args.seed, tiers, photo_dir)
        files_all = [str(photo_dir / m["file"]) for m in meta]
        ocr_meta = [m for m in meta if m["truth_digits"] or m["kind"] == "negative"]
        if args.ocr_limit is not None:
            ocr_meta = ocr_meta[: args.ocr_limit]
        files_ocr = [str(photo_dir / m["file"]) for m in ocr_meta]
        # The never-tuned set is read by the engines that read printed digits.
        unseen_meta = write_unseen(args.unseen_n, args.unseen_seed, photo_dir) if args.unseen_n > 0 else []
        files_unseen = [str(photo_dir / m["file"]) for m in unseen_meta]
        reports: dict[str, dict[str, Any]] = {}
        for name in wanted:
            files = files_ocr if name in OCR_ENGINES else files_all
            if name in (*OCR_ENGINES, "project") and not (args.no_ocr and name == "project"):
                files = files + files_unseen
            engine_name = "project-noocr" if name == "project" and args.no_ocr else name
            log(f"[{name}] starting on {len(files)} photos")
            reports[name] = run_engine(engine_name, files, workdir)
            if "unavailable" in reports[name]:
                label = "project scanner" if name.startswith("project") else name
                print(f"{label}: not available ({reports[name]['unavailable']})", file=sys.stderr)
        engines: dict[str, dict[str, Any]] = {}
        for name, rep in reports.items():
            if "unavailable" in rep:
                engines[name] = {"unavailable": rep["unavailable"]}
                continue
            outputs = {r["file"]: r for r in rep["results"]}
            is_qr = name not in ("rapidocr",)
            is_digits = name in ("rapidocr", "project", "project-ocr") and not (
                args.no_ocr and name == "project"
            )
            engines[name] = {
                "tiers": score(
                    meta,
                    outputs,
                    qr=is_qr,
                    digits=is_digits,
                    # OpenCV's detectors read QR only: no 1D/DataMatrix rate to show.
                    other=not name.startswith("opencv"),
                    rss_kb=rep.get("peak_rss_kb"),
                    rss_setup_kb=rep.get("rss_after_setup_kb"),
                )
            }
        union_parts = [
            reports[n] for n in SINGLE_QR_ENGINES if n in reports and "unavailable" not in reports[n]
        ]
        if len(union_parts) > 1:
            peak = max(p.get("peak_rss_kb") or 0 for p in union_parts)
            engines["union"] = {
                "tiers": score(
                    meta, union_outputs(union_parts), qr=True, digits=False, rss_kb=peak, rss_setup_kb=None
                ),
                "members": [p["engine"] for p in union_parts],
            }
        # Time on the photos that carry a QR code: the "≤ 3 × zxing-cpp" criterion compares
        # decoding QR photos, not the OCR of digit-only labels.
        qr_files = {m["file"] for m in meta if any(sym == "qr" for sym, _ in m["truth_codes"])}
        big = {m["file"] for m in meta if m["megapixels"] >= 11.5}
        timing: dict[str, Any] = {}
        for name in ("zxing", "project"):
            rep = reports.get(name, {})
            if "results" in rep:
                timing[f"{name}_qr_photos_median_ms"] = _pct(
                    [r["ms"] for r in rep["results"] if r["file"] in qr_files], 0.5
                )
        if "results" in reports.get("project-ocr", {}):
            ocr_ms = [r["extra"].get("ocr_ms") for r in reports["project-ocr"]["results"] if r["file"] in big]
            timing["project_ocr_stage_median_ms_12mp"] = _pct([x for x in ocr_ms if x is not None], 0.5)
            timing["project_ocr_stage_photos_12mp"] = sum(1 for x in ocr_ms if x is not None)
        # Print in a fixed order: singles, union, OCR, project.
        order = [*SINGLE_QR_ENGINES, "union", "rapidocr", "project", "project-ocr"]
        engines = {k: engines[k] for k in order if k in engines}
        counts = {k: sum(1 for m in meta if m["kind"] == k) for k in sorted({m["kind"] for m in meta})}
        mp_counts = {t: sum(1 for m in meta if m["tier"] == t) for t in tiers}
        print(
            f"\nscanner bench: n={args.n} seed={args.seed} kinds={counts} tiers={mp_counts} "
            f"12MP photos={sum(1 for m in meta if m['megapixels'] >= 11.5)} "
            f"OCR subset={len(files_ocr)} scanner budget="
            f"{f'{args.budget_ms:.0f} ms' if args.budget_ms else 'its own'}\n"
        )
        print(
            "QR read = truth QR payload decoded exactly; 1D/DM = EAN-13/Code 128/DataMatrix;"
            " dig = printed code read exactly (digit height >= / < 12 px);\n"
            "wrong* = returned codes not in that photo's truth "
            "(positives); FP neg = negatives with any QR or 17/18-digit code; times include image decoding.\n"
            "project = scanner.Scanner, ocr=auto (production: no OCR when a symbol already carries a code,"
            " so its dig columns undercount);\n"
            "project-ocr = ocr=always on the OCR subset: the printed-digit reader.\n"
        )
        print_table(engines)
        unseen_engines: dict[str, dict[str, Any]] = {}
        if unseen_meta:
            for name, rep in reports.items():
                if "unavailable" in rep or name not in (*OCR_ENGINES, "project"):
                    continue
                outputs = {r["file"]: r for r in rep["results"]}
                unseen_engines[name] = {
                    "tiers": score(
                        unseen_meta,
                        outputs,
                        qr=name != "rapidocr",
                        digits=True,
                        other=False,
                        rss_kb=rep.get("peak_rss_kb"),
                        rss_setup_kb=rep.get("rss_after_setup_kb"),
                    )
                }
            kinds = {
                k: sum(1 for m in unseen_meta if m["kind"] == k)
                for k in sorted({m["kind"] for m in unseen_meta})
            }
            print(
                f"Never-tuned set (bench/labels_unseen.py, seed {args.unseen_seed}): "
                f"{len(unseen_meta)} photos, kinds {kinds}\n"
            )
            print_table(unseen_engines)
        per_set: dict[str, dict[str, Any]] = {}
        if "results" in reports.get("project-ocr", {}):
            outputs = {r["file"]: r for r in reports["project-ocr"]["results"]}
            for set_name, set_meta in (("dev", ocr_meta), ("unseen", unseen_meta)):
                if set_meta:
                    per_set[set_name] = {
                        "summary": digits_summary(set_meta, outputs),
                        "angles": angle_table(set_meta, outputs),
                    }
            print_digit_sets(per_set)
        if "project" in wanted and "unavailable" in engines.get("project", {"unavailable": "no results"}):
            print("project scanner: not available")
        r = ratios(engines)
        if "project" in engines:
            print_ratios(r)
        r.update(timing)
        zq, pq = timing.get("zxing_qr_photos_median_ms"), timing.get("project_qr_photos_median_ms")
        if zq and pq:
            print(
                f"  median time on QR photos: project {pq:.1f} ms vs zxing-cpp {zq:.1f} ms -> x{pq / zq:.2f}"
            )
        if timing.get("project_ocr_stage_median_ms_12mp") is not None:
            ocr_12 = timing["project_ocr_stage_median_ms_12mp"]
            print(
                f"  OCR stage median on 12 MP photos (project-ocr): {ocr_12:.0f} ms"
                f" over {timing['project_ocr_stage_photos_12mp']} photos"
            )
        if args.json:
            dump = {
                "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
                "samples": meta,
                "engines": engines,
                "unseen_samples": unseen_meta,
                "unseen_engines": unseen_engines,
                "digit_sets": per_set,
                "ratios": r,
                "outputs": {n: rep.get("results") for n, rep in reports.items()},
            }
            args.json.write_text(json.dumps(dump, indent=1, ensure_ascii=False))
            log(f"wrote {args.json}")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
