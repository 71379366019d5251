"""A topic read as the changelog of its table: which records are a row's latest version, which are deletes.

Every change of a row carries the row's table and primary key in headers (``stack.contract``'s
``table_header``/``id_header``) and Debezium's operation in ``__op`` (``d`` for a delete, which arrives as the
row's last version, a normal record). Bounded runs (one-shot ``consumer.train``) learn the table as of the offsets
they read to: the latest version of each row, deleted rows left out. ``LatestVersions`` finds those records in one
pass over the headers; it names a record by its partition and its place among that partition's records in the
read (``(partition, n)``), which a re-read of the same offsets range gives again. Memory: one entry a row.

A record that names no row (written without the headers) is a row of its own: it is always learned.

Pure: no Kafka, no TensorFlow.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from consumer.records.predictions import is_delete
from stack.contract import MNIST, Contract

Headers = Sequence[tuple[str, bytes]] | None


def header(headers: Headers, name: str) -> bytes | None:
    """The value of header ``name`` (the last one when repeated), or None.

    >>> header([("a", b"1"), ("b", b"2")], "b"), header(None, "b")
    (b'2', None)
    """
    found = None
    for key, value in headers or ():
        if key == name:
            found = value
    return found


def deletes(headers: Sequence[Headers]) -> np.ndarray:
    """Which records of a batch (their headers, in order) are deletes, as a boolean mask.

    >>> deletes([[("__op", b"c")], [("__op", b"d")], None]).tolist()
    [False, True, False]
    """
    return np.fromiter((is_delete(h) for h in headers), bool, len(headers))


def row_of(headers: Headers, names: Contract = MNIST) -> tuple[bytes, bytes] | None:
    """``(table, id)`` the record is a version of (the headers ``names``, a dataset's contract, spells), or None
    when it names no row.

    >>> row_of([("mnist.table", b"mnist_train"), ("mnist.id", b"7")]), row_of([])
    ((b'mnist_train', b'7'), None)
    """
    table, row_id = header(headers, names.table_header), header(headers, names.id_header)
    return None if table is None or row_id is None else (table, row_id)


class Places:
    """Numbers each partition's records in reading order: ``(partition, n)`` names a record within one read."""

    def __init__(self) -> None:
        self.seen: dict[int, int] = {}

    def of(self, partitions: Sequence[int]) -> list[tuple[int, int]]:
        """The places of a batch's records (their partitions, in reading order)."""
        places = []
        for p in partitions:
            n = self.seen.get(p, 0)
            self.seen[p] = n + 1
            places.append((p, n))
        return places


class LatestVersions:
    """The latest version of each row of a changelog, fed batch by batch in reading order.

    >>> latest = LatestVersions()
    >>> row = lambda i, op=b"c": [("mnist.table", b"t"), ("mnist.id", i), ("__op", op)]
    >>> latest.add([0, 0, 1, 0], [row(b"1"), row(b"2"), row(b"1", b"u"), None])
    >>> latest.add([1], [row(b"2", b"d")])
    >>> latest.records, latest.rows, sorted(latest.live())
    (5, 2, [(0, 2), (1, 0)])
    """

    def __init__(self, names: Contract = MNIST) -> None:
        self.names = names  # the dataset whose headers name the rows
        self.places = Places()
        self._latest: dict[object, tuple[int, int] | None] = {}  # row -> place of its latest version, None: deleted
        self.records = 0

    def add(self, partitions: Sequence[int], headers: Sequence[Headers]) -> None:
        """Take the next records read: their partitions and headers, in reading order."""
        for place, record_headers in zip(self.places.of(partitions), headers, strict=True):
            row = row_of(record_headers, self.names)
            self._latest[row if row is not None else place] = None if is_delete(record_headers) else place
        self.records += len(partitions)

    def live(self) -> set[tuple[int, int]]:
        """The places of the records to learn: each live row's latest version."""
        return {place for place in self._latest.values() if place is not None}

    @property
    def rows(self) -> int:
        """Rows alive as of the records taken."""
        return sum(1 for place in self._latest.values() if place is not None)
