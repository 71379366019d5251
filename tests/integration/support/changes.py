"""A table's changes as the connector writes them, produced by a test under a table name of its own, and the
predictions they end in: shared by the predictor's and Spark's tests of inserts, updates and deletes.

Key: the label; value: 784 CSV pixels; headers ``mnist.table``, ``mnist.id``, ``__source_ts_ms`` and ``__op``;
every change of a row on the partition its id picks.
"""

from __future__ import annotations

import numpy as np
from confluent_kafka import Producer

from consumer.records.codec import encode_pixels
from consumer.records.predictions import key_of
from probes.database import query_all
from probes.topics import end_offsets, read_to
from stack.contract import MNIST

PARTITIONS = 4
ROWS = 30
UPDATED = range(1, 21)  # ids 1..20 get another label
DELETED = range(16, 21)  # five of the updated rows are deleted afterwards
INSERTED_AT, UPDATED_AT, DELETED_AT = 1_700_000_000_000, 1_700_000_100_000, 1_700_000_200_000


def change(table: str, row_id: int, label: int, pixels: np.ndarray, op: str, at: int) -> dict:
    """One record as the connector writes a change of row ``row_id``."""
    return {
        "key": str(label).encode(),
        "value": encode_pixels(pixels),
        "headers": [
            (MNIST.table_header, table.encode()),
            (MNIST.id_header, str(row_id).encode()),
            (MNIST.commit_header, str(at).encode()),
            (MNIST.op_header, op.encode()),
        ],
        "partition": row_id % PARTITIONS,
    }


def changes(table: str) -> list[dict]:
    """30 inserts, then 20 updates to another label, then 5 deletes (each the row's last version)."""
    rng = np.random.default_rng(11)
    pixels = {i: rng.integers(0, 256, 784, dtype=np.uint8) for i in range(1, ROWS + 1)}
    labels = {i: i % 10 for i in pixels}
    records = [change(table, i, labels[i], pixels[i], "c", INSERTED_AT) for i in pixels]
    for i in UPDATED:
        labels[i] = (labels[i] + 1) % 10
        pixels[i] = 255 - pixels[i]
        records.append(change(table, i, labels[i], pixels[i], "u", UPDATED_AT))
    records += [change(table, i, labels[i], pixels[i], "d", DELETED_AT) for i in DELETED]
    return records


def produce_all(servers: str, topic: str, records: list[dict]) -> None:
    producer = Producer({"bootstrap.servers": servers, "enable.idempotence": True})
    for record in records:
        producer.produce(topic, **record)
    assert producer.flush(30) == 0


def predictions_after(pipeline, start: dict[int, int]) -> list:
    """The committed records of mnist.predictions after ``start`` (read_committed, until the end offsets taken
    now), in partition and offset order: a key's records share a partition, so offsets order them."""
    end = end_offsets(pipeline.bootstrap, MNIST.predictions_topic)
    records, reached = read_to(pipeline.bootstrap, MNIST.predictions_topic, start, end, timeout=90)
    last = {r.partition: r.offset for r in sorted(records, key=lambda r: (r.partition, r.offset))}
    assert all(reached[p] >= end[p] for p in end), (
        f"{MNIST.predictions_topic} not read to its end offsets {end} within 90 s: the reader's positions {reached} "
        f"(a transaction still open stops them at its first offset), the last records read {last}"
    )
    return sorted(records, key=lambda r: (r.partition, r.offset))


def last_per_row(pipeline, start: dict[int, int], table: str) -> dict[int, bytes | None]:
    """The value of the last committed record of each of ``table``'s rows on mnist.predictions after ``start``."""
    found: dict[int, bytes | None] = {}
    for record in predictions_after(pipeline, start):
        source, row_id = key_of(record.key)
        if source == table:
            found[row_id] = record.value
    return found


def predicted_ids(pipeline, table: str) -> list[int]:
    """The ids of ``table``'s rows that have a row in mnist_predictions, in order."""
    found = query_all(
        pipeline.postgres,
        f"SELECT id FROM {MNIST.predictions_table} WHERE source_table = %s ORDER BY id",
        (table,),
    )
    return [row_id for (row_id,) in found]
