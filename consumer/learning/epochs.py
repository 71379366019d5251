"""Epochs over a topic (``python -m consumer.train`` one-shot): read, hold out, shuffle, learn.

The topic is read as its table: a first pass reads the records' headers until the topic is idle and finds each
row's latest version (deleted rows left out, ``consumer.learning.changes``); every epoch then re-reads the same
offsets range from Kafka (``until=``) and learns those records. The group's offsets are committed only once the
model that learned them is saved (``EpochSource.commit``). Records reach
the model through a shuffle buffer (``consumer.learning.replay.ShuffleBuffer``), so memory does not grow with
the topic. Validation holds out every record whose pixels hash into the ``validation_split`` share: a record is
on the same side in every epoch and whatever partition it came from, and up to ``VALIDATION_KEPT`` of them are
kept to score after each epoch. The ``tfio`` source cannot seek: it reads the topic once into memory.
"""

from __future__ import annotations

import argparse
import resource
import time
import zlib
from collections.abc import Callable, Iterable, Iterator
from contextlib import closing

import numpy as np

from consumer.kafka.batches import open_batches
from consumer.kafka.client import KafkaClient
from consumer.kafka.reader import CommittingReader, ReadOptions
from consumer.learning.changes import LatestVersions, Places
from consumer.learning.replay import ShuffleBuffer
from consumer.records.codec import MNIST_FORMAT, RecordFormat
from stack.contract import MNIST, Contract

READ_BATCH = 1024  # records decoded together: batch first, then decode
VALIDATION_KEPT = 10_000  # held-out records kept in memory to score after each epoch
ADAPT_LIMIT = 100_000  # records a normalization's statistics are computed on: a sample of a large table is enough


def held_out(pixels: np.ndarray, share: float) -> np.ndarray:
    """Which records (packed: ``uint8`` pixel arrays, a numeric dataset's float32 values) are held out for
    validation: a hash of the values below ``share``, so a record is on the same side in every epoch and whatever
    partition it came from.

    >>> mask = held_out(np.random.default_rng(0).integers(0, 256, (2000, 784), dtype=np.uint8), 0.1)
    >>> 150 < mask.sum() < 250
    True
    """
    if share <= 0 or len(pixels) == 0:
        return np.zeros(len(pixels), bool)
    bound = int(share * 2**32)
    return np.fromiter((zlib.crc32(row.tobytes()) < bound for row in pixels), bool, len(pixels))


def peak_memory_mb() -> float:
    """The process's peak resident memory so far (``ru_maxrss``, KiB on Linux), in MB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def read_topic(
    client: KafkaClient,
    topic: str,
    group_id: str,
    idle_timeout: float,
    source: str = "kafka",
    notes=print,
    fmt: RecordFormat = MNIST_FORMAT,
):
    """Well-formed records of ``topic`` as numpy arrays, the count of malformed ones skipped, and the seconds
    from the start of reading to the last record (the whole topic in memory: the tfio source's epochs)."""
    stream = open_batches(client, ReadOptions(topic, group_id, READ_BATCH, idle_timeout), source, fmt)
    for note in stream.notes:
        notes(note)
    images, labels, malformed = [], [], 0
    started = time.perf_counter()
    last_record_at = started
    for batch in stream.batches:
        images.append(batch.images)
        labels.append(batch.labels)
        malformed += batch.malformed
        batch.commit()
        last_record_at = time.perf_counter()
    seconds = last_record_at - started
    if not images:
        return fmt.empty(), np.zeros((0,), np.int32), malformed, seconds
    return np.concatenate(images), np.concatenate(labels), malformed, seconds


class EpochSource:
    """The batches of each epoch: the topic read as its table (see ``consumer.learning.changes``), or the whole
    topic in memory for the tfio source.

    Kafka: a first pass reads the records' headers until the topic is idle and finds each row's latest version
    (``LatestVersions``); every epoch then re-reads the same offsets range (``start_offsets`` to ``until``) and
    learns only those records. Nothing is committed while reading: ``commit`` commits ``until`` for the group
    once the caller saved the model that learned them. ``args`` are ``consumer.train``'s flags: ``topic``,
    ``source`` and ``idle_timeout``; ``fmt`` the records' format and ``names`` the contract whose headers name
    the rows (MNIST's by default).
    """

    def __init__(
        self,
        args: argparse.Namespace,
        client: KafkaClient,
        group_id: str,
        warn: Callable[[str], None],
        fmt: RecordFormat = MNIST_FORMAT,
        names: Contract = MNIST,
    ) -> None:
        self.args, self.client, self.group_id, self.warn = args, client, group_id, warn
        self.fmt, self.names = fmt, names
        self.start_offsets: dict[int, int] | None = None
        self.until: dict[int, int] | None = None
        self.live: set[tuple[int, int]] = set()
        self.memory = None
        self.records = self.rows = self.malformed = 0
        self.read_seconds = 0.0

    def epoch(self, number: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Yields ``(images, labels)`` a read batch; counts malformed in the first epoch (``number`` 0: a look at
        the records before the epochs, ``training_features``)."""
        if self.args.source == "tfio":
            yield from self._from_memory()
            return
        if self.until is None:
            self._scan()
        yield from self._read_latest(first=number == 1)

    def commit(self) -> None:
        """Commit the group's offsets up to where the epochs read (call once the model is saved)."""
        if self.until:
            self.client.commit_group_offsets(self.group_id, self.args.topic, self.until)

    def _from_memory(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        args = self.args
        if self.memory is None:
            images, labels, self.malformed, self.read_seconds = read_topic(
                self.client, args.topic, self.group_id, args.idle_timeout, "tfio", self.warn, self.fmt
            )
            self.memory, self.records = (images, labels), len(labels)
            self.rows = self.records
        images, labels = self.memory
        for start in range(0, len(labels), READ_BATCH):
            yield images[start : start + READ_BATCH], labels[start : start + READ_BATCH]

    def _scan(self) -> None:
        """Read the headers until idle: the offsets range the epochs read and the records they learn."""
        args = self.args
        reader = CommittingReader(self.client, ReadOptions(args.topic, self.group_id, READ_BATCH, args.idle_timeout))
        for note in reader.notes:
            self.warn(note)
        if not args.quiet:
            starts = ", ".join(f"partition {p} offset {o}" for p, o in sorted(reader.start_offsets.items()))
            print(f"reading {args.topic} (group {self.group_id}) from {starts}", flush=True)
        latest = LatestVersions(self.names)
        started = time.perf_counter()
        try:
            self.start_offsets = dict(reader.start_offsets)
            for batch in reader.batches():
                latest.add(batch.partitions, batch.headers)
                self.read_seconds = time.perf_counter() - started
            self.until = dict(reader.position)
        finally:
            reader.close()
        self.records, self.rows, self.live = latest.records, latest.rows, latest.live()

    def _read_latest(self, first: bool) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        args = self.args
        options = ReadOptions(
            args.topic, self.group_id, READ_BATCH, args.idle_timeout, offsets=self.start_offsets, until=self.until
        )
        stream = open_batches(self.client, options, fmt=self.fmt)
        places = Places()
        try:
            for batch in stream.batches:
                wanted = np.fromiter((place in self.live for place in places.of(batch.partitions())), bool)
                if first:
                    self.malformed += int(np.sum(wanted & ~batch.valid))
                keep = wanted[batch.valid]
                yield batch.images[keep], batch.labels[keep]
        finally:
            stream.close()


def training_features(source: EpochSource, limit: int = ADAPT_LIMIT) -> np.ndarray:
    """Up to ``limit`` records' values of the training topic, read before the epochs: what a model's
    normalization is adapted on (``consumer.learning.models``); float32 ``(n, num_features)``."""
    kept, count = [], 0
    with closing(source.epoch(0)) as batches:  # closed now when the limit stops the read early
        for images, _ in batches:
            kept.append(images[: limit - count])
            count += len(kept[-1])
            if count >= limit:
                break
    return np.concatenate(kept) if kept else source.fmt.empty()


class _Validation:
    """The held-out records: counted in the first epoch, up to ``VALIDATION_KEPT`` of them kept to score."""

    def __init__(self, share: float, fmt: RecordFormat = MNIST_FORMAT) -> None:
        self.share, self.fmt = share, fmt
        self.count = 0
        self.pixels: list[np.ndarray] = []
        self.labels: list[np.ndarray] = []

    def split(self, images: np.ndarray, labels: np.ndarray, first_epoch: bool) -> tuple[np.ndarray, np.ndarray]:
        """The records to train on; the held-out ones are kept (first epoch only: later epochs are the same)."""
        pixels = self.fmt.pack(images)
        out = held_out(pixels, self.share)
        if first_epoch and out.any():
            self.count += int(out.sum())
            room = VALIDATION_KEPT - sum(len(kept) for kept in self.labels)
            if room > 0:
                self.pixels.append(pixels[out][:room])
                self.labels.append(labels[out][:room])
        return images[~out], labels[~out]

    def accuracy(self, model) -> float | None:
        """``model``'s accuracy on the kept records; None when none are held out."""
        if not self.labels:
            return None
        x_val, y_val = self.fmt.unpack(np.concatenate(self.pixels)), np.concatenate(self.labels)
        return float(model.evaluate(x_val, y_val, batch_size=256, verbose=0, return_dict=True)["accuracy"])


class _EpochTotals:
    """Records, loss and accuracy summed over one epoch's training steps, shown on Keras' progress bar."""

    def __init__(self, bar) -> None:
        self.bar = bar
        self.seen, self.loss_sum, self.correct_sum = 0, 0.0, 0.0

    def learn(self, model, batches: Iterable[tuple[np.ndarray, np.ndarray]]) -> None:
        """One training step a batch."""
        for images, labels in batches:
            logs = model.train_on_batch(images, labels, return_dict=True)
            n = len(labels)
            self.seen += n
            self.loss_sum += logs["loss"] * n
            self.correct_sum += logs["accuracy"] * n
            self.bar.add(n, values=[("loss", logs["loss"]), ("accuracy", logs["accuracy"])])


def train_epochs(args: argparse.Namespace, source: EpochSource, model, progress: bool):
    """Train ``args.epochs`` epochs from ``source`` through a shuffle buffer of ``args.shuffle_buffer`` records
    (``args.batch_size`` a step, ``args.validation_split`` held out); returns the last epoch's ``(training count,
    loss, accuracy, validation accuracy or None, held-out count)``, or None when no record was trained on, and
    the seconds."""
    import keras  # noqa: PLC0415 - TensorFlow loads in seconds; only training needs it, not --help or bad flags

    validation = _Validation(args.validation_split, source.fmt)
    train_count = None
    started = time.perf_counter()
    summary = None
    for epoch in range(1, args.epochs + 1):
        buffer = ShuffleBuffer(args.shuffle_buffer, args.batch_size, seed=epoch, fmt=source.fmt)
        totals = _EpochTotals(keras.utils.Progbar(train_count, verbose=1 if progress else 0, stateful_metrics=None))
        shown = False
        for images, labels in source.epoch(epoch):
            if progress and not shown:  # once records came: an unreachable broker prints no epoch line
                print(f"Epoch {epoch}/{args.epochs}", flush=True)
                shown = True
            buffer.put(*validation.split(images, labels, first_epoch=epoch == 1))
            totals.learn(model, buffer.batches())
        totals.learn(model, buffer.drain())
        if totals.seen == 0:
            return None, time.perf_counter() - started
        train_count = totals.seen
        accuracy = validation.accuracy(model)
        summary = (
            totals.seen,
            totals.loss_sum / totals.seen,
            totals.correct_sum / totals.seen,
            accuracy,
            validation.count,
        )
        if progress:
            tail = f" - val_accuracy: {accuracy:.4f}" if accuracy is not None else ""
            print(f"epoch {epoch}: loss {summary[1]:.4f} - accuracy {summary[2]:.4f}{tail}", flush=True)
    return summary, time.perf_counter() - started
