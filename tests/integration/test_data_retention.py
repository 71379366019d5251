"""The log keeps what training replays: the data topics never delete a record (DATA_RETENTION_MS, default -1)."""

from __future__ import annotations

import uuid

from confluent_kafka import Producer, TopicPartition
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic

from consumer.kafka.client import KafkaClient
from consumer.kafka.reader import CommittingReader, ReadOptions
from stack import kafka
from stack.contract import MNIST

RETENTION = ("retention.ms", "retention.bytes")


def retention_of(bootstrap: str, topics: tuple[str, ...]) -> dict[str, tuple[str, str]]:
    """``{topic: (retention.ms, retention.bytes)}`` as the broker describes them."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    resources = [ConfigResource(ConfigResource.Type.TOPIC, topic) for topic in topics]
    described = {r.name: f.result(timeout=10) for r, f in admin.describe_configs(resources).items()}
    return {topic: tuple(described[topic][name].value for name in RETENTION) for topic in topics}


def test_up_creates_the_replayed_topics_with_retention_that_never_deletes(pipeline):
    topics = MNIST.replayed_topics()

    assert retention_of(pipeline.bootstrap, topics) == {topic: ("-1", "-1") for topic in topics}


def test_up_sets_the_retention_of_a_topic_that_already_exists(pipeline):
    topic = f"test-retention-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": pipeline.bootstrap})
    created = NewTopic(topic, num_partitions=1, replication_factor=1, config={"retention.ms": "60000"})
    admin.create_topics([created])[topic].result(timeout=10)
    assert retention_of(pipeline.bootstrap, (topic,))[topic][0] == "60000"

    # What `up` runs, on a topic of this test's own: the stack's topics stay as they are.
    for _ in range(2):  # idempotent
        assert kafka.ensure_topics(pipeline.config, (topic,), retained=(topic,)) == []

    assert retention_of(pipeline.bootstrap, (topic,)) == {topic: ("-1", "-1")}
    admin.delete_topics([topic])


def test_a_reader_that_retention_overtakes_mid_run_says_so_and_goes_on(pipeline):
    """Records deleted (as retention does) under a running reader: it warns with the offsets it lost and reads on
    from the earliest retained record, never resets silently. The records deleted belong to a transaction still
    open, so a read_committed reader cannot have fetched them before they go."""
    topic = f"test-overtaken-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": pipeline.bootstrap})
    admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])[topic].result(timeout=10)
    plain = Producer({"bootstrap.servers": pipeline.bootstrap})
    for offset in range(10):
        plain.produce(topic, value=f"record {offset}".encode())
    assert plain.flush(10) == 0
    options = ReadOptions(topic, f"overtaken-{uuid.uuid4().hex[:8]}", batch_size=100, idle_timeout_s=3)
    reader = CommittingReader(KafkaClient.of(pipeline.bootstrap), options)
    warnings: list[str] = []
    reader.warn = warnings.append
    read: list[bytes] = []
    try:
        for number, batch in enumerate(reader.batches()):
            read.extend(batch.values)
            if number == 0:
                retention_overtakes(pipeline.bootstrap, admin, topic)
    finally:
        reader.close()
        admin.delete_topics([topic])

    assert warnings == [
        f"warning: retention deleted {topic} partition 0 offsets 10..499 before they were read: up to 490 records "
        "lost, going on from offset 500"
    ]
    assert read == [f"record {offset}".encode() for offset in (*range(10), *range(500, 1010))]


def retention_overtakes(bootstrap: str, admin: AdminClient, topic: str) -> None:
    """Offsets 10..1009 written in one transaction; 10..499 deleted before it commits."""
    producer = Producer({"bootstrap.servers": bootstrap, "transactional.id": f"{topic}-writer"})
    producer.init_transactions(10)
    producer.begin_transaction()
    for offset in range(10, 1010):
        producer.produce(topic, value=f"record {offset}".encode())
    assert producer.flush(10) == 0
    admin.delete_records([TopicPartition(topic, 0, 500)])[TopicPartition(topic, 0, 500)].result(timeout=10)
    producer.commit_transaction(10)
