"""Benchmarks run on their own tables and topics, never on the demo's ``mnist_train``/``mnist_test``.

A bench table ``public.mnist_bench_<name>`` has the demo tables' DDL and ``one_lsn_per_row`` trigger
(``postgres/01-tables.sql``). Its name matches the connector's ``table.include.list`` (``public.mnist_.*``), so
the running connector captures it into ``tf.public.mnist_bench_<name>`` (``MNIST.of_table``), a topic no
consumer reads by default; the owner adds it to ``mnist_publication`` (which lists its tables one by one) and
lets the connector's role read it. ``bench_table`` creates all that and removes table and topic afterwards.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import psycopg2
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from consumer.kafka.client import SourceError
from loader.database import DatabaseError
from loader.database import connect as pg_connect
from probes.deadline import poll
from probes.topics import end_offsets
from stack.config import CONNECTOR_ROLE, ConfigError, StackConfig
from stack.contract import MNIST
from stack.errors import first_line
from stack.kafka import ensure_topics
from stack.processes import StepError

PREFIX = "mnist_bench_"


def as_owner(cfg: StackConfig, *statements: str) -> None:
    """Run ``statements`` as the table owner in one transaction."""
    conn = pg_connect(cfg.postgres)
    try:
        with conn.cursor() as cur:
            for statement in statements:
                cur.execute(statement)
        conn.commit()
    finally:
        conn.close()


def create(cfg: StackConfig, table: str) -> None:
    """An empty ``public.<table>`` like the demo tables, in the connector's publication, readable by its role, and
    its topic empty (a killed run's records would be read first)."""
    topic = MNIST.of_table(table)
    as_owner(cfg, f"DROP TABLE IF EXISTS public.{table}")
    delete_topics(cfg, (topic, MNIST.invalid(topic)))
    as_owner(
        cfg,
        f"CREATE TABLE public.{table} (id SERIAL PRIMARY KEY, label SMALLINT, pixels BYTEA)",
        f"CREATE TRIGGER one_lsn_per_row BEFORE INSERT ON public.{table} "
        "FOR EACH ROW EXECUTE FUNCTION public.one_lsn_per_row()",
        f"GRANT SELECT ON public.{table} TO {CONNECTOR_ROLE}",
        f"ALTER PUBLICATION {MNIST.publication} ADD TABLE public.{table}",
    )
    ensure_topics(cfg, (topic,))
    if not poll(lambda: _led(cfg, topic), 30, 0.2):
        raise RuntimeError(f"{topic}: its partitions have no leader 30 s after it was made")


def _led(cfg: StackConfig, topic: str) -> bool:
    """Whether every partition of ``topic`` answers for its offsets: for a moment after a topic is made again under
    its old name, the broker answers NOT_LEADER_FOR_PARTITION."""
    try:
        return bool(end_offsets(cfg.kafka.bootstrap_servers, topic))
    except KafkaException:
        return False


def remove(cfg: StackConfig, table: str) -> None:
    """Drop the table (which leaves the publication with it) and delete its topic and invalid topic."""
    as_owner(cfg, f"DROP TABLE IF EXISTS public.{table}")
    topic = MNIST.of_table(table)
    delete_topics(cfg, (topic, MNIST.invalid(topic)))


def delete_topics(cfg: StackConfig, topics: tuple[str, ...]) -> None:
    """Delete those of ``topics`` that exist (a benchmark's own topics only); return once they are gone."""
    admin = AdminClient({"bootstrap.servers": cfg.kafka.bootstrap_servers, "log_level": 0})
    existing = set(admin.list_topics(timeout=10).topics)
    doomed = [t for t in topics if t in existing]
    if not doomed:
        return
    for future in admin.delete_topics(doomed, request_timeout=10, operation_timeout=10).values():
        future.result()
    # Deletion finishes in the background: a topic of the same name made meanwhile would be deleted with it.
    gone = lambda: not set(doomed) & set(admin.list_topics(timeout=10).topics)  # noqa: E731
    if not poll(gone, 30, 0.5):
        raise RuntimeError(f"topics {doomed} still listed 30 s after their deletion")


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
        except (psycopg2.Error, KafkaException, DatabaseError, OSError) as error:
            print(f"warning: could not remove {table} and its topic: {error}", file=sys.stderr)


# Failures a benchmark meets on a stopped or broken stack: reported in one line, exit 1.
EXPECTED = (
    psycopg2.Error,
    KafkaException,
    SourceError,
    OSError,
    DatabaseError,
    StepError,
    ConfigError,
    RuntimeError,
    TimeoutError,
)


def run(main: Callable[[list[str] | None], int], argv: list[str] | None = None) -> int:
    """``main(argv)``, with an expected failure (service down, benchmark check failed) as one line and exit 1."""
    try:
        return main(argv)
    except EXPECTED as error:
        print(f"error: {first_line(error)}", file=sys.stderr)
        return 1
