"""The project's one Kafka client, confluent-kafka (librdkafka), as one object that holds the settings:
``KafkaClient`` is built once from a command's flags and handed to whatever talks to the broker (topic checks,
group offsets, topics created, producers). tensorflow-io is never imported here.

The low-level helpers below (``partitions_of``, ``watermarks``, ``committed_offsets``, ``commit``) ask through a
consumer the caller already holds; the client's methods open a short-lived one.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

from confluent_kafka import (
    OFFSET_BEGINNING,
    OFFSET_INVALID,
    Consumer,
    KafkaError,
    KafkaException,
    Producer,
    TopicCollection,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient, NewTopic

from stack.config import KafkaSettings, kafka_from_args
from stack.errors import first_line

# How long the broker may take to answer before it counts as unreachable.
BROKER_TIMEOUT_S = 10.0
# How long creating a topic may take.
CREATE_TIMEOUT_S = 30.0
# A commit refused because the group rebalanced under it.
REBALANCE_CODES = {KafkaError.REBALANCE_IN_PROGRESS, KafkaError.ILLEGAL_GENERATION, KafkaError.UNKNOWN_MEMBER_ID}


class SourceError(Exception):
    """The broker or the topic is not usable; the message is the one line the user sees."""


def kafka_reason(error: Exception) -> str:
    """The one-line reason of a Kafka client error (librdkafka's own text when there is one).

    >>> kafka_reason(ValueError("bad\\nsecond line"))
    'bad'
    """
    if isinstance(error, KafkaException) and error.args and isinstance(error.args[0], KafkaError):
        return error.args[0].str()
    return first_line(error)


def error_code(error: Exception) -> int | None:
    """librdkafka's error code of a Kafka client error, None for any other exception."""
    if isinstance(error, KafkaException) and error.args and isinstance(error.args[0], KafkaError):
        return error.args[0].code()
    return None


class _Silent:
    """librdkafka logs every failed connection attempt to stderr; errors reach us as exceptions instead."""

    def log(self, *args, **kwargs) -> None:
        pass


_SILENT: dict[str, object] = {"log_level": 0, "logger": _Silent(), "error_cb": lambda error: None}


@dataclass(frozen=True)
class KafkaClient:
    """The Kafka settings every consumer, producer and admin request of ours starts from."""

    settings: KafkaSettings

    @classmethod
    def of(cls, bootstrap_servers: str) -> KafkaClient:
        """A client of these brokers (a comma-separated list), taken as given.

        >>> KafkaClient.of("127.0.0.1:9092").servers
        '127.0.0.1:9092'
        """
        return cls(KafkaSettings(bootstrap_servers))

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> KafkaClient:
        """The client of a command's Kafka flags (``stack.config.add_flags``) and the environment; raises
        ``stack.config.ConfigError`` when they are unusable."""
        return cls(kafka_from_args(args))

    @property
    def servers(self) -> str:
        """The bootstrap servers, for messages and for clients that take the string (tfio, Spark)."""
        return self.settings.bootstrap_servers

    def config(self, group_id: str | None = None, **overrides: object) -> dict[str, object]:
        """librdkafka settings of every consumer of ours (the ones that matter, with why)."""
        config: dict[str, object] = {
            "bootstrap.servers": self.servers,
            # Offsets are committed by us, after the model used a batch, never on librdkafka's timer.
            "enable.auto.commit": False,
            # A group's committed offset outside the retained records restarts at the earliest one (we say so).
            "auto.offset.reset": "earliest",
            # Only records of committed transactions (librdkafka's default, written out: exactly-once producers).
            "isolation.level": "read_committed",
            # librdkafka's default (1 s) is how long the fetcher waits once its queue is full: a reader that
            # decodes slower than it fetches stalled on it (60k -> 41k records/s measured, docs/benchmarks.md).
            "fetch.queue.backoff.ms": 10,
            # Up to 64 MB fetched ahead of the decoder (default 64 MB too: written out, it bounds memory).
            "queued.max.messages.kbytes": 65536,
            # Fail fast and clearly when no broker answers, instead of librdkafka's silent retrying.
            "socket.connection.setup.timeout.ms": int(BROKER_TIMEOUT_S * 1000),
            **_SILENT,
        }
        if group_id is not None:
            config["group.id"] = group_id
        config.update(overrides)
        return config

    def consumer(self, group_id: str | None = None, **overrides: object) -> Consumer:
        """A consumer with ``config``'s settings; ``SourceError`` when librdkafka refuses them."""
        try:
            return Consumer(self.config(group_id or "mnist-metadata", **overrides))
        except (KafkaException, ValueError) as error:
            raise SourceError(f"cannot use Kafka at {self.servers}: {first_line(error)}") from None

    def producer(self, **overrides: object) -> Producer:
        """A producer of these brokers, as quiet as our consumers; ``overrides`` are librdkafka settings."""
        return Producer({"bootstrap.servers": self.servers, **_SILENT, **overrides})

    def create_topic(self, topic: str, partitions: int = 1) -> None:
        """Create ``topic`` with ``partitions`` partitions (replication 1); an existing topic is kept.
        ``SourceError`` when the broker refuses or does not answer."""
        admin = AdminClient({"bootstrap.servers": self.servers, **_SILENT})
        future = admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1)])[topic]
        try:
            future.result(timeout=CREATE_TIMEOUT_S)
        except Exception as error:  # noqa: BLE001 - KafkaException wraps TOPIC_ALREADY_EXISTS; timeouts are others
            if "TOPIC_ALREADY_EXISTS" not in str(error):
                raise SourceError(f"cannot create topic {topic} on {self.servers}: {kafka_reason(error)}") from None

    def topic_id(self, topic: str) -> str:
        """Kafka's id of ``topic`` (a new one each time a topic of that name is created): what tells a
        recreated topic from the one a checkpoint's offsets belong to. ``SourceError`` when it is missing or the
        broker does not answer."""
        admin = AdminClient({"bootstrap.servers": self.servers, **_SILENT})
        future = admin.describe_topics(TopicCollection([topic]), request_timeout=BROKER_TIMEOUT_S)[topic]
        try:
            return str(future.result(timeout=BROKER_TIMEOUT_S).topic_id)
        except Exception as error:  # noqa: BLE001 - KafkaException for a missing topic; timeouts are others
            raise SourceError(f"cannot describe topic {topic} on {self.servers}: {kafka_reason(error)}") from None

    def check_topic(self, topic: str) -> list[int]:
        """The topic's partitions (see ``partitions_of``)."""
        consumer = self.consumer()
        try:
            return partitions_of(consumer, self, topic)
        finally:
            consumer.close()

    def end_offsets(self, topic: str) -> dict[int, int]:
        """``{partition: end offset}`` of ``topic`` now (where the next record will be written)."""
        consumer = self.consumer()
        try:
            marks = watermarks(consumer, self, topic, partitions_of(consumer, self, topic))
            return {p: end for p, (_, end) in marks.items()}
        finally:
            consumer.close()

    def commit_group_offsets(self, group_id: str, topic: str, offsets: dict[int, int]) -> None:
        """Commit ``{partition: next offset}`` for ``group_id`` from outside the group (a reader that assigns
        itself its partitions, or a checkpoint's offsets)."""
        consumer = self.consumer(group_id)
        try:
            commit(consumer, self, topic, offsets)
        finally:
            consumer.close()

    def committed_records(self, group_id: str, topic: str) -> int:
        """How many retained records of ``topic`` lie before ``group_id``'s committed offsets (0 for a new
        group): the records a run in that group skips."""
        consumer = self.consumer(group_id)
        try:
            partitions = partitions_of(consumer, self, topic)
            committed = committed_offsets(consumer, self, group_id, topic, partitions)
            known = [p for p, offset in committed.items() if offset is not None]
            marks = watermarks(consumer, self, topic, known)
            return sum(max(0, committed[p] - marks[p][0]) for p in known)
        finally:
            consumer.close()

    def nothing_to_read(self, group_id: str, topic: str, wait: float = 1.0) -> bool:
        """Whether a read_committed reader starting at ``group_id``'s committed offsets (the beginning where it has
        none) finds no record of ``topic`` within ``wait`` seconds: the group has read everything committed."""
        consumer = self.consumer(group_id)
        try:
            partitions = partitions_of(consumer, self, topic)
            committed = committed_offsets(consumer, self, group_id, topic, partitions)
            consumer.assign(
                [TopicPartition(topic, p, OFFSET_BEGINNING if o is None else o) for p, o in committed.items()]
            )
            return not any(m.error() is None for m in consumer.consume(num_messages=1, timeout=wait))
        finally:
            consumer.close()

    def seed_group_offsets(self, group_id: str, topic: str, start: str = "earliest") -> dict[int, int]:
        """Commit a start offset on every partition where ``group_id`` has no committed offset yet.

        ``start`` is ``earliest`` (the whole topic) or ``latest`` (only records that arrive from now on). A group
        that has committed offsets continues from them. Returns the start offset per partition. (The talk's tfio
        reader needs this: its librdkafka 1.5 resolves a new group's start with a request Kafka 4 removed.)
        """
        consumer = self.consumer(group_id)
        try:
            partitions = partitions_of(consumer, self, topic)
            committed = committed_offsets(consumer, self, group_id, topic, partitions)
            missing = [p for p, offset in committed.items() if offset is None]
            if missing:
                marks = watermarks(consumer, self, topic, missing)
                fresh = {p: marks[p][1] if start == "latest" else marks[p][0] for p in missing}
                commit(consumer, self, topic, fresh)
                committed.update(fresh)
            return committed
        finally:
            consumer.close()


def _unreachable(client: KafkaClient, error: Exception) -> SourceError:
    reason = kafka_reason(error)
    return SourceError(f"cannot reach Kafka at {client.servers}: no broker answered ({reason}; python -m stack status)")


def partitions_of(consumer: Consumer, client: KafkaClient, topic: str) -> list[int]:
    """The topic's partitions; one-line ``SourceError`` when the broker does not answer or the topic is missing."""
    try:
        metadata = consumer.list_topics(topic, timeout=BROKER_TIMEOUT_S)
    except KafkaException as error:
        raise _unreachable(client, error) from None
    found = metadata.topics.get(topic)
    if found is None or found.error is not None or not found.partitions:
        raise SourceError(
            f"topic {topic} does not exist on {client.servers}: is the connector RUNNING (python -m stack status) "
            "and has a row been loaded (make load-mnist)?"
        )
    return sorted(found.partitions)


def watermarks(
    consumer: Consumer, client: KafkaClient, topic: str, partitions: list[int]
) -> dict[int, tuple[int, int]]:
    """``{partition: (first retained offset, end offset)}`` as the broker says now."""
    try:
        return {
            p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=BROKER_TIMEOUT_S, cached=False)
            for p in partitions
        }
    except KafkaException as error:
        raise _unreachable(client, error) from None


def committed_offsets(
    consumer: Consumer, client: KafkaClient, group_id: str, topic: str, partitions: list[int]
) -> dict[int, int | None]:
    """``{partition: committed offset or None}`` of ``group_id``."""
    try:
        found = consumer.committed([TopicPartition(topic, p) for p in partitions], timeout=BROKER_TIMEOUT_S)
    except KafkaException as error:
        raise SourceError(
            f"cannot read the offsets of group {group_id} from Kafka at {client.servers}: {kafka_reason(error)}"
        ) from None
    return {tp.partition: (None if tp.offset == OFFSET_INVALID or tp.offset < 0 else tp.offset) for tp in found}


def commit(consumer: Consumer, client: KafkaClient, topic: str, offsets: dict[int, int]) -> None:
    """Commit ``{partition: next offset}`` and wait for the broker to confirm it."""
    try:
        consumer.commit(offsets=topic_partitions(topic, offsets), asynchronous=False)
    except KafkaException as error:
        why = kafka_reason(error)
        raise SourceError(f"Kafka at {client.servers} refused the commit of offsets on {topic}: {why}") from None


def topic_partitions(topic: str, offsets: dict[int, int]) -> list[TopicPartition]:
    """``{partition: offset}`` of ``topic`` as the client's ``TopicPartition`` list."""
    return [TopicPartition(topic, p, o) for p, o in offsets.items()]
