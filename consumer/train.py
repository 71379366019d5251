"""``python -m consumer.train``: read the training topic until it is idle, train the CNN, save it.

Exit codes: 0 trained and saved, 1 failure with one line on stderr (broker unreachable at start or while
reading, topic, no records, model directory not writable), 2 usage. Nothing is saved on failure.

``--model`` is checked before anything is read. ``--group-id`` of an earlier run continues after its committed
offsets: the new model learns from the later records only and replaces the saved one; a warning line on stderr
says how many records the committed offsets skip (omit ``--group-id`` to read the whole topic).
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
import uuid
from pathlib import Path

from consumer.batches import add_source_flag
from consumer.runtime import DEFAULT_MODEL, quiet_tensorflow
from stack.config import TOPICS, ConfigError, add_flags, kafka_from_args

READ_BATCH = 1024  # records decoded together: batch first, then decode


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m consumer.train",
        description="Train the MNIST CNN on the records of the training topic (read until idle, kept in memory "
        "for several epochs) and save it.",
    )
    parser.add_argument("--topic", default=TOPICS.train, help=f"training topic (default {TOPICS.train})")
    add_flags(parser, "kafka")
    parser.add_argument(
        "--group-id", help="consumer group (default: a new group each run, so every run reads the whole topic)"
    )
    add_source_flag(parser)
    parser.add_argument("--epochs", type=int, default=10, help="training epochs (default 10)")
    parser.add_argument("--batch-size", type=int, default=64, help="training batch size (default 64)")
    parser.add_argument(
        "--idle-timeout", type=float, default=10.0, help="stop reading after this many seconds without records (10)"
    )
    parser.add_argument("--validation-split", type=float, default=0.1, help="share held out for validation (0.1)")
    parser.add_argument("--model", type=Path, default=Path(DEFAULT_MODEL), help=f"where to save ({DEFAULT_MODEL})")
    parser.add_argument("--quiet", action="store_true", help="no Keras progress bar (the summary lines stay)")
    return parser


def check_model_path(path: Path) -> tuple[int, str] | None:
    """``(exit code, message)`` when ``path`` cannot take the saved model, else None; makes its directory."""
    if path.suffix != ".keras":
        return 2, f"error: --model {path}: the file name must end in .keras (Keras 3's format)"
    if path.is_dir():
        return 1, f"error: --model {path} is a directory; name a file ending in .keras"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        return 1, f"error: --model {path}: cannot create its directory {path.parent}: {error.strerror or error}"
    if not os.access(path.parent, os.W_OK | os.X_OK) or (path.exists() and not os.access(path, os.W_OK)):
        return 1, f"error: --model {path}: {path.parent} is not writable"
    return None


def read_topic(topic: str, group_id: str, servers: str, idle_timeout: float, source: str = "kafka", notes=print):
    """Well-formed records of ``topic`` as numpy arrays, the count of malformed ones skipped, and the seconds
    from the start of reading to the last record."""
    import numpy as np

    from consumer.batches import open_batches

    stream = open_batches(source, topic, group_id, servers, READ_BATCH, idle_timeout)
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
    # The read time ends with the last record, not with the idle wait that detects the end of the stream.
    seconds = last_record_at - started
    if not images:
        return np.zeros((0, 28, 28, 1), np.float32), np.zeros((0,), np.int32), malformed, seconds
    return np.concatenate(images), np.concatenate(labels), malformed, seconds


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if (
        args.epochs < 1
        or args.batch_size < 1
        or not (math.isfinite(args.idle_timeout) and args.idle_timeout > 0)
        or not 0 <= args.validation_split < 1
    ):
        print(
            "error: --epochs and --batch-size must be >= 1, --idle-timeout a finite number > 0, "
            "0 <= --validation-split < 1",
            file=sys.stderr,
        )
        return 2
    try:
        servers = kafka_from_args(args).bootstrap_servers
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    refused = check_model_path(args.model)
    if refused:
        print(refused[1], file=sys.stderr)
        return refused[0]
    quiet_tensorflow()
    import numpy as np

    from consumer.broker import SourceError, committed_records
    from consumer.model import build_model

    group_id = args.group_id or f"mnist-train-{uuid.uuid4().hex[:12]}"
    warn = lambda line: print(line, file=sys.stderr, flush=True)  # noqa: E731
    try:
        if args.group_id:
            skipped = committed_records(servers, group_id, args.topic)
            if skipped:
                warn(
                    f"warning: group {group_id} has committed offsets: {skipped} records of {args.topic} are skipped, "
                    f"the model is trained only on the records after them and replaces {args.model} "
                    "(omit --group-id to train on the whole topic)"
                )
        images, labels, malformed, read_seconds = read_topic(
            args.topic, group_id, servers, args.idle_timeout, args.source, warn
        )
    except SourceError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    if len(labels) == 0:
        print(
            f"error: no usable records on {args.topic} (group {group_id}) within the {args.idle_timeout:g} s idle "
            f"timeout ({malformed} malformed); load data first: make load-mnist",
            file=sys.stderr,
        )
        return 1
    print(
        f"read {len(labels)} records from {args.topic} in {read_seconds:.1f} s "
        f"({len(labels) / max(read_seconds, 1e-9):,.0f} records/s, {malformed} malformed skipped; "
        f"then {args.idle_timeout:g} s idle ended the stream)",
        flush=True,
    )

    order = np.random.default_rng(0).permutation(len(labels))  # a stream may arrive sorted by label
    images, labels = images[order], labels[order]
    model = build_model()
    fit_started = time.perf_counter()
    history = model.fit(
        images,
        labels,
        epochs=args.epochs,
        batch_size=args.batch_size,
        validation_split=args.validation_split,
        verbose=0 if args.quiet else 1,
    )
    fit_seconds = time.perf_counter() - fit_started
    try:
        model.save(args.model)
    except OSError as error:
        print(f"error: cannot save the model to {args.model}: {error.strerror or error}", file=sys.stderr)
        return 1
    last = {name: values[-1] for name, values in history.history.items()}
    validation = f", validation accuracy {last['val_accuracy']:.4f}" if "val_accuracy" in last else ""
    print(
        f"trained on {len(labels)} records, {args.epochs} epochs in {fit_seconds:.1f} s "
        f"({fit_seconds / args.epochs:.1f} s/epoch): training accuracy {last['accuracy']:.4f}{validation}; "
        f"model saved to {args.model}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
