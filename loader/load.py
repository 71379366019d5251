"""The two ways of loading: bulk (one transaction, COPY) and streaming (small transactions at a steady rate)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from loader.database import copy_rows
from loader.rows import Writer
from loader.source import Split

BULK_CHUNK = 5000  # rows a COPY inside the one transaction: bounds memory and moves the progress bar


@dataclass
class LoadResult:
    rows: int
    seconds: float
    interrupted: bool = False

    @property
    def rate(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else 0.0


def chunks(splits: list[Split], size: int) -> Iterator[Split]:
    """Each split's rows in runs of at most ``size``, in order, under the split's name.

    >>> import numpy as np
    >>> split = Split("train", np.zeros((5, 784), np.uint8), np.arange(5, dtype=np.uint8))
    >>> [(chunk.name, chunk.labels.tolist()) for chunk in chunks([split], 2)]
    [('train', [0, 1]), ('train', [2, 3]), ('train', [4])]
    """
    for split in splits:
        for start in range(0, len(split), size):
            yield Split(split.name, split.images[start : start + size], split.labels[start : start + size])


def bulk_load(
    conn, splits: list[Split], progress: Callable[[int], None], schema: str = "public", write: Writer | None = None
) -> LoadResult:
    """COPY every split in one transaction (``write``: another dataset's writer, ``loader.rows``): all rows are
    committed, or none (any error rolls back)."""
    started = time.perf_counter()
    rows = 0
    try:
        for chunk in chunks(splits, BULK_CHUNK):
            if write is None:
                copy_rows(conn, chunk.name, chunk.images, chunk.labels, schema)
            else:
                write(conn, chunk.name, chunk.images, chunk.labels)
            rows += len(chunk)
            progress(len(chunk))
        conn.commit()
    except BaseException:
        conn.rollback()
        raise
    return LoadResult(rows, time.perf_counter() - started)


def stream_load(
    conn,
    splits: list[Split],
    rate: float,
    batch: int,
    progress: Callable[[int], None],
    clock: Callable[[], float] = time.perf_counter,
    sleep: Callable[[float], None] = time.sleep,
    write: Writer = copy_rows,
) -> LoadResult:
    """Insert ``batch`` rows a transaction (``write``: MNIST's COPY by default), paced so that row ``n`` commits
    at ``n / rate`` seconds.

    Pacing follows a fixed schedule from the start (not a sleep after each batch), so slow batches do not
    accumulate drift. Ctrl-C stops after rolling back the batch in flight; committed batches stay.
    """
    started = clock()
    rows = 0
    try:
        for chunk in chunks(splits, batch):
            delay = started + rows / rate - clock()
            if delay > 0:
                sleep(delay)
            write(conn, chunk.name, chunk.images, chunk.labels)
            conn.commit()
            rows += len(chunk)
            progress(len(chunk))
    except KeyboardInterrupt:
        conn.rollback()
        return LoadResult(rows, clock() - started, interrupted=True)
    except BaseException:
        conn.rollback()
        raise
    return LoadResult(rows, clock() - started)
