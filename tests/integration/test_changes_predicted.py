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

from consumer.records.predictions import zoned_timestamp
from probes.deadline import poll
from probes.topics import end_offsets
from stack.contract import MNIST
from stack.kafka import ensure_topics
from tests.integration.support.changes import (
    DELETED,
    INSERTED_AT,
    PARTITIONS,
    ROWS,
    UPDATED,
    UPDATED_AT,
    changes,
    last_per_row,
    predicted_ids,
    produce_all,
)


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
    living = sorted(set(range(1, ROWS + 1)) - set(DELETED))
    assert poll(lambda: predicted_ids(pipeline, table) == living, 60), predicted_ids(pipeline, table)
