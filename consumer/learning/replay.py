"""Bounded samples of a stream: the replay reservoir of continual training and the shuffle buffer of epochs.

Both hold records packed by their ``RecordFormat`` (``consumer.records.codec``) and hand them back as the model's
flat ``float32`` vectors. MNIST's (the default) are ``uint8`` ``(n, 784)``, the pixels as they travel: a decoded
value is ``pixel / 255`` in float32, and ``round(x * 255)`` gives the pixel back exactly, so nothing is lost and
the memory is a quarter. A numeric dataset's values are held as the float32 they decoded to.

Pure: NumPy only, no TensorFlow, no Kafka.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from consumer.records.codec import MNIST_FORMAT, RecordFormat


def to_pixels(images: np.ndarray) -> np.ndarray:
    """Decoded ``float32`` values in [0, 1] back to their ``uint8`` pixels (exact, same shape).

    >>> to_pixels(np.array([0.0, 1 / 255, 1.0], np.float32)).tolist()
    [0, 1, 255]
    """
    return np.rint(images * np.float32(255)).astype(np.uint8)


def to_images(pixels: np.ndarray) -> np.ndarray:
    """``uint8`` pixels to the model's ``float32`` values, as the decode makes them (same shape)."""
    return pixels.astype(np.float32) / np.float32(255)


class Reservoir:
    """A uniform sample of at most ``capacity`` records of everything ``add``-ed (reservoir sampling,
    Vitter's algorithm R): after ``seen`` records each one is in the sample with probability capacity/seen.

    >>> reservoir = Reservoir(3, seed=0)
    >>> reservoir.add(np.zeros((10, 784), np.float32), np.arange(10, dtype=np.int32))
    >>> len(reservoir), reservoir.seen
    (3, 10)
    """

    def __init__(self, capacity: int, seed: int = 0, fmt: RecordFormat = MNIST_FORMAT) -> None:
        if capacity < 0:
            raise ValueError("capacity must be >= 0")
        self.capacity, self.fmt = capacity, fmt
        self.pixels = np.zeros((capacity, fmt.num_features), fmt.packed_dtype())
        self.labels = np.zeros((capacity,), np.int32)
        self.seen = 0
        self.rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        return min(self.seen, self.capacity)

    def add(self, images: np.ndarray, labels: np.ndarray) -> None:
        """Offer decoded records (``float32`` ``(n, 784)`` values, ``int32`` labels) to the sample."""
        n = len(labels)
        if n == 0 or self.capacity == 0:
            self.seen += n
            return
        index = self.seen + np.arange(n)
        slots = np.where(index < self.capacity, index, self.rng.integers(0, index + 1))
        keep = slots < self.capacity
        # Repeated slots: the later record wins, as in the one-at-a-time algorithm (NumPy assigns in order).
        self.pixels[slots[keep]] = self.fmt.pack(images[keep])
        self.labels[slots[keep]] = labels[keep]
        self.seen += n

    def sample(self, count: int) -> tuple[np.ndarray, np.ndarray]:
        """``count`` records drawn uniformly (with replacement) from the sample; fewer when it is empty."""
        size = len(self)
        if size == 0 or count <= 0:
            return self.fmt.empty(), np.zeros((0,), np.int32)
        chosen = self.rng.integers(0, size, count)
        return self.fmt.unpack(self.pixels[chosen]), self.labels[chosen]

    def save(self, path: Path) -> None:
        """Write the sample, the count and the random state to ``path`` (an ``.npz`` file)."""
        size = len(self)
        with open(path, "wb") as handle:
            np.savez(
                handle,
                pixels=self.pixels[:size],
                labels=self.labels[:size],
                seen=np.int64(self.seen),
                capacity=np.int64(self.capacity),
                rng=np.frombuffer(json.dumps(self.rng.bit_generator.state).encode(), np.uint8),
            )

    @classmethod
    def load(cls, path: Path, capacity: int | None = None, fmt: RecordFormat = MNIST_FORMAT) -> Reservoir:
        """The reservoir ``save`` wrote; ``capacity`` (default: the saved one) may differ from the saved one.
        ``ValueError`` when the saved records are not ``fmt``'s (another dataset's checkpoint)."""
        with np.load(path) as saved:
            reservoir = cls(int(saved["capacity"]) if capacity is None else capacity, fmt=fmt)
            labels = saved["labels"]
            if saved["pixels"].size != len(labels) * fmt.num_features:
                raise ValueError(f"its replay sample holds records of another size than {fmt.num_features} values")
            # A sample saved as 28 x 28 x 1 grids holds the same bytes in the same order as the flat records.
            pixels = saved["pixels"].reshape(len(labels), fmt.num_features)
            keep = min(len(labels), reservoir.capacity)
            reservoir.pixels[:keep], reservoir.labels[:keep] = pixels[:keep], labels[:keep]
            reservoir.seen = int(saved["seen"]) if keep == len(labels) else keep
            reservoir.rng.bit_generator.state = json.loads(saved["rng"].tobytes().decode())
        return reservoir


class ShuffleBuffer:
    """Records in, random batches out, holding at most ``capacity`` + one incoming batch (tf.data's shuffle
    buffer, a batch at a time): an epoch over a topic larger than memory, in an order that mixes the stream.

    ``put`` adds records; ``batches`` yields ``(images, labels)`` while more than ``capacity`` are held;
    ``drain`` yields the rest in random order at the end of the epoch.

    >>> buffer = ShuffleBuffer(4, batch_size=2, seed=0)
    >>> buffer.put(np.zeros((5, 784), np.float32), np.arange(5, dtype=np.int32))
    >>> [len(labels) for _, labels in buffer.batches()], [len(labels) for _, labels in buffer.drain()]
    ([2], [2, 1])
    """

    def __init__(self, capacity: int, batch_size: int, seed: int = 0, fmt: RecordFormat = MNIST_FORMAT) -> None:
        self.capacity, self.batch_size, self.fmt = max(capacity, batch_size), batch_size, fmt
        self.pixels = np.zeros((0, fmt.num_features), fmt.packed_dtype())
        self.labels = np.zeros((0,), np.int32)
        self.size = 0
        self.rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        return self.size

    def put(self, images: np.ndarray, labels: np.ndarray) -> None:
        n = len(labels)
        if self.size + n > len(self.labels):
            grown = max(self.size + n, min(2 * len(self.labels) + n, self.capacity + n))
            self.pixels = np.concatenate(
                [self.pixels[: self.size], np.zeros((grown - self.size, self.fmt.num_features), self.pixels.dtype)]
            )
            self.labels = np.concatenate([self.labels[: self.size], np.zeros((grown - self.size,), np.int32)])
        self.pixels[self.size : self.size + n] = self.fmt.pack(images)
        self.labels[self.size : self.size + n] = labels
        self.size += n

    def _take(self, count: int) -> tuple[np.ndarray, np.ndarray]:
        chosen = self.rng.choice(self.size, size=count, replace=False)
        images, labels = self.fmt.unpack(self.pixels[chosen]), self.labels[chosen].copy()
        # Fill the holes with the last records that are not taken themselves, then shrink.
        tail = np.setdiff1d(np.arange(self.size - count, self.size), chosen, assume_unique=True)
        holes = np.sort(chosen[chosen < self.size - count])
        self.pixels[holes], self.labels[holes] = self.pixels[tail], self.labels[tail]
        self.size -= count
        return images, labels

    def batches(self):
        while self.size > self.capacity:
            yield self._take(min(self.batch_size, self.size))

    def drain(self):
        while self.size:
            yield self._take(min(self.batch_size, self.size))
