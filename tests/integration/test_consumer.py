"""Train on the training topic, then evaluate live while the test split streams in (issue: consumer)."""

from __future__ import annotations

import re
import subprocess
import sys
import time

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from bench.numbered_rows import end_offset
from tests.integration.backend import ROOT

TEST_TOPIC = "tf.public.mnist_test"


def records_between(bootstrap: str, topic: str, start: int, end: int) -> list:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    tp = TopicPartition(topic, 0)
    consumer.assign([tp])
    consumer.seek(tp, start)
    records: list = []
    deadline = time.monotonic() + 60
    while len(records) < end - start and time.monotonic() < deadline:
        for batch in consumer.poll(timeout_ms=500).values():
            records.extend(r for r in batch if r.offset < end)
    consumer.close()
    return records


@pytest.mark.parametrize("source", ["kafka-python", "tfio"])
def test_live_evaluation_prints_accuracy_per_batch_and_reaches_95_percent(pipeline, trained_model, source):
    start = end_offset(pipeline.bootstrap, TEST_TOPIC)
    evaluate = pipeline.start(
        "consumer.evaluate",
        "--model",
        str(trained_model),
        "--group-id",
        f"live-{time.time_ns()}",
        "--start",
        "latest",
        "--idle-timeout",
        "8",
        "--batch-size",
        "32",
        "--source",
        source,
    )
    first_line = evaluate.stdout.readline()
    assert first_line.startswith("evaluating"), first_line + evaluate.stderr.read()
    producer = KafkaProducer(bootstrap_servers=pipeline.bootstrap)
    for key, value in ((b"7", b"1,2,3"), (b"1", b""), (None, b"not,pixels")):
        producer.send(TEST_TOPIC, key=key, value=value)
    producer.flush()
    producer.close()

    load = pipeline.run("loader", "--split", "test", "--rate", "200", "--no-progress")
    output, errors = evaluate.communicate(timeout=300)

    assert load.returncode == 0, load.stderr
    assert evaluate.returncode == 0, errors
    live = [line for line in output.splitlines() if line.startswith("records")]
    assert len(live) >= 1000 // 32, "a line per batch while rows arrive"
    assert re.match(r"records +\d+  batch accuracy [01]\.\d{3}  running accuracy [01]\.\d{4}  loss \d+\.\d{4}", live[0])
    summary = output.splitlines()[-1]
    match = re.match(r"evaluated 1000 records \(3 malformed skipped\) in [0-9.]+ s: accuracy ([0-9.]+), loss", summary)
    assert match, summary
    accuracy = float(match.group(1))
    assert accuracy >= 0.95

    # The live figure equals Keras' model.evaluate over the same records.
    import keras
    import tensorflow as tf

    from consumer.decode import decode_csv_batch

    records = records_between(pipeline.bootstrap, TEST_TOPIC, start, start + 1003)
    images, labels, malformed = decode_csv_batch(
        tf.constant([r.value or b"" for r in records]), tf.constant([r.key or b"" for r in records])
    )
    assert int(malformed) == 3
    _, keras_accuracy = keras.models.load_model(trained_model).evaluate(images, labels, verbose=0)
    assert round(keras_accuracy, 4) == pytest.approx(accuracy, abs=1e-4)


def test_missing_model_is_one_line_and_exit_1(pipeline, tmp_path):
    result = pipeline.run("consumer.evaluate", "--model", str(tmp_path / "none.keras"))

    assert result.returncode == 1
    assert result.stderr.strip() == (
        f"error: no model at {tmp_path / 'none.keras'}; train one first: python -m consumer.train"
    )


def test_missing_topic_is_one_line_and_exit_1(pipeline, trained_model):
    result = pipeline.run("consumer.evaluate", "--model", str(trained_model), "--topic", "tf.public.nothing")

    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"error: topic tf.public.nothing does not exist on {pipeline.bootstrap}: is the connector RUNNING "
        "(python -m stack status) and has a row been loaded (make load-mnist)?"
    ]


def test_unreachable_broker_is_one_line_and_exit_1(pipeline, trained_model):
    from tests.integration.backend import free_port

    port = free_port()
    result = pipeline.run(
        "consumer.train", "--idle-timeout", "1", extra_env={"KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{port}"}
    )

    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"error: cannot reach Kafka at 127.0.0.1:{port}: no broker answered (python -m stack status)"
    ]


def test_the_talks_consumer_snippet_reads_our_records(pipeline, trained_model):
    """The talk's snippet, unchanged, after one call that gives its group committed offsets (Kafka 4 needs it)."""
    from consumer.kafka_source import seed_group_offsets

    group = f"talk-{time.time_ns()}"
    seed_group_offsets(pipeline.bootstrap, group, TEST_TOPIC, start="latest")
    load = pipeline.run("loader", "--split", "test", "--limit", "100", "--no-progress")
    assert load.returncode == 0, load.stderr

    script = ROOT / "tests" / "integration" / "talk_snippet.py"
    result = subprocess.run(
        [sys.executable, str(script), pipeline.bootstrap, group],
        cwd=ROOT,
        env=pipeline.env,
        capture_output=True,
        text=True,
        timeout=300,
    )

    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.split() == ["100"]


def test_train_reads_the_same_records_with_either_source(pipeline, tmp_path):
    counts = {}
    for source in ("kafka-python", "tfio"):
        result = pipeline.run(
            "consumer.train",
            "--source",
            source,
            "--epochs",
            "1",
            "--quiet",
            "--idle-timeout",
            "4",
            "--model",
            str(tmp_path / f"{source}.keras"),
            timeout=600,
        )
        assert result.returncode == 0, result.stderr
        counts[source] = int(re.search(r"read (\d+) records", result.stdout).group(1))
    assert counts["kafka-python"] == counts["tfio"] > 0
