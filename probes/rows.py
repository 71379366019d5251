"""Rows a test or benchmark writes and then recognises on a topic.

One way of marking rows: a row's first three pixels are a *marker* (random, one per test or run) and the next
three its *number* (24 bits, big-endian). The transform turns pixels into a CSV value, so the record's value
starts with ``prefix_of(marker)`` and the number can be read back from it (``number_in``). ``marked_pixels``
makes one such row, ``NumberedRows`` writes 0..count-1 at a steady pace through the loader's COPY.
"""

from __future__ import annotations

import io
import os
import threading
import time
from collections.abc import Sequence

import numpy as np
import psycopg2

from consumer.records.codec import encode_pixels
from loader.database import binary_copy_payload
from probes.database import Postgres, connect

PIXELS = 784
MARKER_BYTES = 3
NUMBER_BYTES = 3


def csv_of(pixels: bytes) -> str:
    """Pixels as the transform renders them: unsigned decimals joined by commas.

    >>> csv_of(bytes([0, 7, 255]))
    '0,7,255'
    """
    return encode_pixels(pixels).decode()


def prefix_of(pixels: bytes) -> str:
    """The start of the record value of a marked row (marker and number, six pixels), or of every row of a run
    when given the three-byte marker alone; ends with a comma, so ``1,2,3,`` does not match ``1,2,30``.

    >>> prefix_of(bytes([1, 2, 3]))
    '1,2,3,'
    >>> prefix_of(bytes([1, 2, 3, 0, 1, 44]) + bytes(778))
    '1,2,3,0,1,44,'
    """
    return csv_of(pixels[: MARKER_BYTES + NUMBER_BYTES]) + ","


def marked_images(marker: bytes, numbers: np.ndarray) -> np.ndarray:
    """``(len(numbers), 784)`` uint8 images: ``marker`` then each number in three bytes, then zeros.

    >>> marked_images(bytes([9, 8, 7]), np.array([0x010203]))[0, :7].tolist()
    [9, 8, 7, 1, 2, 3, 0]
    """
    numbers = np.asarray(numbers, np.int64)
    images = np.zeros((len(numbers), PIXELS), np.uint8)
    images[:, :MARKER_BYTES] = np.frombuffer(marker, np.uint8)
    images[:, 3], images[:, 4], images[:, 5] = numbers >> 16, (numbers >> 8) & 255, numbers & 255
    return images


def marked_pixels(last: int = 0, marker: bytes | None = None, number: int | None = None) -> bytes:
    """784 pixels of one row that its record's value prefix (``prefix_of``) identifies alone: a random marker and
    number unless given, ``last`` as the final pixel.

    >>> pixels = marked_pixels(last=9, marker=bytes([1, 2, 3]), number=5)
    >>> len(pixels), prefix_of(pixels), pixels[-1]
    (784, '1,2,3,0,0,5,', 9)
    """
    marker = os.urandom(MARKER_BYTES) if marker is None else marker
    number = int.from_bytes(os.urandom(NUMBER_BYTES), "big") if number is None else number
    image = marked_images(marker, np.array([number]))[0]
    image[-1] = last
    return image.tobytes()


def number_in(value: bytes | None, prefix: str) -> int | None:
    """The row number a record value carries, or None when it does not start with the run's ``prefix``.

    >>> number_in(b"1,2,3,0,1,2,0,0", "1,2,3,")
    258
    >>> number_in(b"1,2,30,0,1,2,0", "1,2,3,") is None
    True
    """
    if not value or not value.startswith(prefix.encode()):
        return None
    high, mid, low = (int(v) for v in value.split(b",", 6)[3:6])
    return high << 16 | mid << 8 | low


def _marker(prefix: str | bytes | None) -> bytes:
    if prefix is None:
        return os.urandom(MARKER_BYTES)
    if isinstance(prefix, bytes):
        marker = prefix
    else:
        marker = bytes(int(v) for v in prefix.rstrip(",").split(","))
    if len(marker) != MARKER_BYTES:
        raise ValueError(f"a run's prefix is {MARKER_BYTES} pixels, not {prefix!r}")
    return marker


class NumberedRows(threading.Thread):
    """Inserts rows 0..count-1 into ``table`` at ``rate`` rows/s, ``batch`` rows a transaction, through the
    loader's binary COPY. Each row is marked (module docstring): ``prefix`` (the CSV ``"a,b,c,"`` or the three
    marker bytes; random by default) then its number, so the topic tells which rows arrived. The label is the
    number mod 10. A batch that fails (the database is restarting) is retried until it commits, so the thread
    survives a PostgreSQL restart; ``retries`` counts the failed attempts.

    After ``join()``: ``error`` is the exception that stopped it (None when every row committed), ``committed``
    the rows committed, ``commit_times`` the wall-clock ``time.time()`` after each batch's COMMIT returned.
    """

    def __init__(
        self,
        pg: Postgres,
        table: str,
        count: int,
        rate: float,
        batch: int = 250,
        prefix: str | bytes | None = None,
    ) -> None:
        super().__init__(daemon=True)
        self.pg, self.table, self.count, self.rate, self.batch = pg, table, count, rate, batch
        self.marker = _marker(prefix)
        self.committed = 0
        self.commit_times: list[float] = []
        self.retries = 0
        self.error: BaseException | None = None

    @property
    def prefix(self) -> str:
        """What every record value of this run starts with."""
        return prefix_of(self.marker)

    def rows(self, start: int, end: int) -> tuple[np.ndarray, np.ndarray]:
        """Images and labels of rows ``start..end-1``."""
        numbers = np.arange(start, end)
        return marked_images(self.marker, numbers), (numbers % 10).astype(np.uint8)

    def number_of(self, value: bytes | None) -> int | None:
        """The row number a record value carries, or None when the record is not from this run."""
        return number_in(value, self.prefix)

    def run(self) -> None:
        started = time.monotonic()
        conn = None
        try:
            for start in range(0, self.count, self.batch):
                end = min(start + self.batch, self.count)
                delay = started + start / self.rate - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                while True:
                    try:
                        conn = conn or connect(self.pg, connect_timeout=2)
                        with conn.cursor() as cur:
                            cur.copy_expert(
                                f"COPY public.{self.table} (label, pixels) FROM STDIN WITH (FORMAT binary)",
                                io.BytesIO(binary_copy_payload(*self.rows(start, end))),
                            )
                        conn.commit()
                        self.commit_times.append(time.time())
                        break
                    except psycopg2.Error:
                        self.retries += 1
                        conn = None
                        time.sleep(0.5)
                self.committed = end
        except BaseException as error:  # surfaced by the caller
            self.error = error
        finally:
            if conn is not None:
                conn.close()


def insert(pg: Postgres, table: str, rows: Sequence[tuple[object, object]]) -> list[int]:
    """Insert ``(label, pixels)`` rows (either may be None) as the owner in one transaction; return their ids."""
    conn = connect(pg)
    try:
        with conn, conn.cursor() as cur:
            ids = []
            for label, pixels in rows:
                cur.execute(
                    f"INSERT INTO public.{table} (label, pixels) VALUES (%s, %s) RETURNING id",
                    (label, psycopg2.Binary(pixels) if pixels is not None else None),
                )
                ids.append(cur.fetchone()[0])
            return ids
    finally:
        conn.close()


def execute(pg: Postgres, statement: str, params: Sequence[object] = ()) -> None:
    """Run one statement as the owner and commit it."""
    conn = connect(pg)
    try:
        with conn, conn.cursor() as cur:
            cur.execute(statement, params)
    finally:
        conn.close()
