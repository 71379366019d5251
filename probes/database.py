"""PostgreSQL as tests and benchmarks reach it: connections as the table owner, one-row queries, slot clean-up."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import psycopg2
import psycopg2.errors

from probes.deadline import poll
from stack.config import PostgresSettings
from stack.contract import MNIST

#: What every probe takes for "the database": the settings, or ``psycopg2.connect`` keyword arguments.
Postgres = PostgresSettings | Mapping[str, object]


def connect_kwargs(pg: Postgres, **overrides) -> dict[str, object]:
    """``psycopg2.connect`` keyword arguments for ``pg``; ``overrides`` (another user, a timeout) win.

    >>> connect_kwargs({"host": "h", "dbname": "d"}, connect_timeout=2)
    {'host': 'h', 'dbname': 'd', 'connect_timeout': 2}
    """
    if isinstance(pg, PostgresSettings):
        return pg.connect_kwargs(**overrides)
    return {**pg, **overrides}


def connect(pg: Postgres, **overrides):
    """An open connection (autocommit off); the caller closes it."""
    return psycopg2.connect(**connect_kwargs(pg, **overrides))


def query_all(pg: Postgres, sql: str, params: Sequence[object] = ()) -> list[tuple]:
    """Every row of ``sql``, in a transaction of its own."""
    conn = connect(pg)
    try:
        with conn, conn.cursor() as cur:
            cur.execute(sql, params)
            return cur.fetchall()
    finally:
        conn.close()


def query_one(pg: Postgres, sql: str, params: Sequence[object] = ()) -> tuple | None:
    """The first row of ``sql`` (None when there is none), in a transaction of its own."""
    rows = query_all(pg, sql, params)
    return rows[0] if rows else None


def drop_slot(pg: Postgres, slot: str, timeout: float = 30.0) -> bool:
    """Drop the replication slot ``slot`` once no walsender holds it, so the WAL it keeps is released.

    A connector's task lets go of its slot a moment after the connector is deleted, hence the wait. True when
    the slot is gone (or never existed); False when it was still in use after ``timeout`` seconds.
    """

    def dropped() -> bool:
        conn = connect(pg)
        conn.autocommit = True
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT active FROM pg_replication_slots WHERE slot_name = %s", (slot,))
                row = cur.fetchone()
                if row is None:
                    return True
                if row[0]:
                    return False
                cur.execute(
                    "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots "
                    "WHERE slot_name = %s AND NOT active",
                    (slot,),
                )
                return True
        except psycopg2.errors.ObjectInUse:  # taken again between the two statements
            return False
        finally:
            conn.close()

    return poll(dropped, timeout, 0.5)


def joined_predictions(pg, ids: list[int]) -> dict[int, tuple]:
    """The README's join for these ids of mnist_test: ``{id: (label, predicted, confidence, model_version)}``."""
    test = MNIST.table("test")
    found = query_all(
        pg,
        f"SELECT t.id, t.label, p.predicted, p.confidence, p.model_version FROM {test} t "
        f"JOIN {MNIST.predictions_table} p ON p.source_table = '{test}' AND p.id = t.id WHERE t.id = ANY(%s)",
        (ids,),
    )
    return {row[0]: row[1:] for row in found}
