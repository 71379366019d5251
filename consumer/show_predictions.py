"""``python -m consumer.show_predictions``: the last rows of the README's join, predictions beside their rows.

    SELECT t.id, t.label, p.predicted, p.confidence FROM mnist_test t
    JOIN mnist_predictions p ON p.source_table = 'mnist_test' AND p.id = t.id

printed newest id first (``--rows``, default 10), with the model version and how long after its commit each
row's prediction was made, then one line: how many rows of the table have a prediction and how many of those
are right. ``--wait N`` first waits up to N seconds for every row of ``mnist_test`` to have its prediction (the
JDBC sink writes them a moment after ``consumer.predict`` published them). Exit codes: 0 done, 1 PostgreSQL
unusable (one line), 2 usage.
"""

from __future__ import annotations

import argparse
import sys
import time

import psycopg2

from stack.config import ConfigError, add_flags, postgres_from_args
from stack.contract import MNIST
from stack.errors import first_line

TEST, PREDICTIONS = MNIST.table("test"), MNIST.predictions_table
JOIN = (
    "SELECT t.id, t.label, p.predicted, p.confidence, p.model_version, "
    "EXTRACT(EPOCH FROM p.predicted_at - p.committed_at) * 1000 "
    f"FROM {TEST} t JOIN {PREDICTIONS} p ON p.source_table = '{TEST}' AND p.id = t.id "
    "ORDER BY t.id DESC LIMIT %s"
)
MISSING = (
    f"SELECT count(*) FROM {TEST} t WHERE NOT EXISTS "
    f"(SELECT 1 FROM {PREDICTIONS} p WHERE p.source_table = '{TEST}' AND p.id = t.id)"
)
TOTALS = (
    "SELECT count(*), count(*) FILTER (WHERE t.label = p.predicted) "
    f"FROM {TEST} t JOIN {PREDICTIONS} p ON p.source_table = '{TEST}' AND p.id = t.id"
)


def format_row(row: tuple) -> str:
    """One line of the table.

    >>> format_row((42, 7, 7, 0.9912, 3, 812.0))
    '    42      7          7      0.991     v0003         812'
    """
    row_id, label, predicted, confidence, version, after_ms = row
    version_text = f"v{version:04d}" if version is not None else "-"
    after = f"{after_ms:.0f}" if after_ms is not None else "-"
    return f"{row_id:>6} {label:>6} {predicted:>10} {confidence:>10.3f} {version_text:>9} {after:>11}"


HEADER = f"{'id':>6} {'label':>6} {'predicted':>10} {'confidence':>10} {'model':>9} {'after ms':>11}"


def read_predictions(conn, count: int, wait: float) -> tuple[list[tuple], int, int]:
    """The newest ``count`` rows of the join, the rows with a prediction and the right ones among them, after
    waiting up to ``wait`` seconds for every row of ``mnist_test`` to have its prediction."""
    deadline = time.monotonic() + wait
    while wait:
        with conn, conn.cursor() as cur:
            cur.execute(MISSING)
            if cur.fetchone()[0] == 0 or time.monotonic() >= deadline:
                break
        time.sleep(0.5)
    with conn, conn.cursor() as cur:
        cur.execute(JOIN, (count,))
        rows = cur.fetchall()
        cur.execute(TOTALS)
        total, right = cur.fetchone()
    return rows, total, right


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m consumer.show_predictions", description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10, help="how many of the newest rows to print (10)")
    parser.add_argument(
        "--wait",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="first wait up to this long for every row of mnist_test to have its prediction (default 0)",
    )
    add_flags(parser, "postgres")
    args = parser.parse_args(argv)
    if args.rows < 1 or not args.wait >= 0:
        print("error: --rows must be >= 1 and --wait >= 0", file=sys.stderr)
        return 2
    try:
        settings = postgres_from_args(args)
        conn = psycopg2.connect(**settings.connect_kwargs(), connect_timeout=5)
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except psycopg2.Error as error:
        print(f"error: cannot reach PostgreSQL: {first_line(error)}", file=sys.stderr)
        return 1
    try:
        rows, total, right = read_predictions(conn, args.rows, args.wait)
    except psycopg2.Error as error:
        print(f"error: {first_line(error)}", file=sys.stderr)
        return 1
    finally:
        conn.close()
    print(f"last {len(rows)} predictions in mnist_predictions (newest first):")
    print(HEADER)
    for row in rows:
        print(format_row(row))
    share = f" ({right / total:.1%})" if total else ""
    print(f"{total} rows of mnist_test have a prediction; {right} of them are right{share}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
