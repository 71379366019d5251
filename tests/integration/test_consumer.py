"""Train on the training topic, then evaluate live while the test split streams in."""

from __future__ import annotations

import re
import signal
import time

import pytest

from probes.deadline import poll
from probes.topics import (
    commit_group_offsets,
    end_offsets,
    group_offsets,
    produce,
    read_from,
    read_to_end,
    watermarks,
)
from stack.contract import DELETE_OP, MNIST
from tests.integration.support.backend import free_port

TEST_TOPIC = MNIST.test


@pytest.mark.parametrize("source", ["kafka", "tfio"])
def test_live_evaluation_prints_accuracy_per_batch_and_reaches_95_percent(pipeline, trained_model, source):
    start = end_offsets(pipeline.bootstrap, TEST_TOPIC)
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
    produce(pipeline.bootstrap, TEST_TOPIC, [(b"7", b"1,2,3"), (b"1", b""), (None, b"not,pixels")])

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

    # The live figure equals Keras' model.evaluate over the same records, read and decoded independently of the
    # source under test (our reader, the TensorFlow decode).
    import keras
    import tensorflow as tf

    from consumer.records.tf_decode import decode_csv_batch

    records = read_from(pipeline.bootstrap, TEST_TOPIC, start, lambda records: len(records) >= 1003, 60)
    assert len(records) == 1003, "the evaluated records: 1000 rows and 3 malformed"
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
    port = free_port()
    result = pipeline.run(
        "consumer.train", "--idle-timeout", "1", extra_env={"KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{port}"}
    )

    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert re.fullmatch(
        rf"error: cannot reach Kafka at 127\.0\.0\.1:{port}: no broker answered \(.*python -m stack status\)", lines[0]
    ), lines[0]


def test_the_talks_consumer_snippet_evaluates_our_model_on_our_records(pipeline, trained_model):
    """The talk's snippet, unchanged to its last line ``model.evaluate(test_ds)``, with the model consumer.train
    saved, after one call that gives its group committed offsets (Kafka 4 needs it)."""
    from consumer.kafka.client import KafkaClient

    group = f"talk-{time.time_ns()}"
    KafkaClient.of(pipeline.bootstrap).seed_group_offsets(group, TEST_TOPIC, start="latest")
    load = pipeline.run("loader", "--split", "test", "--limit", "100", "--no-progress")
    assert load.returncode == 0, load.stderr

    # The talk's snippet, run as written in a process of its own (tfio allows one Kafka consumer a process).
    result = pipeline.run("tests.integration.support.talk_snippet", pipeline.bootstrap, group, str(trained_model))

    assert result.returncode == 0, result.stderr[-3000:]
    records, accuracy = result.stdout.split()
    assert records == "100"
    assert float(accuracy) > 0.9, result.stderr[-3000:]


def test_train_reads_the_same_records_with_either_source(pipeline, train_split_loaded, tmp_path):
    """``kafka`` (the default), ``kafka-python`` (its old name, still accepted) and the talk's ``tfio``."""
    counts = {}
    for source in ("kafka", "kafka-python", "tfio"):
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
    assert counts["kafka"] == counts["kafka-python"] == counts["tfio"] > 0


def untrained_model(tmp_path):
    """A saved model of the right shape (accuracy is not the point of the tests that use it)."""
    import os

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    from consumer.learning.models import build_model

    path = tmp_path / "untrained.keras"
    build_model().save(path)
    return path


def load_and_wait(pipeline, split: str, rows: int) -> tuple[dict[int, int], int]:
    """Load ``rows`` rows of ``split``; once their records are on its topic: the topic's end offsets and how many
    records it retains."""
    topic = MNIST.topic(split)
    before = sum(end_offsets(pipeline.bootstrap, topic).values())
    load = pipeline.run("loader", "--split", split, "--limit", str(rows), "--no-progress")
    assert load.returncode == 0, load.stderr
    assert poll(lambda: sum(end_offsets(pipeline.bootstrap, topic).values()) >= before + rows, 60)
    marks = watermarks(pipeline.bootstrap, topic)
    return {p: end for p, (_, end) in marks.items()}, sum(end - first for first, end in marks.values())


def test_reused_group_id_warns_how_many_records_its_committed_offsets_skip(pipeline, tmp_path):
    topic = MNIST.train
    end, skipped = load_and_wait(pipeline, "train", 20)
    group = f"reused-{time.time_ns()}"
    commit_group_offsets(pipeline.bootstrap, group, topic, end)  # as an earlier run that read everything leaves it

    result = pipeline.run(
        "consumer.train", "--group-id", group, "--idle-timeout", "2", "--model", str(tmp_path / "m.keras")
    )

    warning = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert len(warning) == 1, result.stderr
    assert f"group {group} has committed offsets: {skipped} records of {topic} are skipped" in warning[0]
    assert result.returncode == 1 and not (tmp_path / "m.keras").exists()


def test_train_commits_its_groups_offsets_only_once_its_model_is_saved(pipeline, train_split_loaded, tmp_path):
    """Killed after learning a whole epoch but before saving, one-shot train has committed nothing: a rerun of its
    group learns every record again. Saved, it has committed the offsets it read to."""
    group, model = f"commit-after-save-{time.time_ns()}", tmp_path / "m.keras"
    args = ("consumer.train", "--group-id", group, "--model", str(model), "--idle-timeout", "3")
    train = pipeline.start(*args, "--epochs", "3")
    try:
        lines = iter(train.stdout.readline, "")
        assert any("epoch 1: loss" in line for line in lines), "train ended before its first epoch"
    finally:
        train.send_signal(signal.SIGKILL)
        train.communicate(timeout=60)
    assert not model.exists()
    first = {p: low for p, (low, _) in watermarks(pipeline.bootstrap, MNIST.train).items()}
    committed = group_offsets(pipeline.bootstrap, group, MNIST.train)
    assert all(committed[p] in (None, first[p]) for p in first), committed  # at most where it started

    end = end_offsets(pipeline.bootstrap, MNIST.train)
    finished = pipeline.run(*args, "--epochs", "1", timeout=900)

    assert finished.returncode == 0, finished.stderr
    starts = ", ".join(f"partition {p} offset {o}" for p, o in sorted(first.items()))
    assert f"reading {MNIST.train} (group {group}) from {starts}" in finished.stdout, finished.stdout[:500]
    committed = group_offsets(pipeline.bootstrap, group, MNIST.train)
    # Past every record it read: the end offset, or one before it (the last transaction's commit marker).
    assert all(end[p] - 1 <= committed[p] <= end[p] for p in end), (committed, end)


def test_committed_offset_past_the_end_restarts_from_the_earliest_record_and_says_so(pipeline, tmp_path):
    end, _ = load_and_wait(pipeline, "test", 30)
    # Not the offsets (transaction markers take some), and not the deletes other tests left: a bounded evaluate
    # reads the topic as its table and scores no deleted version.
    on_topic = read_to_end(pipeline.bootstrap, TEST_TOPIC)
    records = sum(record.headers.get(MNIST.op_header) != DELETE_OP.encode() for record in on_topic)
    group = f"out-of-range-{time.time_ns()}"
    commit_group_offsets(pipeline.bootstrap, group, TEST_TOPIC, {p: offset + 1000 for p, offset in end.items()})

    result = pipeline.run(
        "consumer.evaluate", "--model", str(untrained_model(tmp_path)), "--group-id", group, "--idle-timeout", "3"
    )

    assert result.returncode == 0, result.stderr
    for partition, offset in end.items():
        assert (
            f"committed offset {offset + 1000} on {TEST_TOPIC} partition {partition} is outside the retained records"
            in result.stderr
        ), result.stderr
    assert "restarting from the earliest retained record" in result.stderr
    summary = re.search(r"evaluated (\d+) records \((\d+) malformed skipped\)", result.stdout)
    assert int(summary.group(1)) + int(summary.group(2)) >= records, result.stdout[-500:]


def test_broker_stopping_mid_read_is_an_error_not_the_end_of_the_stream(native, tmp_path):
    """train and evaluate have read the topic and wait for more; the broker stops: both must fail (exit 1, one
    line), train must save nothing. Before, an unanswered poll looked like an idle topic: exit 0, partial data."""
    from stack import kafka

    end, _ = load_and_wait(native, "test", 40)
    model = tmp_path / "trained.keras"
    train_group, evaluate_group = f"outage-train-{time.time_ns()}", f"outage-evaluate-{time.time_ns()}"
    train = native.start(
        "consumer.train", "--topic", TEST_TOPIC, "--group-id", train_group, "--idle-timeout", "15", "--model",
        str(model), "--epochs", "1",
    )  # fmt: skip
    evaluate = native.start(
        "consumer.evaluate", "--model", str(untrained_model(tmp_path)), "--group-id", evaluate_group,
        "--idle-timeout", "15",
    )  # fmt: skip
    try:
        # evaluate has read (and committed) every record, and train is reading: train commits only once its model
        # is saved, so its first line says it reads. Both are in their idle wait when the broker goes.
        assert poll(lambda: group_offsets(native.bootstrap, evaluate_group, TEST_TOPIC) == end, 120), "evaluate read"
        assert train.stdout.readline().startswith(f"reading {TEST_TOPIC} (group {train_group})"), "train reads"
        assert kafka.stop(native.config)
        train_out, train_err = train.communicate(timeout=120)
        evaluate_out, evaluate_err = evaluate.communicate(timeout=120)
    finally:
        for process in (train, evaluate):
            if process.poll() is None:
                process.kill()
        up = native.run("stack", "up", timeout=300)
        assert up.returncode == 0, up.stdout + up.stderr

    for name, code, out, err in (
        ("train", train.returncode, train_out, train_err),
        ("evaluate", evaluate.returncode, evaluate_out, evaluate_err),
    ):
        lines = err.strip().splitlines()
        assert code == 1, f"{name}: exit {code}\n{out[-800:]}\n{err[-800:]}"
        assert len(lines) == 1 and "stopped answering" in lines[0], f"{name}: {err[-1500:]}"
    assert not model.exists()
