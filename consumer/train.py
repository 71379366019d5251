"""``python -m consumer.train``: train the CNN on the training topic and save it; ``--follow`` keeps learning.

One-shot (default): the first epoch reads the topic until it is idle (``--idle-timeout``), committing as it
reads; every later epoch re-reads the same records from Kafka, from the same start offsets up to where the
first epoch ended (``until=``). Records reach the model through a shuffle buffer (``--shuffle-buffer``
records, ``consumer.learning.replay.ShuffleBuffer``), so memory does not grow with the topic. Validation holds out
every record whose pixels hash into the ``--validation-split`` share (stable across epochs and partitions; up
to 10,000 of them are kept to score after each epoch). The ``tfio`` source cannot seek: it reads the topic
once into memory, as before.

``--follow``: continual training (``consumer.learning.online``): test-then-train on every batch with replay, checkpoints
in ``--checkpoint-dir`` that a restart resumes from, a model version published with each; until Ctrl-C /
SIGTERM (or ``--idle-timeout`` when given), then a final checkpoint and a summary line.

Where the model goes: ``--model-dir DIR`` publishes into that model store (``consumer.store.versions``:
``DIR/vNNNN.keras``, ``DIR/latest.keras``, ``DIR/latest.json``), and so does a ``--model`` whose file name is
``latest.keras`` (its directory is the store). Any other ``--model`` file is saved as it is (one-shot only;
``--follow`` then publishes into ``models/mnist/``).

Exit codes: 0 trained and saved (``--follow``: stopped cleanly), 1 failure with one line on stderr (broker
unreachable at start or while reading, topic, no records, model or checkpoint directory not usable), 2 usage.
One-shot saves nothing on failure. ``--group-id`` of an earlier run continues after its committed offsets (a
warning line says how many records they skip); a checkpoint's offsets win over the group's.
"""

from __future__ import annotations

import argparse
import math
import os
import resource
import sys
import time
import uuid
import zlib
from pathlib import Path

from consumer.cli import quiet_tensorflow
from consumer.kafka.batches import add_source_flag
from consumer.store.versions import DEFAULT_MODEL, DEFAULT_STORE, LATEST_MODEL, ModelStore
from stack.config import TOPICS, ConfigError, add_flags, kafka_from_args

try:  # TensorBoard scalars and drift lines, when those modules are there
    from consumer.monitoring.tensorboard import Metrics, timestamped_run
except ImportError:  # pragma: no cover
    Metrics = timestamped_run = None
try:
    from consumer.learning.drift import DriftMonitor
except ImportError:  # pragma: no cover
    DriftMonitor = None

READ_BATCH = 1024  # records decoded together: batch first, then decode
DEFAULT_IDLE_TIMEOUT_S = 10.0
VALIDATION_KEPT = 10_000  # held-out records kept in memory to score after each epoch
DEFAULT_CHECKPOINTS = Path("models/checkpoints")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m consumer.train",
        description="Train the MNIST CNN on the records of the training topic and save it (epochs re-read the "
        "topic from Kafka through a shuffle buffer); --follow keeps learning from new records, with checkpoints.",
    )
    parser.add_argument("--topic", default=TOPICS.train, help=f"training topic (default {TOPICS.train})")
    add_flags(parser, "kafka")
    parser.add_argument(
        "--group-id",
        help="consumer group (default: a new group each one-shot run, so every run reads the whole topic; "
        "--follow: mnist-train-follow)",
    )
    add_source_flag(parser)
    parser.add_argument("--epochs", type=int, default=10, help="training epochs (default 10; not with --follow)")
    parser.add_argument("--batch-size", type=int, default=64, help="records a training step (default 64)")
    parser.add_argument(
        "--idle-timeout",
        type=float,
        help=f"stop reading after this many seconds without records (default {DEFAULT_IDLE_TIMEOUT_S:g}; "
        "--follow: never)",
    )
    parser.add_argument("--validation-split", type=float, default=0.1, help="share held out for validation (0.1)")
    parser.add_argument(
        "--shuffle-buffer", type=int, default=10_000, help="records mixed before training (default 10000)"
    )
    parser.add_argument(
        "--model",
        type=Path,
        default=Path(DEFAULT_MODEL),
        help=f"where to save ({DEFAULT_MODEL}); a file named latest.keras publishes a version into its directory",
    )
    parser.add_argument(
        "--model-dir", type=Path, help=f"model store to publish versions into (--follow default: {DEFAULT_STORE})"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar (the summary lines stay)")
    follow = parser.add_argument_group("continual training")
    follow.add_argument("--follow", action="store_true", help="keep learning as records arrive, until Ctrl-C")
    follow.add_argument(
        "--checkpoint-dir", type=Path, help=f"checkpoints, resumed on restart (default {DEFAULT_CHECKPOINTS}/<topic>)"
    )
    follow.add_argument(
        "--checkpoint-every-records", type=int, default=5000, help="checkpoint after this many records (5000)"
    )
    follow.add_argument(
        "--checkpoint-every-seconds", type=float, default=60.0, help="checkpoint after this many seconds (60)"
    )
    follow.add_argument("--replay-size", type=int, default=5000, help="records in the replay sample (5000)")
    follow.add_argument(
        "--replay-ratio", type=float, default=1.0, help="replayed records per new record in a step (1.0)"
    )
    follow.add_argument(
        "--from-model", type=Path, help="without a checkpoint, start from this saved model instead of a new one"
    )
    follow.add_argument(
        "--run-dir", type=Path, help="TensorBoard run directory (--follow default: runs/train-<time>; 'none': off)"
    )
    return parser


def check_model_path(path: Path) -> tuple[int, str] | None:
    """``(exit code, message)`` when ``path`` cannot take the saved model, else None; makes its directory."""
    if path.suffix != ".keras":
        return 2, f"error: --model {path}: the file name must end in .keras (Keras 3's format)"
    if path.is_dir():
        return 1, f"error: --model {path} is a directory; name a file ending in .keras"
    return check_directory(path.parent, f"--model {path}")


def check_directory(directory: Path, flag: str) -> tuple[int, str] | None:
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        return 1, f"error: {flag}: cannot create the directory {directory}: {error.strerror or error}"
    if not os.access(directory, os.W_OK | os.X_OK):
        return 1, f"error: {flag}: {directory} is not writable"
    return None


def model_store(args) -> ModelStore | None:
    """The store to publish into: ``--model-dir``, or ``--model``'s directory when it names ``latest.keras``;
    ``--follow`` falls back to the default store."""
    if args.model_dir is not None:
        return ModelStore(args.model_dir)
    if args.model.name == LATEST_MODEL:
        return ModelStore(args.model.parent)
    return ModelStore(DEFAULT_STORE) if args.follow else None


def held_out(pixels, share: float):
    """Which records (``uint8`` pixel arrays) are held out for validation: a hash of the pixels below
    ``share``, so a record is on the same side in every epoch and whatever partition it came from.

    >>> import numpy as np
    >>> mask = held_out(np.random.default_rng(0).integers(0, 256, (2000, 28, 28, 1), dtype=np.uint8), 0.1)
    >>> 150 < mask.sum() < 250
    True
    """
    import numpy as np

    if share <= 0 or len(pixels) == 0:
        return np.zeros(len(pixels), bool)
    bound = int(share * 2**32)
    return np.fromiter((zlib.crc32(row.tobytes()) < bound for row in pixels), bool, len(pixels))


def peak_memory_mb() -> float:
    """The process's peak resident memory so far (``ru_maxrss``, KiB on Linux), in MB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def read_topic(topic: str, group_id: str, servers: str, idle_timeout: float, source: str = "kafka", notes=print):
    """Well-formed records of ``topic`` as numpy arrays, the count of malformed ones skipped, and the seconds
    from the start of reading to the last record (the whole topic in memory: the tfio source's epochs)."""
    import numpy as np

    from consumer.kafka.batches import ReadOptions, open_batches
    from consumer.kafka.client import KafkaClient

    stream = open_batches(KafkaClient.of(servers), ReadOptions(topic, group_id, READ_BATCH, idle_timeout), source)
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
        return np.zeros((0, 28, 28, 1), np.float32), np.zeros((0,), np.int32), malformed, seconds
    return np.concatenate(images), np.concatenate(labels), malformed, seconds


class EpochSource:
    """The batches of each epoch: the first reads until idle (committing), later ones re-read the same
    offsets range from Kafka (``until``), or from memory for the tfio source."""

    def __init__(self, args, servers: str, group_id: str, warn) -> None:
        self.args, self.servers, self.group_id, self.warn = args, servers, group_id, warn
        self.start_offsets: dict[int, int] | None = None
        self.until: dict[int, int] | None = None
        self.memory = None
        self.records = self.malformed = 0
        self.read_seconds = 0.0

    def epoch(self, number: int):
        """Yields ``(images, labels)`` a read batch; counts records and malformed in the first epoch."""
        from consumer.kafka.batches import ReadOptions, open_batches
        from consumer.kafka.client import KafkaClient

        args = self.args
        if args.source == "tfio":
            if self.memory is None:
                images, labels, self.malformed, self.read_seconds = read_topic(
                    args.topic, self.group_id, self.servers, args.idle_timeout, "tfio", self.warn
                )
                self.memory, self.records = (images, labels), len(labels)
            images, labels = self.memory
            for start in range(0, len(labels), READ_BATCH):
                yield images[start : start + READ_BATCH], labels[start : start + READ_BATCH]
            return
        if number == 1:
            stream = open_batches(
                KafkaClient.of(self.servers), ReadOptions(args.topic, self.group_id, READ_BATCH, args.idle_timeout)
            )
            for note in stream.notes:
                self.warn(note)
            self.start_offsets = stream.start_offsets()
            started = time.perf_counter()
            for batch in stream.batches:
                self.records += len(batch)
                self.malformed += batch.malformed
                yield batch.images, batch.labels
                batch.commit()
                self.read_seconds = time.perf_counter() - started
            self.until = stream.positions()
            return
        stream = open_batches(
            KafkaClient.of(self.servers),
            ReadOptions(
                args.topic, self.group_id, READ_BATCH, args.idle_timeout, offsets=self.start_offsets, until=self.until
            ),
        )
        for batch in stream.batches:
            yield batch.images, batch.labels


def train_epochs(args, source: EpochSource, model, progress: bool):
    """Train ``args.epochs`` epochs from ``source`` through a shuffle buffer; returns the last epoch's
    ``(training count, loss, accuracy, validation accuracy or None, held-out count)`` and the seconds."""
    import keras
    import numpy as np

    from consumer.learning.replay import ShuffleBuffer, to_images, to_pixels

    kept_pixels, kept_labels, held_count = [], [], 0
    train_count = None
    started = time.perf_counter()
    summary = None
    for epoch in range(1, args.epochs + 1):
        buffer = ShuffleBuffer(args.shuffle_buffer, args.batch_size, seed=epoch)
        bar = keras.utils.Progbar(train_count, verbose=1 if progress else 0, stateful_metrics=None)
        seen, loss_sum, correct_sum = 0, 0.0, 0.0
        shown = False

        def learn(batches, bar=bar):
            nonlocal seen, loss_sum, correct_sum
            for images, labels in batches:
                logs = model.train_on_batch(images, labels, return_dict=True)
                n = len(labels)
                seen += n
                loss_sum += logs["loss"] * n
                correct_sum += logs["accuracy"] * n
                bar.add(n, values=[("loss", logs["loss"]), ("accuracy", logs["accuracy"])])

        for images, labels in source.epoch(epoch):
            if progress and not shown:  # once records came: an unreachable broker prints no epoch line
                print(f"Epoch {epoch}/{args.epochs}", flush=True)
                shown = True
            pixels = to_pixels(images)
            out = held_out(pixels, args.validation_split)
            if epoch == 1 and out.any():
                held_count += int(out.sum())
                room = VALIDATION_KEPT - sum(len(k) for k in kept_labels)
                if room > 0:
                    kept_pixels.append(pixels[out][:room])
                    kept_labels.append(labels[out][:room])
            buffer.put(images[~out], labels[~out])
            learn(buffer.batches())
        learn(buffer.drain())
        if seen == 0:
            return None, time.perf_counter() - started
        train_count = seen
        validation = None
        if kept_labels:
            x_val, y_val = to_images(np.concatenate(kept_pixels)), np.concatenate(kept_labels)
            validation = float(model.evaluate(x_val, y_val, batch_size=256, verbose=0, return_dict=True)["accuracy"])
        summary = (seen, loss_sum / seen, correct_sum / seen, validation, held_count)
        if progress:
            tail = f" - val_accuracy: {validation:.4f}" if validation is not None else ""
            print(f"epoch {epoch}: loss {summary[1]:.4f} - accuracy {summary[2]:.4f}{tail}", flush=True)
    return summary, time.perf_counter() - started


def usage_error(args) -> str | None:
    if args.idle_timeout is not None and not (math.isfinite(args.idle_timeout) and args.idle_timeout > 0):
        return "error: --idle-timeout must be a finite number > 0"
    if args.epochs < 1 or args.batch_size < 1 or args.shuffle_buffer < 1 or not 0 <= args.validation_split < 1:
        return (
            "error: --epochs, --batch-size and --shuffle-buffer must be >= 1, --idle-timeout a finite number > 0, "
            "0 <= --validation-split < 1"
        )
    if args.follow:
        if args.source != "kafka":
            return "error: --follow reads with the kafka source only (it seeks to its checkpoint's offsets)"
        if args.replay_size < 0 or args.replay_ratio < 0:
            return "error: --replay-size and --replay-ratio must be >= 0"
        if args.checkpoint_every_records < 1 or not args.checkpoint_every_seconds > 0:
            return "error: --checkpoint-every-records must be >= 1 and --checkpoint-every-seconds > 0"
    return None


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    problem = usage_error(args)
    if problem:
        print(problem, file=sys.stderr)
        return 2
    if args.idle_timeout is None and not args.follow:
        args.idle_timeout = DEFAULT_IDLE_TIMEOUT_S
    try:
        servers = kafka_from_args(args).bootstrap_servers
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    refused = check_model_path(args.model)
    if refused:
        print(refused[1], file=sys.stderr)
        return refused[0]
    store = model_store(args)
    if store is not None:
        refused = check_directory(store.directory, f"--model-dir {store.directory}")
        if refused:
            print(refused[1], file=sys.stderr)
            return refused[0]
    quiet_tensorflow()
    if args.follow:
        return follow_main(args, servers, store)
    return train_main(args, servers, store)


def train_main(args, servers: str, store: ModelStore | None) -> int:
    from consumer.kafka.client import KafkaClient, SourceError
    from consumer.learning.models import build_model

    group_id = args.group_id or f"mnist-train-{uuid.uuid4().hex[:12]}"
    warn = lambda line: print(line, file=sys.stderr, flush=True)  # noqa: E731
    source = EpochSource(args, servers, group_id, warn)
    try:
        if args.group_id:
            skipped = KafkaClient.of(servers).committed_records(group_id, args.topic)
            if skipped:
                warn(
                    f"warning: group {group_id} has committed offsets: {skipped} records of {args.topic} are skipped, "
                    f"the model is trained only on the records after them and replaces {args.model} "
                    "(omit --group-id to train on the whole topic)"
                )
        model = build_model()
        summary, fit_seconds = train_epochs(args, source, model, progress=not args.quiet)
    except SourceError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    if summary is None:
        held = f", all {source.records} held out for validation" if source.records else ""
        print(
            f"error: no usable records on {args.topic} (group {group_id}) within the {args.idle_timeout:g} s idle "
            f"timeout ({source.malformed} malformed{held}); load data first: make load-mnist",
            file=sys.stderr,
        )
        return 1
    count, loss, accuracy, validation, held_count = summary
    print(
        f"read {source.records} records from {args.topic} in {source.read_seconds:.1f} s "
        f"({source.records / max(source.read_seconds, 1e-9):,.0f} records/s while training the first epoch, "
        f"{source.malformed} malformed skipped; then {args.idle_timeout:g} s idle ended the stream)",
        flush=True,
    )
    try:
        if store is not None:
            version = store.publish(model)
            where = f"{store.latest_model} (version {version}, {store.directory / f'v{version:04d}.keras'})"
        else:
            model.save(args.model)
            where = str(args.model)
    except OSError as error:
        print(f"error: cannot save the model to {args.model}: {error.strerror or error}", file=sys.stderr)
        return 1
    validated = f", validation accuracy {validation:.4f}" if validation is not None else ""
    print(
        f"trained on {count} records, {args.epochs} epochs in {fit_seconds:.1f} s "
        f"({fit_seconds / args.epochs:.1f} s/epoch, {held_count} held out, shuffle buffer {args.shuffle_buffer}, "
        f"peak memory {peak_memory_mb():.0f} MB): training accuracy {accuracy:.4f}{validated}; model saved to {where}"
    )
    return 0


def follow_main(args, servers: str, store: ModelStore) -> int:
    from consumer.kafka.client import SourceError
    from consumer.learning.online import FollowSettings, Stopper, follow
    from consumer.store.checkpoints import CheckpointDir, CheckpointError

    checkpoint_dir = args.checkpoint_dir or DEFAULT_CHECKPOINTS / args.topic
    refused = check_directory(checkpoint_dir, f"--checkpoint-dir {checkpoint_dir}")
    if refused:
        print(refused[1], file=sys.stderr)
        return refused[0]
    run_dir = args.run_dir
    if run_dir is None and timestamped_run is not None:
        run_dir = timestamped_run("train")
    if run_dir is not None and str(run_dir) == "none":
        run_dir = None
    metrics = Metrics(run_dir) if Metrics is not None and run_dir is not None else None
    drift = DriftMonitor() if DriftMonitor is not None else None
    settings = FollowSettings(
        topic=args.topic,
        group_id=args.group_id or "mnist-train-follow",
        servers=servers,
        batch_size=args.batch_size,
        replay_capacity=args.replay_size,
        replay_ratio=args.replay_ratio,
        checkpoint_every_records=args.checkpoint_every_records,
        checkpoint_every_seconds=args.checkpoint_every_seconds,
        idle_timeout_s=args.idle_timeout,
    )
    stopper = Stopper().install()
    try:
        result = follow(
            settings, CheckpointDir(checkpoint_dir), store, args.from_model, metrics, drift, stopper,
            say=lambda line: print(line, flush=True),
        )  # fmt: skip
    except (SourceError, CheckpointError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    finally:
        stopper.restore()
        if metrics is not None:
            metrics.close()
    counters = result.counters
    version = result.version or store.latest_version()
    prequential = counters.scored_correct / counters.records if counters.records else float("nan")
    window = f", last {settings.window}: {result.window_accuracy:.4f}" if result.window_accuracy is not None else ""
    checkpoint_s = f", checkpoints {max(result.checkpoint_seconds):.2f} s at most" if result.checkpoint_seconds else ""
    print(
        f"learned from {result.run_records} records in {result.seconds:.1f} s "
        f"({result.run_records / max(result.seconds, 1e-9):,.0f} records/s, {result.run_malformed} malformed skipped; "
        f"stopped by {result.stopped_by}); in total {counters.records} records, {counters.malformed} malformed, "
        f"prequential accuracy {prequential:.4f}{window}; checkpoint {result.checkpoint.sequence} in "
        f"{checkpoint_dir}{checkpoint_s}; model version {version} in {store.directory}",
        flush=True,
    )
    if result.error:
        print(f"error: {result.error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
