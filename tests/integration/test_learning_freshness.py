"""Learning freshness on a real broker: ``consumer.train --follow`` at its default settings publishes what it
learned as a model version within seconds, not at its next full checkpoint (every 5,000 records or 60 s), and the
version's ``vNNNN.json`` says up to which offsets, how many records and which commit time it learned.

The topic is the test's own, its records written as the connector writes them (label key, CSV pixels, the row's
table, id and commit time in headers), so the test does not depend on Connect or on the demo tables.
"""

from __future__ import annotations

import threading
import time
import uuid

from consumer.kafka.client import KafkaClient
from consumer.kafka.writer import TopicWriter
from consumer.records.codec import encode_pixels
from consumer.store.versions import ModelStore
from loader.source import load_sample
from probes.deadline import poll
from probes.topics import end_offsets
from stack.contract import MNIST
from tests.integration.support.backend import stop

PARTITIONS = 2
BURST = 300
#: A version covering the burst must be published within this many seconds of its last record.
WITHIN_S = 20.0


def write_burst(client: KafkaClient, topic: str, rows: int) -> int:
    """``rows`` inserts, partitioned by the row id, each with its commit time (now) in ``__source_ts_ms``; the
    newest commit time written (ms)."""
    sample = load_sample()["train"]
    writer = TopicWriter(client, topic)
    newest = 0
    for row_id in range(1, rows + 1):
        newest = int(time.time() * 1000)
        headers = [
            (MNIST.table_header, b"mnist_train"),
            (MNIST.id_header, str(row_id).encode()),
            (MNIST.op_header, b"c"),
            (MNIST.commit_header, str(newest).encode()),
        ]
        index = row_id % len(sample.labels)
        writer.write(str(int(sample.labels[index])).encode(), encode_pixels(sample.images[index]), row_id % PARTITIONS,
                     headers)  # fmt: skip
    writer.flush()
    return newest


def covering(store: ModelStore, wanted: dict[int, int]) -> dict | None:
    """The info of the version ``latest`` names (what readers load) when its ``offsets`` reach ``wanted`` on every
    partition, else None. A version's files are complete before ``latest`` names it, so this is the moment a
    reader can have the model."""
    latest = store.latest()
    if latest is None:
        return None
    info = store.info(latest[0])
    learned = {int(p): o for p, o in (info.get("offsets") or {}).items()}
    return info if all(learned.get(p, 0) >= o for p, o in wanted.items()) else None


def test_a_follower_publishes_a_burst_it_learned_within_seconds(pipeline, tmp_path):
    client = KafkaClient.of(pipeline.bootstrap)
    topic = f"test.freshness.{uuid.uuid4().hex[:8]}"
    client.create_topic(topic, partitions=PARTITIONS)
    store = ModelStore(tmp_path / "store")
    follower = pipeline.start(
        "consumer.train", "--follow", "--topic", topic, "--group-id", f"{topic}-train",
        "--checkpoint-dir", str(tmp_path / "ckpt"), "--model-dir", str(store.directory), "--run-dir", "none",
    )  # fmt: skip
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(follower.stdout), daemon=True)
    reader.start()
    try:
        following = lambda: any(line.startswith("following ") for line in lines)  # noqa: E731
        assert poll(lambda: following() or follower.poll() is not None, 180), "the follower did not start"
        assert follower.poll() is None, "".join(lines)[-2000:]

        newest_commit_ms = write_burst(client, topic, BURST)
        written_at = time.monotonic()
        burst = end_offsets(pipeline.bootstrap, topic)
        assert sum(burst.values()) == BURST

        published = poll(lambda: covering(store, burst) is not None, WITHIN_S, 0.2)
        waited = time.monotonic() - written_at
        assert published, (
            f"no version covering {burst} within {WITHIN_S:g} s: "
            f"{[store.info(v) for v in store.versions()]}; follower said: {''.join(lines)[-1500:]}"
        )
        info = covering(store, burst) or store.info(store.latest_version())  # a later version may be latest now
        assert info["kind"] == "model", info  # between checkpoints: the model alone
        assert info["records"] >= BURST
        assert info["newest_commit_ms"] == newest_commit_ms
        assert info["checkpoint_version"] is None  # no checkpoint yet: the first is due after 60 s
        print(f"a version covering the burst was published {waited:.1f} s after its last record")

        import keras  # noqa: PLC0415 - TensorFlow loads only for the check of the published file

        model = keras.saving.load_model(store.latest_model)
        assert model.output_shape == (None, 10)
    finally:
        stop(follower, stdout_read=True)
    # Offsets are committed only with checkpoints: stopping wrote one, a model version of its own.
    final = store.info(store.latest_version())
    assert final["kind"] == "checkpoint" and final["offsets"] == {str(p): o for p, o in sorted(burst.items())}
