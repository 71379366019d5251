"""The iris data hook (``datasets/iris.toml``: ``loader = "iris"``): scikit-learn's bundled copy of Fisher's
iris, 150 rows, read from the installed package (nothing is downloaded).

The split is fixed, not random: within each class, in the file's order, every fifth row goes to test, so
test holds 10 rows of each class (30) and train the other 120, on every machine. Each split keeps the file's
order (the classes one after another); training shuffles what it reads.
"""

from __future__ import annotations

import numpy as np

from loader.source import Split

#: Where the rows come from, as the loader says it.
SOURCE = "scikit-learn's bundled iris"
TEST_EVERY = 5  # the 5th, 10th, ... row of each class is a test row


def read_iris() -> tuple[np.ndarray, np.ndarray]:
    """The 150 rows: features float64 ``(150, 4)`` (sepal length and width, petal length and width, cm) and
    class indices ``(150,)`` in the description's class order (setosa, versicolor, virginica)."""
    from sklearn.datasets import load_iris  # noqa: PLC0415 - scikit-learn loads in a second; only this hook needs it

    bunch = load_iris()
    return np.asarray(bunch.data, np.float64), np.asarray(bunch.target, np.int64)


def test_rows(labels: np.ndarray, every: int = TEST_EVERY) -> np.ndarray:
    """Which rows are test rows: every ``every``-th row of each class, counted in the rows' order.

    >>> test_rows(np.array([0, 0, 1, 0, 1, 1, 1]), every=2).tolist()
    [False, True, False, False, True, False, True]
    """
    place = np.zeros(len(labels), np.int64)
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        place[members] = np.arange(len(members))
    return place % every == every - 1


def read_splits(dataset) -> dict[str, Split]:
    """The ``train`` and ``test`` splits of iris for ``dataset`` (its description names the columns)."""
    features, labels = read_iris()
    test = test_rows(labels)
    return {
        "train": Split("train", features[~test], labels[~test]),
        "test": Split("test", features[test], labels[test]),
    }
