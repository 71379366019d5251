"""The Kafka source over tensorflow-io's ``KafkaGroupIODataset``, with the checks tfio does not make.

Traps this module designs around (see README, Troubleshooting):

* tfio never raises for a wrong address or a missing topic: it logs and yields nothing. ``check_topic``
  asks the broker first (kafka-python) and fails with one line.
* tfio 0.37.1 bundles librdkafka 1.5.0, which resolves ``auto.offset.reset`` with ListOffsets v0, a request
  Kafka 4 removed: a group without committed offsets waits forever. ``seed_group_offsets`` commits the
  beginning offsets for such a group first, so librdkafka starts from them and never needs that request.
* Every tfio Kafka dataset of a process shares one librdkafka consumer: a second one silently steals or gets
  nothing. ``kafka_dataset`` refuses to open a second one in the same process.
* A group dataset can be iterated once: callers that need several epochs keep what they read.
"""

from __future__ import annotations

import sys

import tensorflow as tf
from kafka import KafkaConsumer, TopicPartition
from kafka.errors import KafkaError, KafkaTimeoutError
from kafka.structs import OffsetAndMetadata

# The talk's consumer settings, plus where a new group starts (its committed offsets are seeded anyway).
TALK_CONFIGURATION = ("session.timeout.ms=10000", "max.poll.interval.ms=10000", "auto.offset.reset=earliest")
# One empty poll lasts this long; the stream ends after idle_timeout / poll + 1 empty polls in a row.
MESSAGE_POLL_TIMEOUT_MS = 1000

_opened: list[str] = []


class SourceError(Exception):
    """The broker or the topic is not usable; the message is the one line the user sees."""


def _import_tfio():
    """tensorflow_io, imported only by this source: it has no wheels for Python 3.13 (pyproject.toml)."""
    try:
        import tensorflow_io as tfio
    except ImportError:
        version = ".".join(map(str, sys.version_info[:2]))
        raise SourceError(
            f"--source tfio needs tensorflow-io, which exists for Python <= 3.12 only (this is Python {version}); "
            "use the default --source kafka-python, or make setup PYTHON=python3.12"
        ) from None
    return tfio


def _consumer(bootstrap: str, **kwargs) -> KafkaConsumer:
    try:
        return KafkaConsumer(bootstrap_servers=bootstrap, request_timeout_ms=10000, **kwargs)
    except KafkaTimeoutError:
        raise SourceError(f"cannot reach Kafka at {bootstrap}: no broker answered (python -m stack status)") from None
    except (KafkaError, OSError, ValueError) as error:
        raise SourceError(f"cannot reach Kafka at {bootstrap}: {error}") from None


def check_topic(bootstrap: str, topic: str) -> list[int]:
    """The topic's partitions; one-line ``SourceError`` when the broker does not answer or the topic is missing."""
    consumer = _consumer(bootstrap)
    try:
        partitions = consumer.partitions_for_topic(topic)
    except KafkaError as error:
        raise SourceError(f"cannot read topic metadata from Kafka at {bootstrap}: {error}") from None
    finally:
        consumer.close()
    if not partitions:
        raise SourceError(
            f"topic {topic} does not exist on {bootstrap}: is the connector RUNNING (python -m stack status) "
            "and has a row been loaded (make load-mnist)?"
        )
    return sorted(partitions)


def seed_group_offsets(bootstrap: str, group_id: str, topic: str, start: str = "earliest") -> dict[int, int]:
    """Commit a start offset on every partition where ``group_id`` has no committed offset yet.

    ``start`` is ``earliest`` (the whole topic) or ``latest`` (only records that arrive from now on). A group
    that has committed offsets continues from them. Returns the start offset per partition.
    """
    consumer = _consumer(bootstrap, group_id=group_id, enable_auto_commit=False)
    try:
        partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or [])]
        committed = {tp: consumer.committed(tp) for tp in partitions}
        missing = [tp for tp, offset in committed.items() if offset is None]
        if missing:
            fresh = consumer.end_offsets(missing) if start == "latest" else consumer.beginning_offsets(missing)
            consumer.commit({tp: OffsetAndMetadata(fresh[tp], "", -1) for tp in missing})
            committed.update({tp: fresh[tp] for tp in missing})
        return {tp.partition: offset for tp, offset in committed.items()}
    except KafkaError as error:
        raise SourceError(f"cannot prepare consumer group {group_id} on {bootstrap}: {error}") from None
    finally:
        consumer.close()


def kafka_dataset(
    topic: str,
    group_id: str,
    servers: str,
    idle_timeout_s: float,
    start: str = "earliest",
    configuration: tuple[str, ...] = TALK_CONFIGURATION,
    chunk: int = 1024,
) -> tf.data.Dataset:
    """A dataset of ``(message, key)`` string scalars from ``topic``, ending after ``idle_timeout_s`` idle seconds.

    Checks the broker and the topic first and seeds the group's offsets (see module docstring): a new group
    starts at ``start`` (``earliest`` or ``latest``), a known group where it stopped. At most one per process.
    tfio hands records over in chunks of ``batch.num.messages`` and holds a partial chunk until the stream
    times out, so ``chunk`` should be the batch size the caller uses (tfio's default, 10,000, makes a live
    stream arrive in lumps of 10,000 and its tail wait for the idle timeout).
    """
    tfio = _import_tfio()
    if _opened:
        raise RuntimeError(
            f"a tensorflow-io Kafka dataset is already open in this process ({_opened[0]}); tfio shares one "
            "consumer per process, so read one topic per process"
        )
    check_topic(servers, topic)
    seed_group_offsets(servers, group_id, topic, start)
    _opened.append(topic)
    return tfio.experimental.streaming.KafkaGroupIODataset(
        topics=[topic],
        group_id=group_id,
        servers=servers,
        stream_timeout=int(idle_timeout_s * 1000),
        message_poll_timeout=MESSAGE_POLL_TIMEOUT_MS,
        configuration=[*configuration, f"batch.num.messages={chunk}"],
    )
