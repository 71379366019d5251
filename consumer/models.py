"""``python -m consumer.models``: the versions in a model store, and a rollback.

``list`` prints one line a version, oldest first: when it was published, from which checkpoint, how many records
the model had learned and its prequential accuracy (what ``consumer.train`` wrote in ``vNNNN.json``; a version
``train --follow`` published between checkpoints says "model alone" and the checkpoint's version before it), ``*``
marking the version latest points to. ``promote VERSION`` points latest at that version: ``consumer.evaluate``
and ``consumer.predict`` following latest pick it up at their next batch. Promoting takes the store's publisher
lock, so it refuses while a trainer publishes into the store (that trainer would move latest on again).

Exit codes: 0 done, 1 failure with one line on stderr (no such store or version, store in use), 2 usage.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from consumer.cli import CommandError, add_dataset_flag, dataset_of, refuse, store_of
from consumer.store.versions import DEFAULT_STORE, ModelStore, StoreLockedError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m consumer.models", description="List the versions of a model store, or promote one to latest."
    )
    add_dataset_flag(parser)
    parser.add_argument(
        "--model-dir", type=Path, help=f"model store (default: the dataset's, models/<dataset>; {DEFAULT_STORE})"
    )
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("list", help="one line a version, oldest first; * marks latest")
    promote = commands.add_parser("promote", help="point latest at VERSION (a rollback)")
    promote.add_argument("version", type=int, metavar="VERSION")
    return parser


def version_line(info: dict) -> str:
    """One line of ``list`` for a version's info (``ModelStore.describe``).

    >>> version_line({"version": 3, "latest": True, "records": 1200, "prequential_accuracy": 0.91234,
    ...               "checkpoint": "ckpt/ckpt-000004", "published_at": 0})
    '* v0003  1970-01-01 00:00:00 UTC  1200 records  prequential accuracy 0.9123  from ckpt/ckpt-000004'
    >>> version_line({"version": 4, "records": 1264, "kind": "model", "checkpoint_version": 3, "published_at": 5})
    '  v0004  1970-01-01 00:00:05 UTC  1264 records  model alone, after checkpoint v0003'
    """
    mark = "*" if info.get("latest") else " "
    when = info.get("published_at")
    when_text = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(when)) if when is not None else "(no info)"
    records = f"  {info['records']} records" if "records" in info else ""
    accuracy = info.get("prequential_accuracy")
    accuracy_text = f"  prequential accuracy {accuracy:.4f}" if isinstance(accuracy, (int, float)) else ""
    source = f"  from {info['checkpoint']}" if info.get("checkpoint") else ""
    if info.get("kind") == "model":  # published between checkpoints by train --follow: weights only
        after = info.get("checkpoint_version")
        source = "  model alone" + (f", after checkpoint v{after:04d}" if isinstance(after, int) else "")
    return f"{mark} v{info['version']:04d}  {when_text}{records}{accuracy_text}{source}"


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        dataset = dataset_of(args) if args.model_dir is None else None
    except CommandError as error:
        return refuse(error)
    store = ModelStore(args.model_dir if dataset is None else store_of(dataset))
    if not store.versions():
        print(f"error: no model versions in {store.directory} (train first: python -m consumer.train)", file=sys.stderr)
        return 1
    if args.command == "list":
        for info in store.describe():
            print(version_line(info))
        return 0
    try:
        lock = store.lock()
    except (StoreLockedError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    try:
        store.promote(args.version)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    finally:
        lock.release()
    print(f"latest in {store.directory} is now version {args.version}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
