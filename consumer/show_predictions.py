"""``python -m consumer.show_predictions``: the last rows of the README's join, predictions beside their rows.

``--dataset`` (default ``mnist``) names the tables; a label that is the class's text (iris) is shown beside the
predicted class's text, and a prediction is right when the two are the same class.

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
from dataclasses import dataclass

import psycopg2

from consumer.cli import CommandError, add_dataset_flag, dataset_of, refuse
from stack.config import ConfigError, add_flags, postgres_from_args
from stack.contract import MNIST
from stack.errors import first_line


@dataclass(frozen=True)
class Queries:
    """The three statements for one dataset: its test table and predictions table, its label column; a label
    that is the class's text (iris) is compared with the predicted class's text (``%(classes)s``, the classes in
    index order), a numeric one (MNIST) with the index itself."""

    join: str
    missing: str
    totals: str

    @classmethod
    def of(cls, test: str, predictions: str, label: str = "label", text_label: bool = False) -> Queries:
        on = f"p.source_table = '{test}' AND p.id = t.id"
        right = (
            f"t.{label}::text = (%(classes)s::text[])[p.predicted + 1]" if text_label else f"t.{label} = p.predicted"
        )
        return cls(
            f"SELECT t.id, t.{label}, p.predicted, p.confidence, p.model_version, "
            "EXTRACT(EPOCH FROM p.predicted_at - p.committed_at) * 1000 "
            f"FROM {test} t JOIN {predictions} p ON {on} "
            "ORDER BY t.id DESC LIMIT %(count)s",
            f"SELECT count(*) FROM {test} t WHERE NOT EXISTS (SELECT 1 FROM {predictions} p WHERE {on})",
            f"SELECT count(*), count(*) FILTER (WHERE {right}) FROM {test} t JOIN {predictions} p ON {on}",
        )


#: A label column of these SQL types holds the class index itself (MNIST's digits).
NUMERIC_SQL = ("smallint", "integer", "bigint", "int", "int2", "int4", "int8")
TEST, PREDICTIONS = MNIST.table("test"), MNIST.predictions_table
MNIST_QUERIES = Queries.of(TEST, PREDICTIONS)


def queries_of(dataset) -> Queries:
    """The statements for ``dataset`` (MNIST's: ``MNIST_QUERIES``)."""
    contract = dataset.contract
    numeric = dataset.label_sql.lower() in NUMERIC_SQL
    return Queries.of(contract.test_table, contract.predictions_table, dataset.label, text_label=not numeric)


def format_row(row: tuple, classes: tuple[str, ...] | None = None) -> str:
    """One line of the table; with ``classes`` (a label that is the class's text) the predicted class's text.

    >>> format_row((42, 7, 7, 0.9912, 3, 812.0))
    '    42      7          7      0.991     v0003         812'
    >>> format_row((3, "Iris-setosa", 0, 0.5, None, None), ("Iris-setosa", "Iris-versicolor"))
    '     3 Iris-setosa Iris-setosa      0.500         -           -'
    """
    row_id, label, predicted, confidence, version, after_ms = row
    if classes is not None and 0 <= predicted < len(classes):
        predicted = classes[predicted]
    version_text = f"v{version:04d}" if version is not None else "-"
    after = f"{after_ms:.0f}" if after_ms is not None else "-"
    return f"{row_id:>6} {label:>6} {predicted:>10} {confidence:>10.3f} {version_text:>9} {after:>11}"


HEADER = f"{'id':>6} {'label':>6} {'predicted':>10} {'confidence':>10} {'model':>9} {'after ms':>11}"


def read_predictions(
    conn, count: int, wait: float, queries: Queries = MNIST_QUERIES, classes: tuple[str, ...] = ()
) -> tuple[list[tuple], int, int]:
    """The newest ``count`` rows of the join, the rows with a prediction and the right ones among them, after
    waiting up to ``wait`` seconds for every row of the test table to have its prediction."""
    deadline = time.monotonic() + wait
    parameters = {"count": count, "classes": list(classes)}
    while wait:
        with conn, conn.cursor() as cur:
            cur.execute(queries.missing)
            if cur.fetchone()[0] == 0 or time.monotonic() >= deadline:
                break
        time.sleep(0.5)
    with conn, conn.cursor() as cur:
        cur.execute(queries.join, parameters)
        rows = cur.fetchall()
        cur.execute(queries.totals, parameters)
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
        help="first wait up to this long for every row of the test table (mnist_test) to have its prediction "
        "(default 0)",
    )
    add_dataset_flag(parser)
    add_flags(parser, "postgres")
    args = parser.parse_args(argv)
    if args.rows < 1 or not args.wait >= 0:
        print("error: --rows must be >= 1 and --wait >= 0", file=sys.stderr)
        return 2
    try:
        dataset = dataset_of(args)
    except CommandError as error:
        return refuse(error)
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
        queries = queries_of(dataset)
        rows, total, right = read_predictions(conn, args.rows, args.wait, queries, dataset.classes)
    except psycopg2.Error as error:
        print(f"error: {first_line(error)}", file=sys.stderr)
        return 1
    finally:
        conn.close()
    contract = dataset.contract
    text_classes = None if dataset.label_sql.lower() in NUMERIC_SQL else dataset.classes
    print(f"last {len(rows)} predictions in {contract.predictions_table} (newest first):")
    print(HEADER)
    for row in rows:
        print(format_row(row, text_classes))
    share = f" ({right / total:.1%})" if total else ""
    print(f"{total} rows of {contract.test_table} have a prediction; {right} of them are right{share}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
