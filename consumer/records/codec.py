"""Turning Kafka records into model inputs with NumPy: a pure function, no I/O, no TensorFlow.

A record's value is 784 unsigned integers joined by commas, its key the label as a decimal string
(docs/design.md, Data contract). ``encode_records`` writes it (what the connector's transform produces, for
topics of our own and tests), ``decode_batch`` decodes a whole batch in one pass over the joined bytes and
leaves out malformed records instead of failing the batch, with exactly the rules (and the output, bit for bit)
of the TensorFlow decode in ``consumer.records.tf_decode`` that the tfio source uses:
``tests/unit/consumer/records/test_codec.py`` runs both on the same valid and malformed records.

Decoded, a record is what every model takes as it comes: a flat float32 vector of its 784 feature values in
[0, 1]. A model that needs the 28 × 28 grid shapes the vector itself (``IMAGE_SHAPE``, its first layer).

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
_KEYS = frozenset(f"{zeros}{digit}".encode() for zeros in ("", "0", "00") for digit in range(NUM_CLASSES))
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


def _parse(values: list[bytes], keys: list[bytes]) -> tuple[np.ndarray, np.ndarray] | None:
    """Pixels ``(n, 784)`` and labels of records that are all well formed, or None when a fast check fails.

    The checks are conservative: every batch they pass is one the exact rules accept token for token. Only
    digits and commas; 783 commas a record; 784 numbers a record parsed (an empty value stops the parse short);
    and no leading zero (the digits in the batch are exactly those of the parsed numbers). The parse is into
    uint16, which is safe: a number above 65535 wraps or saturates to one with fewer digits than its text
    (caught by the digit count) or to one above 255 (caught by the range check in ``decode_batch``).
    """
    if not values or any(key not in _KEYS for key in keys):
        return None
    joined = b",".join(values)
    if joined.translate(None, _DIGITS_AND_COMMAS) or any(value.count(b",") != NUM_COLUMNS - 1 for value in values):
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # "could not be read to its end": an empty value
        try:
            pixels = np.fromstring(joined, dtype=np.uint16, sep=",")
        except ValueError:  # what NumPy announces that warning will become
            return None
    if pixels.size != len(values) * NUM_COLUMNS:
        return None
    digits = len(joined) - (pixels.size - 1)
    if int(np.count_nonzero(pixels >= 10)) + int(np.count_nonzero(pixels >= 100)) + pixels.size != digits:
        return None  # a leading zero ("007"), or a number too long: the exact rules decide
    return pixels.reshape(len(values), NUM_COLUMNS), np.array([int(key) for key in keys], np.int32)


def _well_formed(value: bytes, key: bytes) -> bool:
    """The exact rules for one record, apart from the 0..255 range (checked on the numbers)."""
    return key in _KEYS and value.count(b",") == NUM_COLUMNS - 1 and _VALUE.fullmatch(value) is not None


def decode_batch(values: list[bytes], keys: list[bytes]) -> Decoded:
    """Decode record values and keys (bytes, as a Kafka client returns them; None counts as empty).

    Records whose value is not 784 integers in 0..255 or whose key is not a label 0..9 are left out and
    marked in ``valid``, never raised.

    >>> good = ",".join(["255"] + ["0"] * 783).encode()
    >>> batch = decode_batch([good, b"1,2,3", None, good], [b"7", b"7", b"7", b"3"])
    >>> batch.images.shape, batch.labels.tolist(), batch.valid.tolist(), batch.malformed
    ((2, 784), [7, 3], [True, False, False, True], 2)
    >>> float(batch.images[0, 0]), float(batch.images[0, 1])
    (1.0, 0.0)
    """
    if len(values) > CHUNK:  # a few hundred records fit the CPU's cache: 4,096 at once decode at half the speed
        parts = [decode_batch(values[i : i + CHUNK], keys[i : i + CHUNK]) for i in range(0, len(values), CHUNK)]
        return Decoded(
            np.concatenate([part.images for part in parts]),
            np.concatenate([part.labels for part in parts]),
            np.concatenate([part.valid for part in parts]),
        )
    values = [value or b"" for value in values]
    keys = [key or b"" for key in keys]
    valid = np.ones(len(values), bool)
    parsed = _parse(values, keys)
    if parsed is None:
        valid = np.array([_well_formed(value, key) for value, key in zip(values, keys, strict=True)], bool)
        chosen = np.flatnonzero(valid)
        parsed = _parse([values[i] for i in chosen], [keys[i] for i in chosen])
        if parsed is None:  # nothing well formed (or only leading zeros, which _parse leaves to the rules)
            parsed = _parse_each([values[i] for i in chosen], [keys[i] for i in chosen])
    else:
        chosen = np.arange(len(values))
    pixels, labels = parsed
    in_range = pixels.max(axis=1, initial=0) <= 255
    valid[chosen[~in_range]] = False
    # x * (1/255) in float32, as TensorFlow computes x / 255.0 inside a tf.function (grappler turns division by a
    # constant into multiplication by its reciprocal): the two decodes agree bit for bit.
    images = (pixels[in_range].astype(np.float32) * np.float32(1.0 / 255.0)).reshape(-1, NUM_COLUMNS)
    return Decoded(images, labels[in_range], valid)


def _parse_each(values: list[bytes], keys: list[bytes]) -> tuple[np.ndarray, np.ndarray]:
    """Pixels and labels of records already known to be well formed, one by one (leading zeros allowed)."""
    pixels = np.array([value.split(b",") for value in values], dtype=np.int64)
    return pixels.reshape(len(values), NUM_COLUMNS), np.array([int(key) for key in keys], np.int32)


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
