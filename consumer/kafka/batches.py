"""One way to open decoded batches from either source; train, evaluate, predict and the benchmarks share it.

``open_batches`` returns a ``Stream``: decoded batches (images, labels, the malformed count, and the commit to
call once the model has used the batch), where it starts, and warning lines for the user.

* ``kafka`` (default): the project's committing reader (``consumer.kafka.reader``) and the NumPy decode
  (``consumer.records.codec``). Offsets are committed only by the batch's ``commit``: at-least-once for the model.
* ``tfio``: the talk's tensorflow-io ``KafkaGroupIODataset`` and the TensorFlow decode. librdkafka commits
  on its own timer there, so ``commit`` does nothing.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np

from consumer.kafka.client import KafkaClient
from consumer.kafka.reader import Batch, CommittingReader, ReadOptions
from consumer.records.codec import MNIST_FORMAT, RecordFormat, decode_batch

__all__ = ["SOURCES", "DecodedBatch", "ReadOptions", "Stream", "add_source_flag", "open_batches", "source_name"]

SOURCES = ("kafka", "tfio")
#: The tfio source's TensorFlow decode knows MNIST's records only.
TFIO_MNIST_ONLY = "the tfio source decodes MNIST's records only; read other datasets with --source kafka"


def source_name(text: str) -> str:
    """``--source`` values; ``kafka-python``, the name of the default before it moved to confluent-kafka, still
    works."""
    name = "kafka" if text == "kafka-python" else text
    if name not in SOURCES:
        raise argparse.ArgumentTypeError(f"invalid choice: {text!r} (choose from {', '.join(SOURCES)})")
    return name


def add_source_flag(parser: argparse.ArgumentParser) -> None:
    """``--source``: which reader ``open_batches`` uses."""
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

    def received(self) -> int:
        """Records read for this batch, decoded or not."""
        return len(self.raw) if self.raw is not None else len(self.labels) + self.malformed

    def offsets(self) -> dict[int, int]:
        """``{partition: next offset}`` after this batch (kafka source; empty for tfio)."""
        return dict(self.raw.next_offsets) if self.raw is not None else {}

    def partitions(self) -> list[int]:
        """The partition of each raw record, in order (kafka source; empty for tfio)."""
        return list(self.raw.partitions) if self.raw is not None else []

    def headers(self) -> list[list[tuple[str, bytes]] | None]:
        """Each record's headers, in reading order (kafka source; empty for tfio)."""
        return list(self.raw.headers) if self.raw is not None else []


@dataclass
class Stream:
    """Decoded batches, where they start, and warning lines for the user; with the kafka source, the reader's
    positions, lag, group metadata and stop, asked through the stream."""

    batches: Iterator[DecodedBatch]
    source: str
    notes: list[str] = field(default_factory=list)
    reader: CommittingReader | None = None  # kafka source only
    group: bool = False

    def describe(self, commits: str = "commits after each batch") -> str:
        """The user's first-line words for the source and where it starts; ``commits`` says how offsets move.

        >>> Stream(iter(()), "tfio").describe()
        'tfio'
        """
        if self.reader is None:
            return self.source
        starts = ", ".join(f"partition {p} offset {o}" for p, o in sorted(self.reader.start_offsets.items()))
        member = ", a member of the group sharing its partitions" if self.group else ""
        return f"{self.source}, {commits}{member}, starting at {starts}"

    def start_offsets(self) -> dict[int, int]:
        """``{partition: first offset read}`` (kafka source; empty for tfio)."""
        return dict(self.reader.start_offsets) if self.reader is not None else {}

    def positions(self) -> dict[int, int]:
        """``{partition: next offset to read}`` (kafka source; empty for tfio)."""
        return dict(self.reader.position) if self.reader is not None else {}

    def lag(self) -> int | None:
        """Records on the topic past our position as the broker says now; None for tfio."""
        return self.reader.lag() if self.reader is not None else None

    def group_metadata(self) -> object:
        """The consumer's group metadata, for a transactional producer (kafka source)."""
        return self._kafka().group_metadata()

    def rewind(self, batch: DecodedBatch) -> None:
        """Read ``batch`` again from the partitions this process still holds (its transaction was aborted)."""
        if batch.raw is not None:
            self._kafka().rewind(batch.raw)

    def when_quiet(self, busy: Callable[[], bool], work: Callable[[], None]) -> None:
        """While ``busy()``, reading the next batch does not wait for records: when none is queued, it calls
        ``work()`` (finish what is in hand) and then waits (kafka source)."""
        reader = self._kafka()
        reader.busy, reader.on_quiet = busy, work

    def revocations(self) -> int:
        """How many times the group took partitions away so far (kafka source): a batch read before a change of
        this count may hold records that are no longer this process's."""
        return self._kafka().revocations

    def commit_offsets(self, offsets: dict[int, int]) -> None:
        """Commit ``{partition: next offset}`` through the stream's consumer (kafka source)."""
        self._kafka().commit_offsets(offsets)

    def stop(self) -> None:
        """End the batches after the one in hand (kafka source; tfio's wait cannot be told to stop)."""
        if self.reader is not None:
            self.reader.stop()

    @property
    def stoppable(self) -> bool:
        """Whether ``stop`` ends the stream (the kafka source); tfio needs a KeyboardInterrupt instead."""
        return self.reader is not None

    def close(self) -> None:
        """Close the reader (a generator never started has no finally to run); closing twice is harmless."""
        self.batches.close()
        if self.reader is not None:
            try:
                self.reader.close()
            except RuntimeError:
                pass  # already closed

    def _kafka(self) -> CommittingReader:
        if self.reader is None:
            raise ValueError(f"the {self.source} source has no Kafka consumer of ours")
        return self.reader


def open_batches(
    client: KafkaClient, options: ReadOptions, source: str = "kafka", fmt: RecordFormat = MNIST_FORMAT
) -> Stream:
    """Decoded batches of ``options`` (see ``consumer.kafka.reader.ReadOptions``) from ``source``, records of
    ``fmt`` (MNIST's by default; the tfio source decodes MNIST's only, ``ValueError`` else).

    Raises ``consumer.kafka.client.SourceError`` (one line) when the broker or the topic is not usable, at the
    start or while reading. The tfio source reads a group from its committed offsets (``start`` for a new one)
    until idle: ``offsets``, ``until``, ``group`` and a ``None`` idle timeout are the kafka source's only.
    """
    if source == "tfio":
        if fmt != MNIST_FORMAT:
            raise ValueError(TFIO_MNIST_ONLY)
        if options.offsets is not None or options.until is not None or options.idle_timeout_s is None:
            raise ValueError("the tfio source reads a group from its committed offsets until idle, nothing else")
        return _tfio_batches(client, options)
    reader = CommittingReader(client, options)

    def batches() -> Iterator[DecodedBatch]:
        try:
            for batch in reader.batches():
                decoded = decode_batch(batch.values, batch.keys, fmt)
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

    return Stream(batches(), "kafka", reader.notes, reader, options.group)


def _tfio_batches(client: KafkaClient, options: ReadOptions) -> Stream:
    # tensorflow_io and TensorFlow load only for the tfio source: the kafka source runs without them.
    from consumer.kafka.tfio_source import kafka_dataset  # noqa: PLC0415 - imports TensorFlow and tensorflow_io
    from consumer.records.tf_decode import decode_csv_batch  # noqa: PLC0415 - imports TensorFlow

    dataset = kafka_dataset(
        client, options.topic, options.group_id, options.idle_timeout_s, options.start, chunk=options.batch_size
    )
    decoded = dataset.batch(options.batch_size).map(decode_csv_batch)

    def batches() -> Iterator[DecodedBatch]:
        for images, labels, malformed in decoded:
            yield DecodedBatch(images.numpy(), labels.numpy(), int(malformed), lambda: None)
        # tfio ends quietly when the broker stops answering: idle counts only if the broker answers now.
        client.check_topic(options.topic)

    return Stream(batches(), "tfio")
