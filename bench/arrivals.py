"""When each numbered row of a run (``probes.rows.NumberedRows``) reached each of some topics: a reader thread
of the latency benchmarks, timestamping records as they are fetched."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterable

import numpy as np
from confluent_kafka import OFFSET_BEGINNING, Consumer, Message, TopicPartition

from bench.record import percentiles
from consumer.kafka.client import KafkaClient
from probes.database import Postgres
from probes.deadline import poll
from probes.rows import NumberedRows
from probes.topics import end_offsets


def write_run(pg: Postgres, table: str, rate: int, seconds: float, watcher) -> NumberedRows:
    """``rate * seconds`` numbered rows into ``table`` at ``rate`` rows/s, 100 commits a second, after
    ``watcher.reset(rows)``; returns once every row is committed (raises what stopped the writer)."""
    return write_rows(NumberedRows(pg, table, int(rate * seconds), rate, max(1, rate // 100)), watcher)


def write_rows(rows: NumberedRows, watcher) -> NumberedRows:
    """Write ``rows`` after ``watcher.reset(rows)``; returns once every row is committed (raises what stopped the
    writer)."""
    watcher.reset(rows)
    rows.start()
    rows.join()
    if rows.error:
        raise rows.error
    return rows


def committed_at(rows: NumberedRows, number: int) -> float:
    """When the transaction holding row ``number`` committed."""
    return rows.commit_times[number // rows.batch]


class TopicClock(threading.Thread):
    """Reads ``topics`` from their current end in a thread of its own and hands each record to ``on_record`` with
    the wall-clock ``time.time()`` it was fetched; ``finish()`` ends it.

    ``poll`` hands over each record as soon as it is fetched (``consume`` would wait for a whole batch or its
    timeout, which is what the figures must not include)."""

    def __init__(self, servers: str, topics: Iterable[str], group_prefix: str, **config: object) -> None:
        super().__init__(daemon=True)
        self.consumer = Consumer(KafkaClient.of(servers).config(f"{group_prefix}-{uuid.uuid4().hex[:8]}", **config))
        self.consumer.assign([TopicPartition(t, p, o) for t in topics for p, o in end_offsets(servers, t).items()])
        self.stopping = threading.Event()

    def on_record(self, message: Message, now: float) -> None:
        """What a subclass records of ``message``, fetched at ``now``."""
        raise NotImplementedError

    def run(self) -> None:
        try:
            while not self.stopping.is_set():
                message = self.consumer.poll(0.05)
                if message is not None and message.error() is None:
                    self.on_record(message, time.time())
        finally:
            self.consumer.close()

    def finish(self) -> None:
        """Stop reading and wait until the thread has closed its consumer."""
        self.stopping.set()
        self.join()


class Arrivals(TopicClock):
    """Reads ``topics`` (``{topic: name}``) from their current end; ``arrived[name][row number]`` is the wall-clock
    ``time.time()`` when the row's record was handed over, for the rows of the run given to ``reset``."""

    def __init__(self, servers: str, topics: dict[str, str]) -> None:
        super().__init__(servers, topics, "arrivals-bench", **{"fetch.wait.max.ms": 50})
        self.names = topics
        self.rows: NumberedRows | None = None
        self.arrived: dict[str, dict[int, float]] = {name: {} for name in topics.values()}

    def reset(self, rows: NumberedRows) -> None:
        """Time the rows of this run from now on (and forget the last run's)."""
        self.arrived = {name: {} for name in self.names.values()}
        self.rows = rows

    def latencies(self, rows: NumberedRows, timeout: float = 60) -> dict[str, dict[str, float]]:
        """Commit -> arrival percentiles (ms) per name, once every row of ``rows`` arrived on every topic."""
        if not poll(lambda: all(len(a) == rows.count for a in self.arrived.values()), timeout):
            got = {name: len(a) for name, a in self.arrived.items()}
            raise RuntimeError(f"not every row arrived within {timeout:g} s: {got} of {rows.count}")
        return {
            name: percentiles(np.array([(at - committed_at(rows, n)) * 1000 for n, at in arrived.items()]))
            for name, arrived in self.arrived.items()
        }

    def on_record(self, message: Message, now: float) -> None:
        rows = self.rows
        number = rows.number_of(message.value()) if rows else None
        if number is not None:
            self.arrived[self.names[message.topic()]].setdefault(number, now)


def predictions_arrive(
    servers: str, topic: str, records: int, children: list, timeout: float
) -> tuple[float | None, float | None, list]:
    """Read ``topic`` (read_committed, from its start) until ``records`` predictions are there, one of the
    scorer's ``children`` (``bench.fresh_process.Child``) ended, or ``timeout`` seconds passed: ``(when the first
    arrived, when the last did or None, the keys read)``, ``time.perf_counter()`` times. ``poll`` hands each record
    over as soon as it is fetched (``consume`` would wait for a whole batch or its timeout)."""
    consumer = Consumer(KafkaClient.of(servers).config(f"{topic}.arrivals", **{"fetch.wait.max.ms": 50}))
    partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
    first_at = None
    keys: list = []
    deadline = time.perf_counter() + timeout
    try:
        while len(keys) < records and time.perf_counter() < deadline:
            message = consumer.poll(0.1)
            if message is None:
                if any(child.ended() for child in children):
                    return first_at, None, keys
                continue
            if message.error() is not None:
                continue
            first_at = first_at or time.perf_counter()
            keys.append(message.key())
        return first_at, (time.perf_counter() if len(keys) >= records else None), keys
    finally:
        consumer.close()
