"""Turning Kafka records into model inputs with NumPy: a pure function, no I/O, no TensorFlow.

A record's value is a dataset's feature values joined by commas, its key the label's class index as a decimal
string (docs/design.md, Data contract); ``RecordFormat`` says how many values and classes (``RecordFormat.of``
a ``stack.datasets`` dataset). MNIST's (``MNIST_FORMAT``, every default): 784 unsigned integers, scaled by 1/255.
``encode_records`` writes it (what the connector's transform produces, for topics of our own and tests),
``decode_batch`` decodes a whole batch in one pass over the joined bytes and leaves out malformed records instead
of failing the batch, with exactly the rules (and the output, bit for bit) of the TensorFlow decode in
``consumer.records.tf_decode`` that the tfio source uses: ``tests/unit/consumer/records/test_codec.py`` runs both
on the same valid and malformed records.

Decoded, a record is what every model takes as it comes: a flat float32 vector of its feature values (MNIST:
784 in [0, 1]). A model that needs the 28 × 28 grid shapes the vector itself (``IMAGE_SHAPE``, its first layer).

An image dataset (unsigned bytes, ``image=True``) takes the integer path below with its own counts; a numeric
one (``image=False``) decodes decimal numbers as they are, each finite, its key below the number of classes
(``decode_numeric``).

Speed (docs/benchmarks.md, bench/reading_bench.py): the checks below cost about as much as the parse, and a
batch that passes them all is parsed at once by ``np.fromstring``. A batch holding a record that fails one of
the fast checks is checked again record by record with the exact rules, so a bad record costs only its batch
the slow path.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass

import numpy as np

NUM_COLUMNS = 784
IMAGE_SHAPE = (28, 28, 1)  # the grid a convolutional model reshapes the 784 values into, row by row
NUM_CLASSES = 10

# The exact rules, as the TensorFlow decode has them: 784 integers of 1-3 digits in 0..255 joined by commas,
# and a key of 1-3 digits below 10.
_VALUE = re.compile(rb"[0-9]{1,3}(?:,[0-9]{1,3})*")
# A numeric dataset's values: decimal text as the transform writes a numeric column (Java's toString: an exponent
# is possible); "NaN", "Infinity" and empty values do not match, an overflow to infinity is caught after parsing.
_NUMBER = rb"[-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?"
_NUMBERS = re.compile(_NUMBER + rb"(?:," + _NUMBER + rb")*")
_INDEX = re.compile(rb"[0-9]{1,9}")
_FLOAT32_MAX = float(np.finfo(np.float32).max)


@dataclass(frozen=True)
class RecordFormat:
    """What a record holds: ``num_features`` values, a key below ``num_classes``; ``image``: the values are
    unsigned bytes scaled by 1/255 (MNIST), else decimal numbers taken as they are.

    >>> RecordFormat(4, 3, image=False).decode([b"5.1,3.5,1.4,0.2", b"1,2,3"], [b"2", b"0"]).labels.tolist()
    [2]
    """

    num_features: int = NUM_COLUMNS
    num_classes: int = NUM_CLASSES
    image: bool = True

    @classmethod
    def of(cls, dataset) -> RecordFormat:
        """The format of a ``stack.datasets.Dataset``: an image dataset's bytes, else its numbers."""
        return cls(dataset.num_features, dataset.num_classes, image=dataset.image_shape is not None)

    def decode(self, values: list[bytes | None], keys: list[bytes | None]) -> Decoded:
        """``decode_batch`` in this format."""
        return decode_batch(values, keys, self)

    def empty(self) -> np.ndarray:
        """No records: float32 ``(0, num_features)``."""
        return np.zeros((0, self.num_features), np.float32)

    def pack(self, images: np.ndarray) -> np.ndarray:
        """Decoded values as held in memory: an image's bytes back (exact, a quarter of the memory), numbers as
        float32 (``unpack`` turns them back).

        >>> MNIST_FORMAT.pack(np.array([[0.0, 1.0]], np.float32)).tolist()
        [[0, 255]]
        """
        if self.image:
            return np.rint(images * np.float32(255)).astype(np.uint8)
        return np.asarray(images, np.float32)

    def unpack(self, packed: np.ndarray) -> np.ndarray:
        """``pack``'s arrays back to the model's float32 values, as the decode makes them."""
        if self.image:
            return packed.astype(np.float32) / np.float32(255)
        return packed.astype(np.float32)

    def packed_dtype(self) -> type:
        return np.uint8 if self.image else np.float32


def _keys(num_classes: int) -> frozenset[bytes]:
    """The keys an image format accepts: a class index of 1-3 digits (leading zeros allowed)."""
    return frozenset(f"{index:0{width}d}".encode() for width in (1, 2, 3) for index in range(num_classes))


_KEYS = _keys(NUM_CLASSES)
_DIGITS_AND_COMMAS = b"0123456789,"
# Records decoded in one pass: measured by hand in memory on the sample, 256 a pass 104k/s, 1,024 77k/s, 4,096 55k/s.
CHUNK = 256


@dataclass(frozen=True)
class Decoded:
    """One decoded batch: ``images`` float32 ``(n, NUM_COLUMNS)`` in [0, 1] (the flat feature vectors every model
    takes), ``labels`` int32 ``(n,)``, and ``valid``, one bool a record in, True for the ``n`` records that were
    decoded (in order)."""

    images: np.ndarray
    labels: np.ndarray
    valid: np.ndarray

    @property
    def malformed(self) -> int:
        return int(self.valid.size - np.count_nonzero(self.valid))


def _parse(
    values: list[bytes], keys: list[bytes], columns: int = NUM_COLUMNS, accepted: frozenset[bytes] = _KEYS
) -> tuple[np.ndarray, np.ndarray] | None:
    """Pixels ``(n, columns)`` and labels of records that are all well formed, or None when a fast check fails.

    The checks are conservative: every batch they pass is one the exact rules accept token for token. Only
    digits and commas; 783 commas a record; 784 numbers a record parsed (an empty value stops the parse short);
    and no leading zero (the digits in the batch are exactly those of the parsed numbers). The parse is into
    uint16, which is safe: a number above 65535 wraps or saturates to one with fewer digits than its text
    (caught by the digit count) or to one above 255 (caught by the range check in ``decode_batch``).
    """
    if not values or any(key not in accepted for key in keys):
        return None
    joined = b",".join(values)
    if joined.translate(None, _DIGITS_AND_COMMAS) or any(value.count(b",") != columns - 1 for value in values):
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # "could not be read to its end": an empty value
        try:
            pixels = np.fromstring(joined, dtype=np.uint16, sep=",")
        except ValueError:  # what NumPy announces that warning will become
            return None
    if pixels.size != len(values) * columns:
        return None
    digits = len(joined) - (pixels.size - 1)
    if int(np.count_nonzero(pixels >= 10)) + int(np.count_nonzero(pixels >= 100)) + pixels.size != digits:
        return None  # a leading zero ("007"), or a number too long: the exact rules decide
    return pixels.reshape(len(values), columns), np.array([int(key) for key in keys], np.int32)


def _well_formed(value: bytes, key: bytes, columns: int = NUM_COLUMNS, accepted: frozenset[bytes] = _KEYS) -> bool:
    """The exact rules for one record, apart from the 0..255 range (checked on the numbers)."""
    return key in accepted and value.count(b",") == columns - 1 and _VALUE.fullmatch(value) is not None


def decode_batch(values: list[bytes], keys: list[bytes], fmt: RecordFormat | None = None) -> Decoded:
    """Decode record values and keys (bytes, as a Kafka client returns them; None counts as empty) in ``fmt``
    (default MNIST's).

    Records whose value is not 784 integers in 0..255 or whose key is not a label 0..9 are left out and
    marked in ``valid``, never raised (another format: its own counts; a numeric one, ``decode_numeric``).

    >>> good = ",".join(["255"] + ["0"] * 783).encode()
    >>> batch = decode_batch([good, b"1,2,3", None, good], [b"7", b"7", b"7", b"3"])
    >>> batch.images.shape, batch.labels.tolist(), batch.valid.tolist(), batch.malformed
    ((2, 784), [7, 3], [True, False, False, True], 2)
    >>> float(batch.images[0, 0]), float(batch.images[0, 1])
    (1.0, 0.0)
    """
    fmt = fmt or MNIST_FORMAT
    if not fmt.image:
        return decode_numeric(values, keys, fmt.num_features, fmt.num_classes)
    if len(values) > CHUNK:  # a few hundred records fit the CPU's cache: 4,096 at once decode at half the speed
        parts = [decode_batch(values[i : i + CHUNK], keys[i : i + CHUNK], fmt) for i in range(0, len(values), CHUNK)]
        return Decoded(
            np.concatenate([part.images for part in parts]),
            np.concatenate([part.labels for part in parts]),
            np.concatenate([part.valid for part in parts]),
        )
    values = [value or b"" for value in values]
    keys = [key or b"" for key in keys]
    columns = fmt.num_features
    accepted = _KEYS if fmt.num_classes == NUM_CLASSES else _keys(fmt.num_classes)
    valid = np.ones(len(values), bool)
    parsed = _parse(values, keys, columns, accepted)
    if parsed is None:
        valid = np.array(
            [_well_formed(value, key, columns, accepted) for value, key in zip(values, keys, strict=True)], bool
        )
        chosen = np.flatnonzero(valid)
        parsed = _parse([values[i] for i in chosen], [keys[i] for i in chosen], columns, accepted)
        if parsed is None:  # nothing well formed (or only leading zeros, which _parse leaves to the rules)
            parsed = _parse_each([values[i] for i in chosen], [keys[i] for i in chosen], columns)
    else:
        chosen = np.arange(len(values))
    pixels, labels = parsed
    in_range = pixels.max(axis=1, initial=0) <= 255
    valid[chosen[~in_range]] = False
    # x * (1/255) in float32, as TensorFlow computes x / 255.0 inside a tf.function (grappler turns division by a
    # constant into multiplication by its reciprocal): the two decodes agree bit for bit.
    images = (pixels[in_range].astype(np.float32) * np.float32(1.0 / 255.0)).reshape(-1, columns)
    return Decoded(images, labels[in_range], valid)


def _parse_each(values: list[bytes], keys: list[bytes], columns: int = NUM_COLUMNS) -> tuple[np.ndarray, np.ndarray]:
    """Pixels and labels of records already known to be well formed, one by one (leading zeros allowed)."""
    pixels = np.array([value.split(b",") for value in values], dtype=np.int64)
    return pixels.reshape(len(values), columns), np.array([int(key) for key in keys], np.int32)


def decode_numeric(values: list[bytes | None], keys: list[bytes | None], features: int, classes: int) -> Decoded:
    """Decode a numeric dataset's records: ``features`` finite decimal numbers joined by commas, the key a class
    index below ``classes``. Any other record is left out and marked in ``valid``, never raised.

    >>> batch = decode_numeric([b"5.1,3.5,1.4,0.2", b"1,2,nan,4", b"1,2,3", b"1e999,0,0,0", b"6,3,5,2"],
    ...                        [b"0", b"1", b"1", b"1", b"3"], features=4, classes=3)
    >>> batch.images.astype(float).round(2).tolist(), batch.labels.tolist(), batch.valid.tolist()
    ([[5.1, 3.5, 1.4, 0.2]], [0], [True, False, False, False, False])
    """
    rows: list[np.ndarray] = []
    labels: list[int] = []
    valid = np.zeros(len(values), bool)
    for i, (value, key) in enumerate(zip(values, keys, strict=True)):
        if not value or not key or not _INDEX.fullmatch(key) or int(key) >= classes:
            continue
        if value.count(b",") != features - 1 or not _NUMBERS.fullmatch(value):
            continue
        row = np.array(value.split(b","), dtype=np.float64)
        if not (np.abs(row) <= _FLOAT32_MAX).all():
            continue  # 1e999 (infinity), or a number beyond float32: no value a model can take
        rows.append(row)
        labels.append(int(key))
        valid[i] = True
    images = np.array(rows, np.float32).reshape(len(rows), features)
    return Decoded(images, np.array(labels, np.int32), valid)


def encode_numbers(rows: np.ndarray, labels: np.ndarray) -> list[tuple[bytes, bytes]]:
    """``(key, value)`` records of a numeric dataset, the inverse of ``decode_numeric``: the class index, and the
    values as decimal text (``repr`` of each float: read back exactly).

    >>> encode_numbers(np.array([[5.1, 3.5]]), np.array([2]))
    [(b'2', b'5.1,3.5')]
    """
    flat = np.asarray(rows, np.float64).reshape(len(rows), -1)
    return [
        (str(int(label)).encode(), ",".join(repr(float(v)) for v in row).encode())
        for row, label in zip(flat, labels, strict=True)
    ]


def encode_pixels(pixels: np.ndarray | bytes) -> bytes:
    """One record value: the pixels (unsigned integers, any shape) as decimals joined by commas.

    >>> encode_pixels(bytes([0, 7, 255]))
    b'0,7,255'
    """
    flat = np.frombuffer(pixels, np.uint8) if isinstance(pixels, bytes) else np.asarray(pixels).reshape(-1)
    return ",".join(map(str, flat.tolist())).encode()


def encode_records(images: np.ndarray, labels: np.ndarray) -> list[tuple[bytes, bytes]]:
    """``(key, value)`` records of the contract, the inverse of ``decode_batch``: the label as a decimal string,
    and the pixels of each ``uint8`` image (``(n, 784)`` or ``(n, 28, 28)``) joined by commas.

    >>> encode_records(np.array([[0, 7, 255]], np.uint8), np.array([3]))
    [(b'3', b'0,7,255')]
    """
    flat = np.asarray(images).reshape(len(images), -1)
    return [(str(int(label)).encode(), encode_pixels(row)) for row, label in zip(flat, labels, strict=True)]


#: MNIST's records: 784 bytes scaled by 1/255, ten classes; every default.
MNIST_FORMAT = RecordFormat()
