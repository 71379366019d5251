"""Predictions follow the row: inserts, updates and deletes of a table reach ``mnist.predictions`` so that the
last record of each row's key is the prediction of its latest version, or a tombstone once the row is deleted,
and the JDBC sink (``delete.enabled``) leaves ``mnist_predictions`` with exactly the rows that still exist.

The records are the ones the connector writes under the agreed design (key: the label; value: 784 CSV pixels;
headers ``mnist.table``, ``mnist.id``, ``__source_ts_ms`` and ``__op``; every change of a row on the partition its
id picks), produced by the test under a table name of its own so no other test's rows are counted.
"""

from __future__ import annotations

import dataclasses
import json
import re
import uuid

import numpy as np
from confluent_kafka import Producer

from consumer.records.codec import encode_pixels
from consumer.records.predictions import key_of, zoned_timestamp
from probes.database import query_all
from probes.deadline import poll
from probes.topics import end_offsets, read_from
from stack.contract import MNIST
from stack.kafka import ensure_topics

PARTITIONS = 4
ROWS = 30
UPDATED = range(1, 21)  # ids 1..20 get another label
DELETED = range(16, 21)  # five of the updated rows are deleted afterwards
OP_HEADER = "__op"  # stack.contract's op_header once the capture change is merged
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
            (OP_HEADER, op.encode()),
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


def last_per_row(pipeline, start: dict[int, int], table: str) -> dict[int, bytes | None]:
    """The value of the last committed record of each of ``table``'s rows on mnist.predictions after ``start``
    (read_committed, to the end offsets of now). A key's records share a partition, so offsets order them."""
    end = end_offsets(pipeline.bootstrap, MNIST.predictions_topic)

    def reached(records) -> bool:
        last: dict[int, int] = {}
        for record in records:
            last[record.partition] = record.offset
        return all(end[p] <= start.get(p, 0) or last.get(p, -1) >= end[p] - 2 for p in end)

    records = read_from(pipeline.bootstrap, MNIST.predictions_topic, start, reached, timeout=90)
    assert reached(records), f"{MNIST.predictions_topic} not read to its end offsets {end}"
    found: dict[int, bytes | None] = {}
    for record in sorted(records, key=lambda r: (r.partition, r.offset)):
        source, row_id = key_of(record.key)
        if source == table:
            found[row_id] = record.value
    return found


def test_updates_and_deletes_leave_the_latest_prediction_or_a_tombstone_per_row(pipeline, model_store):
    suffix = uuid.uuid4().hex[:8]
    topic, table, group = f"test.changes.in.{suffix}", f"changes_test_{suffix}", f"test-changes-{suffix}"
    ensure_topics(dataclasses.replace(pipeline.config, partitions=PARTITIONS), (topic,))
    predictions_start = end_offsets(pipeline.bootstrap, MNIST.predictions_topic)
    produce_all(pipeline.bootstrap, topic, changes(table))  # every change made before a predictor runs

    result = pipeline.run(
        "consumer.predict", "--model", model_store, "--topic", topic, "--group-id", group, "--idle-timeout", "5",
    )  # fmt: skip

    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(r"predicted 50 of 55 records \(5 retracted, 0 malformed\)", result.stdout), result.stdout
    last = last_per_row(pipeline, predictions_start, table)
    assert sorted(last) == list(range(1, ROWS + 1)), sorted(last)
    assert sorted(i for i, value in last.items() if value is None) == list(DELETED), "deleted rows end in a tombstone"
    committed = {i: json.loads(value)["payload"]["committed_at"] for i, value in last.items() if value is not None}
    assert {i for i, at in committed.items() if at == zoned_timestamp(UPDATED_AT)} == set(UPDATED) - set(DELETED), (
        "an updated row's last prediction is its latest version's"
    )
    assert {i for i, at in committed.items() if at == zoned_timestamp(INSERTED_AT)} == set(range(21, ROWS + 1))

    # A bounded evaluation reads the topic as the table: 25 rows, each at its latest version, the deleted gone.
    evaluated = pipeline.run(
        "consumer.evaluate", "--model", model_store, "--topic", topic, "--group-id", f"{group}-evaluate",
        "--idle-timeout", "5",
    )  # fmt: skip
    assert evaluated.returncode == 0, evaluated.stdout + evaluated.stderr
    summary = evaluated.stdout.strip().splitlines()[-1]
    assert summary.startswith("evaluated 50 records (0 malformed skipped)"), summary
    assert summary.endswith(f"; {ROWS - len(DELETED)} rows, {len(DELETED)} deleted"), summary

    # The sink upserts predictions and deletes on tombstones (delete.enabled): the table holds the living rows.
    def table_ids() -> list[int]:
        found = query_all(
            pipeline.postgres,
            f"SELECT id FROM {MNIST.predictions_table} WHERE source_table = %s ORDER BY id",
            (table,),
        )
        return [row_id for (row_id,) in found]

    living = sorted(set(range(1, ROWS + 1)) - set(DELETED))
    assert poll(lambda: table_ids() == living, 60), f"{MNIST.predictions_table} holds {table_ids()}"
