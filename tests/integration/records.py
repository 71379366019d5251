"""Rows with recognisable pixels, and reading what reached a topic (kafka-python, no consumer group)."""

from __future__ import annotations

import os
import time
from collections.abc import Callable

import psycopg2
from kafka import KafkaConsumer, TopicPartition


def marked_pixels(last: int = 0) -> bytes:
    """784 bytes whose first six are random: the record's CSV prefix then identifies this row alone."""
    return os.urandom(6) + bytes(777) + bytes([last])


def csv_of(pixels: bytes) -> str:
    return ",".join(str(b) for b in pixels)


def insert(pipeline, table: str, rows: list[tuple[object, object]]) -> list[int]:
    """Insert ``(label, pixels)`` rows as the owner in one transaction; return their ids."""
    with psycopg2.connect(**pipeline.pg_kwargs()) as conn, conn.cursor() as cur:
        ids = []
        for label, pixels in rows:
            cur.execute(
                f"INSERT INTO public.{table} (label, pixels) VALUES (%s, %s) RETURNING id",
                (label, psycopg2.Binary(pixels) if pixels is not None else None),
            )
            ids.append(cur.fetchone()[0])
    conn.close()
    return ids


def execute(pipeline, statement: str, params: tuple = ()) -> None:
    with psycopg2.connect(**pipeline.pg_kwargs()) as conn, conn.cursor() as cur:
        cur.execute(statement, params)
    conn.close()


def read_topic(bootstrap: str, topic: str, done: Callable[[list], bool], timeout: float = 60.0) -> list:
    """All records of ``topic`` from the beginning, read until ``done(records)`` or ``timeout`` seconds."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, consumer_timeout_ms=1000)
    records: list = []
    deadline = time.monotonic() + timeout
    try:
        partitions = None
        while partitions is None and time.monotonic() < deadline:
            found = consumer.partitions_for_topic(topic)
            if found:
                partitions = [TopicPartition(topic, p) for p in sorted(found)]
            else:
                time.sleep(0.5)
        if partitions is None:
            return records
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        while time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=500).values():
                records.extend(batch)
            if done(records):
                break
    finally:
        consumer.close()
    return records


def values_starting_with(records: list, prefixes: list[str]) -> dict[str, list]:
    """For each CSV prefix, the records whose value starts with it."""
    found: dict[str, list] = {p: [] for p in prefixes}
    for record in records:
        value = (record.value or b"").decode()
        for prefix in prefixes:
            if value.startswith(prefix):
                found[prefix].append(record)
    return found


def prefix_of(pixels: bytes) -> str:
    return csv_of(pixels[:6]) + ","
