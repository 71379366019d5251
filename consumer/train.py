"""``python -m consumer.train``: train the dataset's model on its training topic and save it; ``--follow`` keeps
learning. ``--dataset`` (default ``mnist``) names the dataset: its training topic, the headers that name its rows,
its records' format, its model (``consumer.learning.models``: MNIST's CNN, an MLP normalized on the training
records, or a builder of the user's) and its model store ``models/<name>/`` are the defaults.

One-shot (default, ``consumer.learning.epochs``): reads the topic as its table: a first pass over the headers until
the topic is idle (``--idle-timeout``) finds each row's latest version, deleted rows left out; every epoch then
re-reads that offsets range from Kafka (``until=``) and learns those records. The group's offsets are committed once
the model is saved. Records reach the model through a shuffle buffer (``--shuffle-buffer`` records,
``consumer.learning.replay.ShuffleBuffer``); what grows with the topic is one small entry a row for the table view
(a record without row headers counts as a row of its own). Validation holds out every record whose pixels hash into
the ``--validation-split`` share (stable across epochs and partitions; up to 10,000 of them are kept to score after
each epoch). The ``tfio`` source cannot seek: it reads the topic once into memory.

``--follow``: continual training (``consumer.learning.online``): test-then-train on every batch with replay, checkpoints
in ``--checkpoint-dir`` that a restart resumes from, a model version published with each, and between them the model
alone published every ``--publish-every-seconds`` (default 5; also when the topic goes quiet: within that interval
of the last record), so a row reaches a published model seconds after its commit while offsets are committed only
with checkpoints; until Ctrl-C / SIGTERM (or ``--idle-timeout``
when given), then a final checkpoint and a summary line. Every change is a new example (a corrected label too);
deletes are skipped and counted, since a model cannot unlearn a row. A checkpoint knows its topic's Kafka id: a
topic deleted and created again is refused (``--from-start-on-new-topic`` reads the new one from its start).

Where the model goes: ``--model-dir DIR`` publishes into that model store (``consumer.store.versions``:
``DIR/vNNNN.keras``, ``DIR/latest.keras``, ``DIR/latest.json``), and so does a ``--model`` whose file name is
``latest.keras`` (its directory is the store). One process publishes into a store at a time (a second refuses);
the store keeps the newest ``--keep-versions`` versions, the latest and those a checkpoint still names
(``python -m consumer.models list|promote``). Any other ``--model`` file is saved as it is (one-shot only;
``--follow`` then publishes into the dataset's store, ``models/mnist/`` for MNIST).

Exit codes: 0 trained and saved (``--follow``: stopped cleanly), 1 failure with one line on stderr (broker
unreachable at start or while reading, topic, no records, model or checkpoint directory not usable), 2 usage.
One-shot saves nothing on failure. ``--group-id`` of an earlier run continues after its committed offsets (a
warning line says how many records they skip); a checkpoint's offsets win over the group's.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import uuid
from pathlib import Path

from consumer.cli import (
    CommandError,
    add_dataset_flag,
    check_source,
    dataset_of,
    quiet_tensorflow,
    refuse,
    run_prefix,
    store_of,
)
from consumer.kafka.batches import add_source_flag
from consumer.kafka.client import KafkaClient, SourceError
from consumer.learning.drift import DriftMonitor
from consumer.learning.epochs import EpochSource, peak_memory_mb, train_epochs, training_features
from consumer.learning.models import ModelBuildError, build_model
from consumer.learning.online import FollowSettings, FollowState, Stopper, follow
from consumer.monitoring.tensorboard import Metrics, timestamped_run
from consumer.records.codec import RecordFormat
from consumer.store.checkpoints import CheckpointDir, CheckpointError
from consumer.store.versions import DEFAULT_MODEL, DEFAULT_STORE, LATEST_MODEL, ModelStore, StoreLockedError
from stack.config import ConfigError, add_flags
from stack.contract import MNIST

DEFAULT_IDLE_TIMEOUT_S = 10.0
DEFAULT_CHECKPOINTS = Path("models/checkpoints")
DEFAULT_KEEP_VERSIONS = 5
DEFAULT_PUBLISH_EVERY_S = 5.0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m consumer.train",
        description="Train the dataset's model (default: MNIST's CNN) on the records of its training topic and save "
        "it (epochs re-read the topic from Kafka through a shuffle buffer); --follow keeps learning from new "
        "records, with checkpoints.",
    )
    add_dataset_flag(parser)
    parser.add_argument(
        "--topic", help=f"training topic (default: the dataset's training topic, {MNIST.train} for mnist)"
    )
    add_flags(parser, "kafka")
    parser.add_argument(
        "--group-id",
        help="consumer group (default: a new group each one-shot run, so every run reads the whole topic; "
        "--follow: <dataset>-train-follow, mnist-train-follow for mnist)",
    )
    add_source_flag(parser)
    parser.add_argument(
        "--epochs",
        type=int,
        help="training epochs (default 10 for a CNN, 30 for the small MLP or a builder of your own: a tabular "
        "dataset holds fewer rows an epoch; not with --follow)",
    )
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
        help=f"where to save (default: the dataset's store's latest.keras, {DEFAULT_MODEL} for mnist); a file "
        "named latest.keras publishes a version into its directory",
    )
    parser.add_argument(
        "--model-dir",
        type=Path,
        help=f"model store to publish versions into (--follow default: models/<dataset>, {DEFAULT_STORE} for mnist)",
    )
    parser.add_argument(
        "--keep-versions",
        type=int,
        default=DEFAULT_KEEP_VERSIONS,
        help=f"versions kept in the model store (default {DEFAULT_KEEP_VERSIONS}), besides the latest and those "
        "a checkpoint still names",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar (the summary lines stay)")
    add_follow_flags(parser.add_argument_group("continual training"))
    return parser


def add_follow_flags(follow: argparse._ArgumentGroup) -> None:
    """The flags of ``--follow`` (continual training)."""
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
    follow.add_argument(
        "--publish-every-seconds",
        type=float,
        default=DEFAULT_PUBLISH_EVERY_S,
        help=f"between checkpoints, publish the model alone (no optimizer state, no offsets committed) as a new "
        f"version after this many seconds when it learned anything ({DEFAULT_PUBLISH_EVERY_S:g}; 0: publish only "
        "at checkpoints)",
    )
    follow.add_argument(
        "--from-start-on-new-topic",
        action="store_true",
        help="when the topic was deleted and created again since the checkpoint, read the new topic from its start "
        "with the checkpoint's model (default: refuse; the checkpoint's offsets name records of the old topic)",
    )
    follow.add_argument("--replay-size", type=int, default=5000, help="records in the replay sample (5000)")
    follow.add_argument(
        "--replay-ratio", type=float, default=1.0, help="replayed records per new record in a step (1.0)"
    )
    follow.add_argument(
        "--from-model", type=Path, help="without a checkpoint, start from this saved model instead of a new one"
    )
    follow.add_argument(
        "--run-dir",
        type=Path,
        help="TensorBoard run directory (--follow default: runs/train-<time>, runs/train-<dataset>-<time> for a "
        "dataset other than mnist; 'none': off)",
    )


def check_model_path(path: Path) -> tuple[int, str] | None:
    """``(exit code, message)`` when ``path`` cannot take the saved model, else None; makes its directory."""
    if path.suffix != ".keras":
        return 2, f"error: --model {path}: the file name must end in .keras (Keras 3's format)"
    if path.is_dir():
        return 1, f"error: --model {path} is a directory; name a file ending in .keras"
    return check_directory(path.parent, f"--model {path}")


def check_directory(directory: Path, flag: str) -> tuple[int, str] | None:
    """``(exit code, message)`` when ``directory`` (named by ``flag``) cannot be made or written, else None."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        return 1, f"error: {flag}: cannot create the directory {directory}: {error.strerror or error}"
    if not os.access(directory, os.W_OK | os.X_OK):
        return 1, f"error: {flag}: {directory} is not writable"
    return None


#: One-shot epochs by model family: iris's 104 training rows need more passes than MNIST's 3,600 (measured on
#: iris's test split, seeds 0-5: 10 epochs 0.906 mean accuracy, 30 epochs 0.939).
DEFAULT_EPOCHS = {"cnn": 10, "mlp": 30}


def model_store(args: argparse.Namespace, dataset) -> ModelStore | None:
    """The store to publish into: ``--model-dir``, or ``--model``'s directory when it names ``latest.keras``;
    ``--follow`` falls back to the dataset's store."""
    if args.model_dir is not None:
        return ModelStore(args.model_dir)
    if args.model.name == LATEST_MODEL:
        return ModelStore(args.model.parent)
    return ModelStore(store_of(dataset)) if args.follow else None


def apply_dataset(args: argparse.Namespace):
    """The dataset ``--dataset`` names, its defaults filled into ``args`` (training topic, model path);
    ``CommandError`` (exit 2, one line) when it is unknown or ``--source`` cannot read it."""
    dataset = dataset_of(args)
    if args.topic is None:
        args.topic = dataset.contract.train
    if args.model is None:
        args.model = store_of(dataset) / LATEST_MODEL
    if args.epochs is None:
        args.epochs = DEFAULT_EPOCHS.get(dataset.model, DEFAULT_EPOCHS["mlp"])
    check_source(args, dataset)
    return dataset


def usage_error(args: argparse.Namespace) -> str | None:
    """The usage error in the flags (exit 2), or None."""
    if args.idle_timeout is not None and not (math.isfinite(args.idle_timeout) and args.idle_timeout > 0):
        return "error: --idle-timeout must be a finite number > 0"
    if args.keep_versions < 1:
        return "error: --keep-versions must be >= 1"
    if (
        (args.epochs is not None and args.epochs < 1)
        or args.batch_size < 1
        or args.shuffle_buffer < 1
        or not 0 <= args.validation_split < 1
    ):
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
        if not (math.isfinite(args.publish_every_seconds) and args.publish_every_seconds >= 0):
            return "error: --publish-every-seconds must be a finite number >= 0 (0: only at checkpoints)"
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
        dataset = apply_dataset(args)
    except CommandError as error:
        return refuse(error)
    try:
        client = KafkaClient.from_args(args)
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    refused = check_model_path(args.model)
    if refused:
        print(refused[1], file=sys.stderr)
        return refused[0]
    store = model_store(args, dataset)
    if store is not None:
        refused = check_directory(store.directory, f"--model-dir {store.directory}")
        if refused:
            print(refused[1], file=sys.stderr)
            return refused[0]
    try:
        lock = store.lock() if store is not None else None
    except (StoreLockedError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    quiet_tensorflow()
    try:
        if args.follow:
            return follow_main(args, client, store, dataset)
        return train_main(args, client, store, dataset)
    finally:
        if lock is not None:
            lock.release()


def train_main(args: argparse.Namespace, client: KafkaClient, store: ModelStore | None, dataset) -> int:
    """One-shot training: epochs over the topic, then the model saved or published; the exit code."""
    group_id = args.group_id or f"{dataset.name}-train-{uuid.uuid4().hex[:12]}"
    warn = lambda line: print(line, file=sys.stderr, flush=True)  # noqa: E731
    source = EpochSource(args, client, group_id, warn, RecordFormat.of(dataset), dataset.contract)
    try:
        if args.group_id:
            skipped = client.committed_records(group_id, args.topic)
            if skipped:
                warn(
                    f"warning: group {group_id} has committed offsets: {skipped} records of {args.topic} are skipped, "
                    f"the model is trained only on the records after them and replaces {args.model} "
                    "(omit --group-id to train on the whole topic)"
                )
        # A normalization learns the training records' statistics first; MNIST's CNN needs no look.
        model = build_model(dataset, None if dataset.model == "cnn" else training_features(source))
        summary, fit_seconds = train_epochs(args, source, model, progress=not args.quiet)
    except (SourceError, ModelBuildError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    if summary is None:
        held = f", all {source.records} held out for validation" if source.records else ""
        print(
            f"error: no usable records on {args.topic} (group {group_id}) within the {args.idle_timeout:g} s idle "
            f"timeout ({source.malformed} malformed{held}); load data first: {load_hint(dataset)}",
            file=sys.stderr,
        )
        return 1
    count, loss, accuracy, validation, held_count = summary
    print(
        f"read {source.records} records from {args.topic} ({source.rows} rows) in {source.read_seconds:.1f} s "
        f"({source.records / max(source.read_seconds, 1e-9):,.0f} records/s reading the changes, "
        f"{source.malformed} malformed skipped; then {args.idle_timeout:g} s idle ended the stream)",
        flush=True,
    )
    try:
        if store is not None:
            info = {"records": source.rows, "trained_on": count, "training_accuracy": accuracy, "topic": args.topic}
            version = store.publish(model, info, keep=args.keep_versions)
            where = f"{store.latest_model} (version {version}, {store.directory / f'v{version:04d}.keras'})"
        else:
            model.save(args.model)
            where = str(args.model)
    except OSError as error:
        print(f"error: cannot save the model to {args.model}: {error.strerror or error}", file=sys.stderr)
        return 1
    try:
        source.commit()  # only now: the group's offsets never lead the saved model
    except SourceError as error:
        print(f"warning: model saved, but the group's offsets were not committed: {error}", file=sys.stderr)
    validated = f", validation accuracy {validation:.4f}" if validation is not None else ""
    print(
        f"trained on {count} records, {args.epochs} epochs in {fit_seconds:.1f} s "
        f"({fit_seconds / args.epochs:.1f} s/epoch, {held_count} held out, shuffle buffer {args.shuffle_buffer}, "
        f"peak memory {peak_memory_mb():.0f} MB): training accuracy {accuracy:.4f}{validated}; model saved to {where}"
    )
    return 0


def load_hint(dataset) -> str:
    """How to put rows in the dataset's tables, for the no-records error."""
    if dataset.name == "mnist":
        return "make load-mnist"
    if dataset.loader:
        return f"python -m loader --dataset {dataset.name}"
    return f"insert rows into {dataset.contract.train_table}"


def follow_main(args: argparse.Namespace, client: KafkaClient, store: ModelStore, dataset) -> int:
    """Continual training until stopped, its lines printed as they come, then a summary line; the exit code."""
    checkpoint_dir = args.checkpoint_dir or DEFAULT_CHECKPOINTS / args.topic
    refused = check_directory(checkpoint_dir, f"--checkpoint-dir {checkpoint_dir}")
    if refused:
        print(refused[1], file=sys.stderr)
        return refused[0]
    run_dir = args.run_dir if args.run_dir is not None else timestamped_run(run_prefix(dataset, "train"))
    metrics = Metrics(run_dir) if str(run_dir) != "none" else None
    settings = follow_settings(args, client, dataset)
    stopper = Stopper().install()
    try:
        state = follow(
            settings, CheckpointDir(checkpoint_dir), store, args.from_model, metrics, DriftMonitor(), stopper,
            say=lambda line: print(line, flush=True),
        )  # fmt: skip
    except (SourceError, CheckpointError, ModelBuildError, OSError) as error:  # OSError: a full disk
        print(f"error: {error}", file=sys.stderr)
        return 1
    finally:
        stopper.restore()
        if metrics is not None:
            metrics.close()
    print(follow_summary(state, settings.window, checkpoint_dir, store), flush=True)
    if state.error:
        print(f"error: {state.error}", file=sys.stderr)
        return 1
    return 0


def follow_settings(args: argparse.Namespace, client: KafkaClient, dataset) -> FollowSettings:
    """The continual-training settings the flags and the dataset give. A new model starts without training
    records to adapt a normalization on: it is the identity until the model learned (or ``--from-model``)."""
    return FollowSettings(
        topic=args.topic,
        group_id=args.group_id or f"{dataset.name}-train-follow",
        client=client,
        batch_size=args.batch_size,
        replay_capacity=args.replay_size,
        replay_ratio=args.replay_ratio,
        checkpoint_every_records=args.checkpoint_every_records,
        checkpoint_every_seconds=args.checkpoint_every_seconds,
        idle_timeout_s=args.idle_timeout,
        keep_versions=args.keep_versions,
        from_start_on_new_topic=args.from_start_on_new_topic,
        fmt=RecordFormat.of(dataset),
        build=lambda: build_model(dataset),
        publish_every_seconds=args.publish_every_seconds,
        commit_header=dataset.contract.commit_header,
    )


def follow_summary(state: FollowState, window: int, checkpoint_dir: Path, store: ModelStore) -> str:
    """The line ``--follow`` ends with: this run, the totals on the checkpoint, where the model is."""
    counters = state.counters
    version = state.version or store.latest_version()
    prequential = counters.scored_correct / counters.records if counters.records else float("nan")
    window_text = f", last {window}: {state.window_accuracy:.4f}" if state.window_accuracy is not None else ""
    deletes = f", {counters.deletes} deletes skipped: a model cannot unlearn" if counters.deletes else ""
    checkpoint_s = f", checkpoints {max(state.checkpoint_seconds):.2f} s at most" if state.checkpoint_seconds else ""
    return (
        f"learned from {state.run_records} records in {state.seconds:.1f} s "
        f"({state.run_records / max(state.seconds, 1e-9):,.0f} records/s, {state.run_malformed} malformed skipped; "
        f"stopped by {state.stopped_by}); in total {counters.records} records, {counters.malformed} malformed"
        f"{deletes}, prequential accuracy {prequential:.4f}{window_text}; checkpoint {state.checkpoint.sequence} in "
        f"{checkpoint_dir}{checkpoint_s}; model version {version} in {store.directory}"
    )


if __name__ == "__main__":
    sys.exit(main())
