"""Writing images into PostgreSQL with ``COPY ... (FORMAT binary)``: one transaction a call."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import psycopg2
from psycopg2 import sql

from stack.config import PostgresSettings
from stack.contract import MNIST

SCHEMA_SQL = Path(__file__).resolve().parent.parent / "postgres" / "01-tables.sql"
TABLES = MNIST.splits

# PostgreSQL's binary COPY: a signature, flags and header-extension length, then a tuple a row, then -1.
COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + b"\x00\x00\x00\x00" + b"\x00\x00\x00\x00"
COPY_TRAILER = b"\xff\xff"


class DatabaseError(Exception):
    """PostgreSQL cannot be reached or refused the load; the message is one line."""


def binary_copy_payload(images: np.ndarray, labels: np.ndarray) -> bytes:
    """The ``COPY (label, pixels) FROM STDIN (FORMAT binary)`` stream for these rows, built without a loop.

    Each tuple: field count (int16 = 2), then label (int32 length 2 + int16), then pixels (int32 length + bytes).

    >>> payload = binary_copy_payload(np.zeros((1, 784), np.uint8), np.array([7], np.uint8))
    >>> len(payload) == len(COPY_HEADER) + 2 + 4 + 2 + 4 + 784 + len(COPY_TRAILER)
    True
    """
    count, width = images.shape
    row = np.dtype(
        [("fields", ">i2"), ("label_len", ">i4"), ("label", ">i2"), ("pixels_len", ">i4"), ("pixels", "u1", width)]
    )
    rows = np.empty(count, dtype=row)
    rows["fields"] = 2
    rows["label_len"] = 2
    rows["label"] = labels
    rows["pixels_len"] = width
    rows["pixels"] = images
    return COPY_HEADER + rows.tobytes() + COPY_TRAILER


def connect(pg: PostgresSettings):
    """A psycopg2 connection, or one line naming host and port when PostgreSQL cannot be reached."""
    try:
        return psycopg2.connect(**pg.connect_kwargs(), connect_timeout=5)
    except psycopg2.OperationalError as error:
        reason = str(error).strip().splitlines()[-1] if str(error).strip() else "connection refused"
        raise DatabaseError(f"cannot connect to PostgreSQL at {pg.address} as {pg.user}: {reason}") from None


def ensure_schema(conn) -> None:
    """Create the MNIST tables when missing (the same SQL the stack applies)."""
    with conn.cursor() as cur:
        cur.execute(SCHEMA_SQL.read_text())


def truncate(conn, splits: list[str]) -> None:
    with conn.cursor() as cur:
        cur.execute(
            sql.SQL("TRUNCATE {}").format(sql.SQL(", ").join(sql.Identifier("public", TABLES[s]) for s in splits))
        )


def copy_rows(conn, split: str, images: np.ndarray, labels: np.ndarray, schema: str = "public") -> None:
    """Append rows to the split's table inside the caller's transaction (nothing is committed here).

    ``split`` is ``train`` or ``test``, or the name of another table of the same DDL (the benchmarks' own).
    """
    statement = sql.SQL("COPY {} (label, pixels) FROM STDIN WITH (FORMAT binary)").format(
        sql.Identifier(schema, TABLES.get(split, split))
    )
    with conn.cursor() as cur:
        cur.copy_expert(statement.as_string(conn), io.BytesIO(binary_copy_payload(images, labels)))
