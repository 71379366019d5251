"""Numbered rows inserted at a steady pace in the background (surviving a PostgreSQL restart), and the numbers
that reached a topic: shared by the fault tests, the latency benchmark and the soak."""

from __future__ import annotations

import io
import os
import threading
import time

import numpy as np
import psycopg2
from kafka import KafkaConsumer, TopicPartition

from loader.database import binary_copy_payload


class NumberedRows(threading.Thread):
    """Inserts rows 0..count-1 into ``table`` at ``rate`` rows/s, ``batch`` a transaction. Each row's first six
    pixels are a 3-byte marker of this run and its 3-byte number, so the topic tells which rows arrived.
    A batch that fails (the database is restarting) is retried until it commits."""

    def __init__(self, pg_kwargs: dict, table: str, count: int, rate: float, batch: int = 250) -> None:
        super().__init__(daemon=True)
        self.pg_kwargs, self.table, self.count, self.rate, self.batch = pg_kwargs, table, count, rate, batch
        self.marker = os.urandom(3)
        self.committed = 0
        self.commit_times: list[float] = []  # wall-clock time.time() after each batch's COMMIT returned
        self.retries = 0
        self.error: BaseException | None = None

    @property
    def prefix(self) -> str:
        return ",".join(str(b) for b in self.marker) + ","

    def rows(self, start: int, end: int) -> tuple[np.ndarray, np.ndarray]:
        images = np.zeros((end - start, 784), np.uint8)
        images[:, 0:3] = np.frombuffer(self.marker, np.uint8)
        numbers = np.arange(start, end)
        images[:, 3], images[:, 4], images[:, 5] = numbers >> 16, (numbers >> 8) & 255, numbers & 255
        return images, (numbers % 10).astype(np.uint8)

    def run(self) -> None:
        started = time.monotonic()
        conn = None
        try:
            for start in range(0, self.count, self.batch):
                end = min(start + self.batch, self.count)
                delay = started + start / self.rate - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                while True:
                    try:
                        conn = conn or psycopg2.connect(**self.pg_kwargs, connect_timeout=2)
                        with conn.cursor() as cur:
                            cur.copy_expert(
                                f"COPY public.{self.table} (label, pixels) FROM STDIN WITH (FORMAT binary)",
                                io.BytesIO(binary_copy_payload(*self.rows(start, end))),
                            )
                        conn.commit()
                        self.commit_times.append(time.time())
                        break
                    except psycopg2.Error:
                        self.retries += 1
                        conn = None
                        time.sleep(0.5)
                self.committed = end
        except BaseException as error:  # surfaced by the caller
            self.error = error
        finally:
            if conn is not None:
                conn.close()

    def number_of(self, value: bytes) -> int | None:
        """The row number a record value carries, or None when the record is not from this run."""
        if not value.startswith(self.prefix.encode()):
            return None
        high, mid, low = (int(v) for v in value.split(b",", 6)[3:6])
        return high << 16 | mid << 8 | low


def end_offset(bootstrap: str, topic: str) -> int:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap)
    try:
        tp = TopicPartition(topic, 0)
        return consumer.end_offsets([tp])[tp]
    finally:
        consumer.close()


def numbers_on_topic(bootstrap: str, topic: str, start: int, prefix: str, expected: int, timeout: float) -> list[int]:
    """Every number of the run with ``prefix`` read from ``topic`` after ``start``, until all ``expected``
    distinct numbers are there or ``timeout`` seconds pass."""
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, max_partition_fetch_bytes=8 * 1024 * 1024
    )
    tp = TopicPartition(topic, 0)
    consumer.assign([tp])
    consumer.seek(tp, start)
    numbers: list[int] = []
    deadline = time.monotonic() + timeout
    try:
        while len(set(numbers)) < expected and time.monotonic() < deadline:
            for records in consumer.poll(timeout_ms=500, max_records=5000).values():
                for record in records:
                    value = record.value or b""
                    if value.startswith(prefix.encode()):
                        high, mid, low = (int(v) for v in value.split(b",", 6)[3:6])
                        numbers.append(high << 16 | mid << 8 | low)
    finally:
        consumer.close()
    return numbers
