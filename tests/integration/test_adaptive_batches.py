"""Batches that adapt to the stream: a predictor that is caught up scores each row as soon as it comes instead of
waiting for a batch to fill or linger; one that is behind takes batches up to its bound (``--batch-size``,
default 2048), so transactions and model calls amortise. The batch sizes are the predictor's own batch lines.
"""

from __future__ import annotations

import re
import statistics
import threading
import time
import uuid

from confluent_kafka import Producer

from consumer.records.predictions import key_of
from probes.topics import read_from
from stack.contract import MNIST
from tests.integration.support.backend import stop
from tests.integration.support.topics import topics_of_the_test

PIXELS = ",".join(["7"] * 784).encode()
BATCH_LINE = re.compile(r"batch\s+\d+\s+records\s+(\d+)\s+predictions\s+\d+\s+.*total (\d+)$")


def produce(producer: Producer, topic: str, row_id: int) -> None:
    headers = [(MNIST.table_header, b"adaptive_test"), (MNIST.id_header, str(row_id).encode())]
    producer.produce(topic, key=b"7", value=PIXELS, headers=headers)


def batch_sizes(stdout: str) -> list[int]:
    return [int(m.group(1)) for line in stdout.splitlines() if (m := BATCH_LINE.match(line))]


def test_a_caught_up_predictor_scores_each_row_as_it_comes(pipeline, model_store):
    source, target = topics_of_the_test(pipeline, "adaptive-slow")
    process = pipeline.start(
        "consumer.predict", "--model", model_store, "--topic", source, "--predictions-topic", target,
        "--group-id", f"test-adaptive-{uuid.uuid4().hex[:8]}", "--follow",
    )  # fmt: skip
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(line.rstrip("\n") for line in process.stdout), daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 120
        while not any(line.startswith("predicting ") for line in lines) and time.monotonic() < deadline:
            assert process.poll() is None, "\n".join(lines) + process.stderr.read()
            time.sleep(0.2)
        time.sleep(3)  # the group's first assignment
        producer = Producer({"bootstrap.servers": pipeline.bootstrap, "linger.ms": 0})
        for row_id in range(60):  # 20 rows/s, each its own produce: a steady stream slower than any batch
            produce(producer, source, row_id)
            producer.flush(10)
            time.sleep(0.05)
        published = read_from(pipeline.bootstrap, target, None, lambda records: len(records) >= 60, timeout=60)
        assert len({key_of(r.key) for r in published}) == 60
    finally:
        _, stderr = stop(process, stdout_read=True)
        reader.join(timeout=10)
    sizes = batch_sizes("\n".join(lines))
    assert sum(sizes) == 60, (sizes, stderr)
    # Waiting for a batch to fill or linger (0.2 s) would give batches of 4 or more at 20 rows/s.
    assert statistics.median(sizes) <= 3, sizes


def test_a_predictor_behind_takes_batches_up_to_its_bound(pipeline, model_store):
    source, target = topics_of_the_test(pipeline, "adaptive-backlog")
    producer = Producer({"bootstrap.servers": pipeline.bootstrap, "linger.ms": 50})
    for row_id in range(6000):
        produce(producer, source, row_id)
        producer.poll(0)
    assert producer.flush(60) == 0

    result = pipeline.run(
        "consumer.predict", "--model", model_store, "--topic", source, "--predictions-topic", target,
        "--group-id", f"test-adaptive-{uuid.uuid4().hex[:8]}", "--idle-timeout", "3", timeout=300,
    )  # fmt: skip

    assert result.returncode == 0, result.stdout + result.stderr
    assert "predicted 6000 of 6000 records" in result.stdout, result.stdout[-2000:]
    sizes = batch_sizes(result.stdout)
    assert sum(sizes) == 6000, sizes
    assert max(sizes) > 1024, f"batches stayed small on a backlog: {sizes}"
    assert max(sizes) <= 2048, sizes
