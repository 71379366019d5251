"""Writing a described dataset's rows (``stack.datasets``): its feature columns and its label, by INSERT.

A split's ``images`` are the feature values ``(n, num_features)`` in the description's column order, its
``labels`` the class indices; the label column gets the class's text from the description (``Iris-setosa``),
which PostgreSQL casts to the column's type (a numeric label's class text is its number). MNIST keeps its
binary COPY (``loader.database``).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from psycopg2 import sql
from psycopg2.extras import execute_values

Writer = Callable[[object, str, np.ndarray, np.ndarray], None]


def row_writer(dataset, schema: str = "public") -> Writer:
    """``write(conn, split, features, labels)``: append rows to ``split``'s table inside the caller's
    transaction (nothing is committed here)."""
    columns = [feature.column for feature in dataset.features] + [dataset.label]

    def write(conn, split: str, features: np.ndarray, labels: np.ndarray) -> None:
        statement = sql.SQL("INSERT INTO {} ({}) VALUES %s").format(
            sql.Identifier(schema, dataset.contract.table(split)),
            sql.SQL(", ").join(sql.Identifier(column) for column in columns),
        )
        rows = [
            (*(float(value) for value in row), dataset.classes[int(label)])
            for row, label in zip(features, labels, strict=True)
        ]
        with conn.cursor() as cur:
            execute_values(cur, statement.as_string(conn), rows)

    return write


def ensure_tables(conn, dataset) -> None:
    """Create the dataset's tables when missing (the description's idempotent SQL)."""
    with conn.cursor() as cur:
        cur.execute(dataset.tables_sql())


def truncate_tables(conn, dataset, splits: list[str], schema: str = "public") -> None:
    """Empty the tables of ``splits`` (one table once, when train and test are the same table)."""
    tables = list(dict.fromkeys(dataset.contract.table(split) for split in splits))
    with conn.cursor() as cur:
        cur.execute(sql.SQL("TRUNCATE {}").format(sql.SQL(", ").join(sql.Identifier(schema, t) for t in tables)))
