"""Parse MNIST-format IDX files (the official MNIST and Fashion-MNIST format). Pure functions apart from
``read_idx``, which only reads and gunzips a file.

Format: a big-endian header ``0x00 0x00 <type> <ndim>`` then ``ndim`` uint32 sizes, then the data.
Images are ``idx3`` (type 0x08 = unsigned byte, 3 dims: count, rows, columns), labels ``idx1``.
"""

from __future__ import annotations

import gzip
import struct
import zlib
from pathlib import Path

import numpy as np

IMAGES_MAGIC = 0x00000803  # unsigned bytes, 3 dimensions
LABELS_MAGIC = 0x00000801  # unsigned bytes, 1 dimension
IMAGE_SHAPE = (28, 28)


class IdxError(Exception):
    """A file is not usable MNIST-format data; the message names the file and what is wrong."""


def parse_idx_images(data: bytes, name: str = "images") -> np.ndarray:
    """Decode an ``idx3-ubyte`` image file into a ``(count, 784)`` uint8 array.

    >>> header = struct.pack(">IIII", 0x803, 1, 28, 28)
    >>> parse_idx_images(header + bytes(784)).shape
    (1, 784)
    """
    magic, count, rows, cols = _header(data, name, IMAGES_MAGIC, 3)
    if (rows, cols) != IMAGE_SHAPE:
        raise IdxError(f"{name}: images are {rows}x{cols}, expected 28x28")
    return _payload(data, name, 16, count * rows * cols).reshape(count, rows * cols)


def parse_idx_labels(data: bytes, name: str = "labels") -> np.ndarray:
    """Decode an ``idx1-ubyte`` label file into a ``(count,)`` uint8 array.

    >>> parse_idx_labels(struct.pack(">II", 0x801, 3) + bytes([7, 0, 9])).tolist()
    [7, 0, 9]
    """
    _, count = _header(data, name, LABELS_MAGIC, 1)
    return _payload(data, name, 8, count)


def _header(data: bytes, name: str, magic: int, ndim: int) -> tuple[int, ...]:
    size = 4 + 4 * ndim
    if len(data) < 4:
        raise IdxError(f"{name}: file is truncated: {len(data)} bytes, too short for an IDX header")
    (found,) = struct.unpack(">I", data[:4])
    if found != magic:
        kind = "images (idx3)" if magic == IMAGES_MAGIC else "labels (idx1)"
        raise IdxError(f"{name}: wrong magic number 0x{found:08x}, expected 0x{magic:08x} for {kind}")
    if len(data) < size:
        raise IdxError(f"{name}: file is truncated: {len(data)} bytes, the header alone needs {size}")
    return struct.unpack(f">I{ndim}I", data[:size])


def _payload(data: bytes, name: str, offset: int, expected: int) -> np.ndarray:
    found = len(data) - offset
    if found < expected:
        raise IdxError(f"{name}: file is truncated: {found} data bytes, the header announces {expected}")
    if found > expected:
        raise IdxError(f"{name}: {found - expected} unexpected bytes after the {expected} the header announces")
    return np.frombuffer(data, dtype=np.uint8, offset=offset)


def read_idx(path: Path) -> bytes:
    """The bytes of an IDX file, gunzipped when it starts with the gzip magic bytes."""
    try:
        raw = Path(path).read_bytes()
    except FileNotFoundError:
        raise IdxError(f"{path}: file not found") from None
    except OSError as error:
        raise IdxError(f"{path}: cannot read: {error.strerror}") from None
    if raw[:2] != b"\x1f\x8b":
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as error:
        raise IdxError(f"{path}: corrupt gzip data: {error}") from None


def read_idx_pair(images_path: Path, labels_path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Images ``(n, 784)`` and labels ``(n,)`` from two IDX files that must hold the same number of items."""
    images = parse_idx_images(read_idx(images_path), str(images_path))
    labels = parse_idx_labels(read_idx(labels_path), str(labels_path))
    if len(images) != len(labels):
        raise IdxError(f"{images_path}: {len(images)} images but {labels_path.name} has {len(labels)} labels")
    return images, labels
