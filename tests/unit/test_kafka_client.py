"""The Kafka client's settings and the read options' checks: what holds before any broker is asked."""

import pytest

from consumer.kafka.batches import ReadOptions, open_batches
from consumer.kafka.client import KafkaClient
from consumer.kafka.reader import CommittingReader
from stack.config import ConfigError, KafkaSettings

# Nothing listens here: a test that reached the broker would fail on it instead of passing.
NOWHERE = KafkaClient.of("127.0.0.1:1")


def test_every_consumer_reads_committed_records_and_commits_only_when_told():
    config = NOWHERE.config("g", **{"fetch.wait.max.ms": 50})
    assert config["bootstrap.servers"] == "127.0.0.1:1"
    assert config["group.id"] == "g"
    assert config["enable.auto.commit"] is False
    assert config["isolation.level"] == "read_committed"
    assert config["fetch.wait.max.ms"] == 50


def test_the_client_is_built_from_the_settings_the_commands_parse():
    assert KafkaClient(KafkaSettings.from_env({}, "10.0.0.1:9092")).servers == "10.0.0.1:9092"
    with pytest.raises(ConfigError, match="not host:port"):
        KafkaSettings.from_env({}, "nowhere")


def test_a_group_member_cannot_be_given_offsets_or_a_bound():
    with pytest.raises(ValueError, match="group's committed offsets"):
        CommittingReader(NOWHERE, ReadOptions("t", "g", 8, 1.0, offsets={0: 5}, group=True))


def test_the_tfio_source_reads_only_a_group_until_idle():
    with pytest.raises(ValueError, match="tfio source"):
        open_batches(NOWHERE, ReadOptions("t", "g", 8, None), "tfio")
    with pytest.raises(ValueError, match="tfio source"):
        open_batches(NOWHERE, ReadOptions("t", "g", 8, 1.0, until={0: 3}), "tfio")
