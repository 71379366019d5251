"""Training on a topic of changes (inserts, updates, deletes with the agreed headers), on a real broker: one-shot
``consumer.train`` learns the table as of what it read; ``--follow`` learns every change, skips deletes, publishes
when the topic goes quiet, and refuses a topic that was recreated under its checkpoint.

Each test writes its own topic with ``consumer.kafka.writer`` (no Connect involved).
"""

from __future__ import annotations

import signal
import time
import uuid

from confluent_kafka.admin import AdminClient, NewPartitions

from consumer.kafka.client import KafkaClient
from consumer.kafka.writer import TopicWriter
from consumer.records.codec import encode_pixels
from consumer.store.checkpoints import CheckpointDir
from consumer.store.versions import ModelStore
from loader.source import load_sample
from probes.deadline import poll
from probes.topics import end_offsets, group_offsets
from stack.contract import MNIST

PARTITIONS = 2


def own_topic(pipeline, name: str) -> tuple[KafkaClient, str]:
    client = KafkaClient.of(pipeline.bootstrap)
    topic = f"test.{name}.{uuid.uuid4().hex[:8]}"
    client.create_topic(topic, partitions=PARTITIONS)
    return client, topic


def write_changes(client: KafkaClient, topic: str, changes: list[tuple[int, str, int]]) -> int:
    """Write ``(row id, op, sample index)`` changes as the connector does: label key, CSV pixels, the row's table
    and id and the operation in headers, partitioned by the row's id."""
    sample = load_sample()["train"]
    writer = TopicWriter(client, topic)
    for row_id, op, index in changes:
        headers = [
            (MNIST.table_header, b"mnist_train"),
            (MNIST.id_header, str(row_id).encode()),
            (MNIST.op_header, op.encode()),
        ]
        key = str(int(sample.labels[index])).encode()
        writer.write(key, encode_pixels(sample.images[index]), row_id % PARTITIONS, headers)
    return writer.flush()


#: 60 rows inserted, rows 1..10 updated (another image and label), rows 51..60 deleted: 80 records, 50 live rows.
CHANGES = [(i, "c", i) for i in range(1, 61)]
CHANGES += [(i, "u", 100 + i) for i in range(1, 11)]
CHANGES += [(i, "d", i) for i in range(51, 61)]


def test_one_shot_train_learns_the_table_and_follow_learns_every_change(pipeline, tmp_path):
    client, topic = own_topic(pipeline, "changes")
    assert write_changes(client, topic, CHANGES) == 80
    group = f"oneshot-{uuid.uuid4().hex[:8]}"
    trained = pipeline.run(
        "consumer.train", "--topic", topic, "--group-id", group, "--epochs", "1", "--idle-timeout", "3",
        "--validation-split", "0", "--model-dir", str(tmp_path / "store"), "--quiet",
    )  # fmt: skip
    assert trained.returncode == 0, trained.stdout[-2000:] + trained.stderr[-2000:]
    assert f"read 80 records from {topic} (50 rows)" in trained.stdout
    assert "trained on 50 records" in trained.stdout
    # Committed once the model was saved, up to where it read.
    assert group_offsets(pipeline.bootstrap, group, topic) == end_offsets(pipeline.bootstrap, topic)

    checkpoints = CheckpointDir(tmp_path / "ckpt")
    followed = pipeline.run(
        "consumer.train", "--follow", "--topic", topic, "--group-id", f"f-{group}", "--idle-timeout", "3",
        "--checkpoint-dir", str(checkpoints.root), "--model-dir", str(tmp_path / "follow-store"), "--run-dir", "none",
    )  # fmt: skip
    assert followed.returncode == 0, followed.stdout[-2000:] + followed.stderr[-2000:]
    assert "10 deletes skipped: a model cannot unlearn" in followed.stdout
    final = checkpoints.latest()
    assert final.records == 70 and final.manifest["deletes_skipped"] == 10
    assert final.records + final.malformed + 10 == sum(final.offsets.values())


def test_a_quiet_follower_checkpoints_and_publishes_its_last_records(pipeline, tmp_path):
    client, topic = own_topic(pipeline, "quiet")
    checkpoints, store = CheckpointDir(tmp_path / "ckpt"), ModelStore(tmp_path / "store")
    follower = pipeline.start(
        "consumer.train", "--follow", "--topic", topic, "--group-id", f"quiet-{uuid.uuid4().hex[:8]}",
        "--checkpoint-dir", str(checkpoints.root), "--model-dir", str(store.directory), "--run-dir", "none",
        "--checkpoint-every-records", "1000", "--checkpoint-every-seconds", "6",
    )  # fmt: skip
    try:
        assert write_changes(client, topic, [(i, "c", i) for i in range(1, 51)]) == 50
        written_at = time.monotonic()

        def covered() -> bool:
            latest = checkpoints.latest()
            return (latest is not None and latest.records == 50) or follower.poll() is not None

        # The follower's start (TensorFlow, the broker) counts in; the point is that nothing more has to arrive.
        assert poll(covered, 120), "no checkpoint covered the burst while the topic stayed quiet"
        assert follower.poll() is None, follower.communicate()
        latest = checkpoints.latest()
        assert latest.offsets == end_offsets(pipeline.bootstrap, topic)
        # The checkpoint is on disk a moment before the version it names is published.
        assert poll(lambda: store.latest_version() == latest.manifest["model_version"], 30), store.describe()
        print(f"checkpoint {time.monotonic() - written_at:.1f} s after the burst")
    finally:
        follower.send_signal(signal.SIGTERM)
        out, err = follower.communicate(timeout=120)
    assert follower.returncode == 0, out[-2000:] + err[-2000:]


def test_a_busy_follower_learns_a_partition_added_to_its_topic(pipeline, tmp_path):
    """With a 600 s checkpoint interval and no publishing between checkpoints the follower's reader is not reopened
    for minutes (a new reader would see the new partition); a partition added meanwhile is read all the same, from
    its first record, and its offsets reach the checkpoint."""
    client, topic = own_topic(pipeline, "grown")
    checkpoints = CheckpointDir(tmp_path / "ckpt")
    follower = pipeline.start(
        "consumer.train", "--follow", "--topic", topic, "--group-id", f"grown-{uuid.uuid4().hex[:8]}",
        "--checkpoint-dir", str(checkpoints.root), "--model-dir", str(tmp_path / "store"), "--run-dir", "none",
        "--checkpoint-every-records", "10", "--checkpoint-every-seconds", "600", "--publish-every-seconds", "0",
    )  # fmt: skip
    try:
        write_changes(client, topic, [(i, "c", i) for i in range(1, 21)])
        assert poll(lambda: learned(checkpoints) >= 20 or follower.poll() is not None, 120)
        assert follower.poll() is None, follower.communicate()
        admin = AdminClient({"bootstrap.servers": pipeline.bootstrap})
        admin.create_partitions([NewPartitions(topic, PARTITIONS + 1)])[topic].result(30)
        writer = TopicWriter(client, topic)
        for i in range(10):
            writer.write(b"1", encode_pixels(load_sample()["train"].images[i]), PARTITIONS, None)
        assert writer.flush() == 10

        def learned_added() -> bool:
            latest = checkpoints.latest()
            return latest is not None and latest.offsets.get(PARTITIONS, 0) >= 10

        assert poll(learned_added, 60), f"checkpoint offsets {checkpoints.latest().offsets}: partition not read"
    finally:
        follower.send_signal(signal.SIGTERM)
        out, err = follower.communicate(timeout=120)
    assert follower.returncode == 0, out[-2000:] + err[-2000:]
    assert f"{topic} gained partitions [{PARTITIONS}]" in err


def learned(checkpoints: CheckpointDir) -> int:
    """Records the newest checkpoint learned (0 before the first)."""
    latest = checkpoints.latest()
    return 0 if latest is None else latest.records


def test_follow_refuses_a_topic_recreated_under_its_checkpoint(pipeline, tmp_path):
    client, topic = own_topic(pipeline, "recreated")
    write_changes(client, topic, [(i, "c", i) for i in range(1, 21)])
    args = (
        "consumer.train", "--follow", "--topic", topic, "--group-id", f"re-{uuid.uuid4().hex[:8]}",
        "--idle-timeout", "3", "--checkpoint-dir", str(tmp_path / "ckpt"), "--model-dir", str(tmp_path / "store"),
        "--run-dir", "none",
    )  # fmt: skip
    first = pipeline.run(*args)
    assert first.returncode == 0, first.stdout[-2000:] + first.stderr[-2000:]

    admin = AdminClient({"bootstrap.servers": pipeline.bootstrap})
    admin.delete_topics([topic])[topic].result(30)
    assert poll(lambda: topic not in admin.list_topics(timeout=10).topics, 60), "the topic was not deleted"

    def recreated() -> bool:
        try:
            client.create_topic(topic, partitions=PARTITIONS)
            return True
        except Exception:  # noqa: BLE001 - the broker may still be deleting it
            return False

    assert poll(recreated, 60)
    write_changes(client, topic, [(i, "c", i) for i in range(1, 6)])
    second = pipeline.run(*args)
    assert second.returncode == 1, second.stdout[-2000:] + second.stderr[-2000:]
    assert second.stderr.count("\n") == 1, second.stderr
    assert f"topic {topic} was recreated" in second.stderr and "--from-start-on-new-topic" in second.stderr

    third = pipeline.run(*args, "--from-start-on-new-topic")
    assert third.returncode == 0, third.stdout[-2000:] + third.stderr[-2000:]
    assert "in total 25 records" in third.stdout
