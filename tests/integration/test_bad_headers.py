"""Bad records never stop the predictor: a record whose headers cannot name a row (a commit time or an id that is
no number or out of range, a missing table or id) is counted malformed with its reason, never written; the real
rows around it get their predictions. An unexpected failure ends the run with one line and a non-zero exit, in
bounded time.
"""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import pytest
from confluent_kafka import Producer

from consumer.records.predictions import key_of
from probes.topics import end_offsets, read_from
from stack.contract import MNIST
from tests.integration.support.topics import topics_of_the_test

GOOD = ",".join(["7"] * 784).encode()


def row_headers(row_id: bytes, committed: bytes = b"1700000000000") -> list[tuple[str, bytes]]:
    return [(MNIST.table_header, b"bad_headers_test"), (MNIST.id_header, row_id), (MNIST.commit_header, committed)]


BAD = [
    row_headers(b"2", committed=b"99999999999999999999"),  # year far beyond 9999
    row_headers(b"3", committed=b"soon"),
    row_headers(b"4x"),
    row_headers(str(2**64 + 5).encode()),
    row_headers(str(2**63).encode()),
    [(MNIST.id_header, b"6"), (MNIST.commit_header, b"1700000000000")],
]


def test_records_with_bad_headers_are_counted_with_their_reasons_and_real_rows_are_predicted(pipeline, model_store):
    source, target = topics_of_the_test(pipeline, "badheaders")
    producer = Producer({"bootstrap.servers": pipeline.bootstrap})
    producer.produce(source, key=b"1", value=GOOD, headers=row_headers(b"1"), partition=0)
    for headers in BAD:
        producer.produce(source, key=b"1", value=GOOD, headers=headers, partition=0)
    producer.produce(source, key=b"1", value=GOOD, headers=row_headers(b"5"), partition=0)
    assert producer.flush(30) == 0

    result = pipeline.run(
        "consumer.predict", "--model", model_store, "--topic", source, "--predictions-topic", target,
        "--group-id", f"test-bad-headers-{uuid.uuid4().hex[:8]}", "--idle-timeout", "3", timeout=180,
    )  # fmt: skip

    assert result.returncode == 0, result.stdout + result.stderr
    summary = re.search(r"predicted 2 of 8 records \(0 retracted, 6 malformed: (.*?)\) in", result.stdout)
    assert summary, result.stdout + result.stderr
    reasons = dict(reversed(part.split(" ", 1)) for part in summary.group(1).split(", "))
    assert reasons == {
        "commit time out of range": "1",
        "commit time not a number": "1",
        "id not a number": "1",
        "id out of range": "2",
        "no table header": "1",
    }, summary.group(1)
    published = read_from(pipeline.bootstrap, target, None, lambda records: len(records) >= 2, timeout=30)
    assert sorted(key_of(r.key) for r in published) == [("bad_headers_test", 1), ("bad_headers_test", 5)]


@pytest.fixture
def misshapen_model(tmp_path) -> Path:
    """A Keras model that loads but cannot score an image (it takes 10 numbers): fails at the first batch."""
    from consumer.cli import quiet_tensorflow

    quiet_tensorflow()
    import keras

    model = keras.Sequential([keras.Input((10,)), keras.layers.Dense(10, activation="softmax")])
    path = tmp_path / "misshapen.keras"
    model.save(path)
    return path


def test_an_unexpected_failure_ends_the_predictor_with_one_line_and_a_non_zero_exit(pipeline, misshapen_model):
    source, target = topics_of_the_test(pipeline, "failing")
    producer = Producer({"bootstrap.servers": pipeline.bootstrap})
    producer.produce(source, key=b"1", value=GOOD, headers=row_headers(b"1"))
    assert producer.flush(30) == 0
    group = f"test-failing-{uuid.uuid4().hex[:8]}"
    flags = ("--model", str(misshapen_model), "--topic", source, "--group-id", group, "--idle-timeout", "3")

    result = pipeline.run("consumer.predict", *flags, "--predictions-topic", target, timeout=120)

    assert result.returncode == 1, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert sum(end_offsets(pipeline.bootstrap, target).values()) == 0, "nothing of the failed batch is visible"

    evaluated = pipeline.run("consumer.evaluate", *flags, timeout=120)

    assert evaluated.returncode == 1, evaluated.stdout + evaluated.stderr
    lines = evaluated.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), evaluated.stderr
