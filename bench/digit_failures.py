"""Why printed codes are not read: the digit reader over generated label photos, each
miss put down to the generator's own parameters (angle, layout, separator, face,
troubles, print size), never to a look at one photo.

    python bench/digit_failures.py --set unseen-dev --n 120 [--seed 7] [--jsonl out.jsonl]

Sets: "unseen-dev" is bench/labels_unseen.py's generator under another seed than its
fixed one (a development set drawn like the never-tuned one, so rules can be worked out
on it); "unseen" is the never-tuned set itself (its fixed seed: look at the categories,
never tune on its photos); "dev" is bench/labels.py's set. Photos are read one by one in
this process, with each set's own certification bodies, by the scanner's OCR stage
(`ocr="always"`).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def _folded(angle: float) -> float:
    return abs((angle + 90) % 180 - 90)


def _band(angle: float) -> str:
    a = _folded(angle)
    return "0-10" if a < 10 else "10-20" if a < 20 else "20-35" if a < 35 else ">35"


def _rows(photo_set: str, n: int, seed: int | None) -> Any:
    if photo_set in ("unseen", "unseen-dev"):
        from bench import labels_unseen as gen

        s_seed = gen.SEED if photo_set == "unseen" else (seed if seed is not None else 7)
        if photo_set == "unseen-dev" and s_seed == gen.SEED:
            raise SystemExit("unseen-dev needs a seed other than the never-tuned set's")
        for s in gen.generate(n, s_seed):
            yield (
                s,
                gen.ALL_BODY_CODES,
                {
                    "angle": s.angle,
                    "face": s.face,
                    "troubles": list(s.troubles),
                    "layout": s.layout,
                },
            )
    else:
        from bench import labels as gen_dev

        for s in gen_dev.generate(n, seed if seed is not None else 1):
            yield (
                s,
                gen_dev.ALL_BODY_CODES,
                {
                    "angle": s.distortions.get("rotation", 0.0),
                    "face": "",
                    "troubles": [],
                    "layout": "",
                },
            )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--set", choices=("unseen-dev", "unseen", "dev"), default="unseen-dev")
    ap.add_argument("--n", type=int, default=120)
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--start", type=int, default=0, help="skip photos before this index")
    ap.add_argument("--jsonl", type=Path)
    ap.add_argument(
        "--budget-ms", type=float, default=2500, help="the scanner's time budget (default: its own 2500)"
    )
    args = ap.parse_args(argv)
    from scanner import Scanner

    scanner = Scanner(ocr="always", time_budget_ms=args.budget_ms)
    out = args.jsonl.open("w") if args.jsonl else None
    records: list[dict[str, Any]] = []
    t_start = time.perf_counter()
    for sample, bodies, params in _rows(args.set, args.n, args.seed):
        if sample.index < args.start or not (sample.truth_digits or sample.kind == "negative"):
            continue
        t0 = time.perf_counter()
        res = scanner.scan(sample.image, known_body_codes=frozenset(bodies))
        ms = (time.perf_counter() - t0) * 1000
        digits = [f.payload for f in res.found if f.symbology == "digits"]
        truth = sample.truth_digits
        if truth is None:
            outcome = "fp" if digits else "ok"
        elif any(d != truth for d in digits):
            outcome = "WRONG"
        elif truth in digits:
            outcome = "read"
        elif res.uncertain:
            outcome = "uncertain:" + ",".join(sorted({u.reason for u in res.uncertain}))
        else:
            outcome = "nothing"
        rec = {
            "index": sample.index,
            "kind": sample.kind,
            "truth": truth,
            "digits": digits,
            "uncertain": [[u.text, u.reason] for u in res.uncertain],
            "outcome": outcome,
            "band": _band(params["angle"]),
            "angle": round(_folded(params["angle"]), 1),
            "digit_px": sample.digit_height_px,
            "mp": sample.megapixels,
            "ms": round(ms),
            "ocr_ms": res.extra.get("ocr_ms"),
            **params,
        }
        records.append(rec)
        if out:
            out.write(json.dumps(rec, ensure_ascii=False) + "\n")
            out.flush()
        print(
            f"{sample.index:4d} {outcome:<28} {rec['band']:>5} {rec['digit_px'] or 0:5.1f}px "
            f"{rec['face']:<22} {'/'.join(rec['troubles']):<20} {rec['layout'][:48]:<48} {rec['ms']:6d}ms",
            file=sys.stderr,
            flush=True,
        )
    summarize(records)
    print(f"{time.perf_counter() - t_start:.0f} s", file=sys.stderr)
    return 0


def summarize(records: list[dict[str, Any]]) -> None:
    pos = [r for r in records if r["truth"]]
    big = [r for r in pos if (r["digit_px"] or 0) >= 12]
    read = sum(r["outcome"] == "read" for r in pos)
    print(
        f"read {read}/{len(pos)}; >=12px {sum(r['outcome'] == 'read' for r in big)}/{len(big)}; "
        f"wrong {sum(r['outcome'] == 'WRONG' for r in pos)}; "
        f"fp {sum(r['outcome'] == 'fp' for r in records)}/{sum(1 for r in records if not r['truth'])}"
    )
    print("outcomes:", dict(Counter(r["outcome"] for r in pos)))

    def table(name: str, key: Any) -> None:
        groups: dict[str, list[bool]] = defaultdict(list)
        for r in big:
            for k in key(r):
                groups[k].append(r["outcome"] == "read")
        print(f"  by {name} (>=12 px):")
        for k in sorted(groups):
            v = groups[k]
            print(f"    {k:<34} {sum(v):3d}/{len(v):<3d} {100 * sum(v) / len(v):5.1f}%")

    table("angle", lambda r: [r["band"]])
    table("face", lambda r: [r["face"]])
    table("trouble", lambda r: r["troubles"] or ["none"])
    table("layout", lambda r: [p for p in r["layout"].split("/")[1:3] if p] or ["?"])
    table("megapixels", lambda r: [f"{r['mp']:.1f}MP"])


if __name__ == "__main__":
    raise SystemExit(main())
