"""MariaDB's share of generating codes, alone: N random 18-digit keys (as generation draws
them: one label group, sequential identity codes, one day) loaded with the generation's
`LOAD DATA LOCAL INFILE ... IGNORE` in sorted chunks into a fresh `organic_codes`, nothing
else of ours running. Variants run interleaved, a fresh table each; printed per variant:
rows/s and the CPU of the MariaDB thread serving the connection (PROCESSLIST.TID).

    python bench/load_data_alone.py [--rows 1000000] [--rounds 2] [--db bench_load_alone]
        [--variants full,pk_only,identity_only,group_only,group_identity]

full is the table as migrated (primary key, identity index, label group index); the others
keep only the primary key, or one secondary index, or (group, identity) beside identity.
"""

from __future__ import annotations

import argparse
import os
import secrets
import statistics
import tempfile
import time
from datetime import date

import pymysql

_COLUMNS = """code bigint(20) NOT NULL, group_id int(11) NOT NULL, issued_on date DEFAULT NULL,
  identity_code varchar(24) DEFAULT NULL, PRIMARY KEY (code)"""
INDEXES = {
    "full": ", KEY ix_identity (identity_code), KEY ix_group (group_id)",
    "pk_only": "",
    "identity_only": ", KEY ix_identity (identity_code)",
    "group_only": ", KEY ix_group (group_id)",
    "group_identity": ", KEY ix_identity (identity_code), KEY ix_group_identity (group_id, identity_code)",
}


def _thread_cpu(conn: pymysql.Connection) -> float:
    with conn.cursor() as cur:
        cur.execute("SELECT tid FROM information_schema.processlist WHERE id = CONNECTION_ID()")
        (tid,) = cur.fetchone()
    pid = next(p for p in os.listdir("/proc") if p.isdigit() and _comm(p) in ("mariadbd", "mysqld"))
    with open(f"/proc/{pid}/task/{tid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _comm(pid: str) -> str:
    try:
        with open(f"/proc/{pid}/comm") as fh:
            return fh.read().strip()
    except OSError:
        return ""


def _keys(n: int) -> list[int]:
    limit = (2**64 // 10**12) * 10**12
    out: set[int] = set()
    while len(out) < n:
        word = int.from_bytes(secrets.token_bytes(8), "little")
        if word < limit:
            out.add(12326 * 10**12 + word % 10**12)
    return list(out)


def _run(
    db: str, indexes: str, rows: list[tuple[int, int, str]], chunk: int, day: str
) -> tuple[float, float]:
    admin = pymysql.connect(host="127.0.0.1", user="root", autocommit=True)
    with admin.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS {db}")
        cur.execute(f"CREATE DATABASE {db}")
    admin.close()
    conn = pymysql.connect(host="127.0.0.1", user="root", database=db, local_infile=True)
    with conn.cursor() as cur:
        cur.execute(f"CREATE TABLE organic_codes ({_COLUMNS}{indexes}) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4")
    cpu0, t0 = _thread_cpu(conn), time.perf_counter()
    for start in range(0, len(rows), chunk):
        fd, path = tempfile.mkstemp(suffix=".tsv")
        with os.fdopen(fd, "w") as fh:
            fh.writelines(f"{k}\t{g}\t{day}\t{i}\n" for k, g, i in sorted(rows[start : start + chunk]))
        with conn.cursor() as cur:
            cur.execute(
                f"LOAD DATA LOCAL INFILE '{path}' IGNORE INTO TABLE organic_codes CHARACTER SET ascii "
                "FIELDS TERMINATED BY '\\t' LINES TERMINATED BY '\\n' "
                "(code, group_id, issued_on, identity_code)"
            )
        conn.commit()
        os.unlink(path)
    took, cpu = time.perf_counter() - t0, _thread_cpu(conn) - cpu0
    conn.close()
    return took, cpu


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--chunk", type=int, default=20_000)
    parser.add_argument("--db", default="bench_load_alone")
    parser.add_argument("--variants", default=",".join(INDEXES))
    args = parser.parse_args()
    if not args.db.isidentifier():
        parser.error("--db must be a plain database name")
    variants = args.variants.split(",")
    rows = [(k, 1, f"{100000001 + i:09d}") for i, k in enumerate(_keys(args.rows))]
    day = date.today().isoformat()
    got: dict[str, list[tuple[float, float]]] = {v: [] for v in variants}
    for r in range(args.rounds):
        for v in variants:
            took, cpu = _run(args.db, INDEXES[v], rows, args.chunk, day)
            got[v].append((took, cpu))
            print(
                f"round {r + 1} {v}: {args.rows / took:,.0f} rows/s, MariaDB thread {cpu:.1f} s", flush=True
            )
    for v, runs in got.items():
        took = statistics.median(t for t, _ in runs)
        cpu = statistics.median(c for _, c in runs)
        print(
            f"{v}: median {args.rows / took:,.0f} rows/s, "
            f"{cpu * 1_000_000 / args.rows:.1f} s of MariaDB CPU per 1 M rows"
        )
    admin = pymysql.connect(host="127.0.0.1", user="root", autocommit=True)
    with admin.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS {args.db}")


if __name__ == "__main__":
    main()
