"""The Kafka source over tensorflow-io's ``KafkaGroupIODataset``, with the checks tfio does not make.

Traps this module designs around (see docs/troubleshooting.md):

* tfio never raises for a wrong address or a missing topic: it logs and yields nothing. ``KafkaClient.check_topic``
  asks the broker first (``consumer.kafka.client``, the project's Kafka client) and fails with one line.
* tfio 0.37.1 bundles librdkafka 1.5.0, which resolves ``auto.offset.reset`` with ListOffsets v0, a request
  Kafka 4 removed: a group without committed offsets waits forever. ``KafkaClient.seed_group_offsets`` commits the
  beginning offsets for such a group first, so librdkafka starts from them and never needs that request.
* Every tfio Kafka dataset of a process shares one librdkafka consumer: a second one silently steals or gets
  nothing. ``kafka_dataset`` refuses to open a second one in the same process.
* A group dataset can be iterated once: callers that need several epochs keep what they read.
"""

from __future__ import annotations

import sys

import tensorflow as tf

from consumer.kafka.client import KafkaClient, SourceError

# The talk's consumer settings, plus where a new group starts (its committed offsets are seeded anyway).
TALK_CONFIGURATION = ("session.timeout.ms=10000", "max.poll.interval.ms=10000", "auto.offset.reset=earliest")
# One empty poll lasts this long; the stream ends after idle_timeout / poll + 1 empty polls in a row.
MESSAGE_POLL_TIMEOUT_MS = 1000

_opened: list[str] = []


def _import_tfio():
    """tensorflow_io, imported only by this source: it has no wheels for Python 3.13 (pyproject.toml)."""
    try:
        import tensorflow_io as tfio  # noqa: PLC0415 - optional: no wheels for every Python, see below
    except ImportError:
        version = ".".join(map(str, sys.version_info[:2]))
        raise SourceError(
            f"--source tfio needs tensorflow-io, which exists for Python <= 3.12 only (this is Python {version}); "
            "use the default --source kafka, or make setup PYTHON=python3.12"
        ) from None
    return tfio


def kafka_dataset(
    client: KafkaClient,
    topic: str,
    group_id: str,
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
    client.check_topic(topic)
    client.seed_group_offsets(group_id, topic, start)
    _opened.append(topic)
    return tfio.experimental.streaming.KafkaGroupIODataset(
        topics=[topic],
        group_id=group_id,
        servers=client.servers,
        stream_timeout=int(idle_timeout_s * 1000),
        message_poll_timeout=MESSAGE_POLL_TIMEOUT_MS,
        configuration=[*configuration, f"batch.num.messages={chunk}"],
    )
