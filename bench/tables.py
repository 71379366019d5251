"""Benchmarks run on their own tables and topics, never on the demo's ``mnist_train``/``mnist_test``.

A bench table ``public.mnist_bench_<name>`` has the demo tables' DDL and ``one_lsn_per_row`` trigger
(``postgres/01-tables.sql``). Its name matches the connector's ``table.include.list`` (``public.mnist_.*``), so
the running connector captures it into ``tf.public.mnist_bench_<name>``, a topic no consumer reads by default;
the owner adds it to ``mnist_publication`` (which lists its tables one by one) and lets the connector's role
read it. ``bench_table`` creates all that and removes table and topic afterwards.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import psycopg2
from kafka.errors import KafkaError

from loader.database import DatabaseError
from stack.config import ConfigError, StackConfig
from stack.processes import StepError

PREFIX = "mnist_bench_"


def topic_of(table: str) -> str:
    return f"tf.public.{table}"


def create(cfg: StackConfig, table: str) -> None:
    """An empty ``public.<table>`` like the demo tables, in the connector's publication, readable by its role."""
    conn = psycopg2.connect(**cfg.pg_kwargs(), connect_timeout=5)
    try:
        with conn.cursor() as cur:
            cur.execute(f"DROP TABLE IF EXISTS public.{table}")
            cur.execute(f"CREATE TABLE public.{table} (id SERIAL PRIMARY KEY, label SMALLINT, pixels BYTEA)")
            cur.execute(
                f"CREATE TRIGGER one_lsn_per_row BEFORE INSERT ON public.{table} "
                "FOR EACH ROW EXECUTE FUNCTION public.one_lsn_per_row()"
            )
            cur.execute(f"GRANT SELECT ON public.{table} TO debezium")
            cur.execute(f"ALTER PUBLICATION mnist_publication ADD TABLE public.{table}")
        conn.commit()
    finally:
        conn.close()
    from stack.kafka import ensure_topics

    ensure_topics(cfg, (topic_of(table),))


def remove(cfg: StackConfig, table: str, topics: tuple[str, ...] = ()) -> None:
    """Drop the table (which leaves the publication with it) and delete its topic and ``topics``."""
    conn = psycopg2.connect(**cfg.pg_kwargs(), connect_timeout=5)
    try:
        with conn.cursor() as cur:
            cur.execute(f"DROP TABLE IF EXISTS public.{table}")
        conn.commit()
    finally:
        conn.close()
    delete_topics(cfg, (topic_of(table), f"{topic_of(table)}.invalid", *topics))


def delete_topics(cfg: StackConfig, topics: tuple[str, ...]) -> None:
    """Delete those of ``topics`` that exist (a benchmark's own topics only)."""
    from kafka import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=cfg.kafka_bootstrap, request_timeout_ms=10000)
    try:
        existing = set(admin.list_topics())
        doomed = [t for t in topics if t in existing]
        if doomed:
            admin.delete_topics(doomed)
    finally:
        admin.close()


@contextmanager
def bench_table(cfg: StackConfig, name: str) -> Iterator[str]:
    """``public.mnist_bench_<name>`` for the duration of a benchmark; yields the table name."""
    table = PREFIX + name
    create(cfg, table)
    try:
        yield table
    finally:
        try:
            remove(cfg, table)
        except (psycopg2.Error, KafkaError, OSError) as error:
            print(f"warning: could not remove {table} and its topic: {error}", file=sys.stderr)


# Failures a benchmark meets on a stopped or broken stack: reported in one line, exit 1.
EXPECTED = (psycopg2.Error, KafkaError, OSError, DatabaseError, StepError, ConfigError, RuntimeError, TimeoutError)


def run(main: Callable[[list[str] | None], int], argv: list[str] | None = None) -> int:
    """``main(argv)``, with an expected failure (service down, benchmark check failed) as one line and exit 1.

    ``consumer.kafka_source.SourceError`` is recognised by name: importing it would import TensorFlow.
    """
    try:
        return main(argv)
    except Exception as error:  # noqa: BLE001 - narrowed just below
        if not isinstance(error, EXPECTED) and type(error).__name__ != "SourceError":
            raise
        text = str(error).strip().splitlines()
        print(f"error: {text[0] if text else type(error).__name__}", file=sys.stderr)
        return 1
