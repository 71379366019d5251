"""The log keeps what training replays: the data topics never delete a record (DATA_RETENTION_MS, default -1)."""

from __future__ import annotations

import uuid

from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic

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
