"""One way to open decoded batches from either source; train, evaluate, predict and the benchmarks share it.

``open_batches`` returns a ``Stream``: decoded batches (images, labels, the malformed count, and the commit to
call once the model has used the batch), where it starts, and warning lines for the user.

* ``kafka`` (default): the project's Kafka client (``consumer.kafka.client``) and the NumPy decode
  (``consumer.records.codec``). Offsets are committed only by the batch's ``commit``: at-least-once for the model.
* ``tfio``: the talk's tensorflow-io ``KafkaGroupIODataset`` and the TensorFlow decode. librdkafka commits
  on its own timer there, so ``commit`` does nothing.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np

from consumer.kafka.client import Batch, CommittingReader, check_topic
from consumer.records.codec import decode_batch

SOURCES = ("kafka", "tfio")


def source_name(text: str) -> str:
    """``--source`` values; ``kafka-python``, the name of the default before it moved to confluent-kafka, still
    works."""
    name = "kafka" if text == "kafka-python" else text
    if name not in SOURCES:
        raise argparse.ArgumentTypeError(f"invalid choice: {text!r} (choose from {', '.join(SOURCES)})")
    return name


def add_source_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--source",
        type=source_name,
        default="kafka",
        metavar="{kafka,tfio}",
        help="kafka (default): confluent-kafka and the NumPy decode, offsets committed after the model used a "
        "batch, so a killed run resumes without skipping records; tfio: the talk's KafkaGroupIODataset "
        "(librdkafka auto-commits every 5 s)",
    )


@dataclass
class DecodedBatch:
    """A batch ready for the model, and ``commit`` to call once the model has used it."""

    images: np.ndarray
    labels: np.ndarray
    malformed: int
    commit: Callable[[], None]
    #: The raw records (kafka source only): values, keys, headers and offsets; ``valid`` marks which of them
    #: are in ``images``/``labels``, in order.
    raw: Batch | None = None
    valid: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.labels)


@dataclass
class Stream:
    batches: Iterator[DecodedBatch]
    where: str  # for the user's first line: the source and where it starts
    notes: list[str] = field(default_factory=list)
    reader: CommittingReader | None = None  # kafka source: positions, lag, the consumer itself


def open_batches(
    source: str,
    topic: str,
    group_id: str,
    servers: str,
    batch_size: int,
    idle_timeout_s: float | None,
    start: str = "earliest",
    offsets: dict[int, int] | None = None,
    until: dict[int, int] | None = None,
    group: bool = False,
    instance: str | None = None,
) -> Stream:
    """Decoded batches of up to ``batch_size`` records of ``topic`` for ``group_id``.

    The stream ends after ``idle_timeout_s`` seconds without records (``None``: never), or with ``until``
    (kafka source), once every partition reached that offset. A new group starts at ``start``
    (``earliest``/``latest``), a known one after its committed offsets, and ``offsets`` (a checkpoint's,
    kafka source) wins over both. Raises ``consumer.kafka.client.SourceError`` (one line) when the broker or the
    topic is not usable, at the start or while reading. ``group`` (kafka source): join the consumer group, so
    processes with the same ``group_id`` share the partitions (``instance``: static membership); see
    ``consumer.kafka.client.CommittingReader``.
    """
    if source == "tfio":
        if offsets is not None or until is not None or idle_timeout_s is None:
            raise ValueError("the tfio source reads a group from its committed offsets until idle, nothing else")
        return _tfio_batches(topic, group_id, servers, batch_size, idle_timeout_s, start)
    reader = CommittingReader(
        topic, group_id, servers, idle_timeout_s, batch_size, start, offsets, until, group, instance
    )

    def batches() -> Iterator[DecodedBatch]:
        try:
            for batch in reader.batches():
                decoded = decode_batch(batch.values, batch.keys)
                yield DecodedBatch(
                    decoded.images,
                    decoded.labels,
                    decoded.malformed,
                    lambda batch=batch: reader.commit(batch),
                    batch,
                    decoded.valid,
                )
        finally:
            reader.close()

    starts = ", ".join(f"partition {p} offset {o}" for p, o in sorted(reader.start_offsets.items()))
    if group:
        where = f"kafka, commits after each batch, a member of the group sharing its partitions, starting at {starts}"
    else:
        where = f"kafka, commits after each batch, starting at {starts}"
    return Stream(batches(), where, reader.notes, reader)


def _tfio_batches(topic: str, group_id: str, servers: str, batch_size: int, idle_timeout_s: float, start: str):
    from consumer.kafka.tfio_source import kafka_dataset
    from consumer.records.tf_decode import decode_csv_batch

    dataset = kafka_dataset(topic, group_id, servers, idle_timeout_s, start, chunk=batch_size)
    decoded = dataset.batch(batch_size).map(decode_csv_batch)

    def batches() -> Iterator[DecodedBatch]:
        for images, labels, malformed in decoded:
            yield DecodedBatch(images.numpy(), labels.numpy(), int(malformed), lambda: None)
        # tfio ends quietly when the broker stops answering: idle counts only if the broker answers now.
        check_topic(servers, topic)

    return Stream(batches(), "tfio")
