"""consumer.spark_predict follows every change as consumer.predict does: the last record of each row's key on
mnist.predictions is the prediction of its latest version, or a tombstone once the row is deleted; a record whose
headers name no row gets nothing and does not fail the query; the JDBC sink then deletes the deleted rows'
predictions from mnist_predictions.

The changes are the connector's records under the agreed design, produced by test_changes_predicted's helpers to a
topic and under a table name of the test's own.
"""

from __future__ import annotations

import dataclasses
import json
import uuid

from confluent_kafka import TopicPartition
from confluent_kafka.admin import AdminClient

from consumer.records.codec import encode_pixels
from consumer.records.predictions import zoned_timestamp
from probes.database import query_all
from probes.deadline import poll
from probes.topics import end_offsets
from stack.contract import MNIST
from stack.kafka import ensure_topics
from tests.integration.test_changes_predicted import (
    DELETED,
    INSERTED_AT,
    PARTITIONS,
    ROWS,
    UPDATED,
    UPDATED_AT,
    changes,
    last_per_row,
    produce_all,
)
from tests.integration.test_spark_predict import spark_ready  # noqa: F401 - the fixture, shared


def bad(table: str, header: str, raw: bytes, partition: int) -> dict:
    """A decodable record whose headers name no row: one header out of range."""
    headers = {MNIST.table_header: table.encode(), MNIST.id_header: b"7", MNIST.commit_header: b"1700000000000"}
    headers[header] = raw
    return {
        "key": b"3",
        "value": encode_pixels(bytes(784)),
        "headers": [*headers.items(), ("__op", b"c")],
        "partition": partition,
    }


def test_spark_leaves_the_latest_prediction_or_a_tombstone_per_row(pipeline, spark_ready, model_store, tmp_path):  # noqa: F811
    suffix = uuid.uuid4().hex[:8]
    topic, table = f"test.spark.changes.{suffix}", f"spark_changes_{suffix}"
    ensure_topics(dataclasses.replace(pipeline.config, partitions=PARTITIONS), (topic,))
    predictions_start = end_offsets(pipeline.bootstrap, MNIST.predictions_topic)
    records = changes(table)
    # Between real rows: a source timestamp past any date, an id past 64 bits.
    records[ROWS // 2 : ROWS // 2] = [
        bad(table, MNIST.commit_header, b"99999999999999999", 0),
        bad(table, MNIST.id_header, str(2**64 + 5).encode(), 1),
    ]
    produce_all(pipeline.bootstrap, topic, records)

    result = pipeline.run(
        "consumer.spark_predict", "--model", model_store, "--topic", topic,
        "--checkpoint-dir", str(tmp_path / "checkpoint"), timeout=400,
    )  # fmt: skip

    assert result.returncode == 0, result.stdout + result.stderr
    assert "scored 57 records" in result.stdout, result.stdout
    last = last_per_row(pipeline, predictions_start, table)
    assert sorted(last) == list(range(1, ROWS + 1)), f"one key a row, none for the bad records: {sorted(last)}"
    assert sorted(i for i, value in last.items() if value is None) == list(DELETED), "deleted rows end in a tombstone"
    committed = {i: json.loads(value)["payload"]["committed_at"] for i, value in last.items() if value is not None}
    assert {i for i, at in committed.items() if at == zoned_timestamp(UPDATED_AT)} == set(UPDATED) - set(DELETED), (
        "an updated row's last prediction is its latest version's"
    )
    assert {i for i, at in committed.items() if at == zoned_timestamp(INSERTED_AT)} == set(range(21, ROWS + 1))

    def table_ids() -> list[int]:
        found = query_all(
            pipeline.postgres,
            f"SELECT id FROM {MNIST.predictions_table} WHERE source_table = %s ORDER BY id",
            (table,),
        )
        return [row_id for (row_id,) in found]

    living = sorted(set(range(1, ROWS + 1)) - set(DELETED))
    assert poll(lambda: table_ids() == living, 60), f"{MNIST.predictions_table} holds {table_ids()}"


def test_a_range_lost_under_the_checkpoint_fails_the_query_unless_allowed(pipeline, spark_ready, model_store, tmp_path):  # noqa: F811
    suffix = uuid.uuid4().hex[:8]
    topic, table = f"test.spark.loss.{suffix}", f"spark_loss_{suffix}"
    ensure_topics(dataclasses.replace(pipeline.config, partitions=1), (topic,))
    flags = ("--model", model_store, "--topic", topic, "--checkpoint-dir", str(tmp_path / "checkpoint"))
    records = [{**record, "partition": 0} for record in changes(table)]
    produce_all(pipeline.bootstrap, topic, records[:10])
    first = pipeline.run("consumer.spark_predict", *flags, timeout=400)
    assert first.returncode == 0, first.stdout + first.stderr

    # Records past the checkpoint's offset, then deleted before Spark read them: a range lost, as retention does.
    produce_all(pipeline.bootstrap, topic, records[10:20])
    admin = AdminClient({"bootstrap.servers": pipeline.bootstrap})
    end = end_offsets(pipeline.bootstrap, topic)[0]
    for future in admin.delete_records([TopicPartition(topic, 0, end - 5)]).values():
        future.result(30)

    lost = pipeline.run("consumer.spark_predict", *flags, timeout=400)
    assert lost.returncode == 1, lost.stdout + lost.stderr
    errors = [line for line in lost.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "--allow-data-loss" in errors[0], lost.stderr
    assert "Traceback" not in lost.stderr, lost.stderr

    allowed = pipeline.run("consumer.spark_predict", *flags, "--allow-data-loss", timeout=400)
    assert allowed.returncode == 0, allowed.stdout + allowed.stderr
    assert "scored 5 records" in allowed.stdout, allowed.stdout
