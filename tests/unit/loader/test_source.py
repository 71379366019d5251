import collections
import struct

import numpy as np
import pytest

from loader.idx import IdxError
from loader.source import load_idx_dir, load_sample, stratified_split


def test_split_is_stratified_and_disjoint():
    labels = np.repeat(np.arange(10), 50)
    train, test = stratified_split(labels, test_per_class=10)
    assert collections.Counter(labels[test].tolist()) == {k: 10 for k in range(10)}
    assert len(train) == 400
    assert not set(train.tolist()) & set(test.tolist())


def test_split_is_deterministic():
    labels = np.repeat(np.arange(10), 50)
    first, second = stratified_split(labels, 10), stratified_split(labels, 10)
    assert first[0].tolist() == second[0].tolist() and first[1].tolist() == second[1].tolist()


def test_split_mixes_classes_instead_of_sorting_them():
    labels = np.repeat(np.arange(10), 50)
    _, test = stratified_split(labels, 10)
    assert len(set(labels[test[:20]].tolist())) > 3


def test_sample_is_4000_train_and_1000_test_real_digits():
    sample = load_sample()
    assert len(sample["train"]) == 4000 and len(sample["test"]) == 1000
    assert collections.Counter(sample["test"].labels.tolist()) == {k: 100 for k in range(10)}
    assert sample["train"].images.shape == (4000, 784)
    assert sample["train"].images.dtype == np.uint8
    # real digits: mostly background, some full-intensity strokes
    assert 0.6 < (sample["train"].images == 0).mean() < 0.95
    assert sample["train"].images.max() == 255


def write_idx(directory, prefix, count, gz=False):
    images = struct.pack(">IIII", 0x803, count, 28, 28) + bytes(range(count)) * 784
    labels = struct.pack(">II", 0x801, count) + bytes(i % 10 for i in range(count))
    import gzip

    for stem, data in ((f"{prefix}-images-idx3-ubyte", images), (f"{prefix}-labels-idx1-ubyte", labels)):
        if gz:
            (directory / (stem + ".gz")).write_bytes(gzip.compress(data))
        else:
            (directory / stem).write_bytes(data)


def test_idx_dir_reads_train_and_t10k_gzipped_or_not(tmp_path):
    write_idx(tmp_path, "train", 6)
    write_idx(tmp_path, "t10k", 3, gz=True)
    data = load_idx_dir(tmp_path)
    assert len(data["train"]) == 6 and len(data["test"]) == 3
    assert data["test"].labels.tolist() == [0, 1, 2]


def test_idx_dir_missing_file_is_named(tmp_path):
    write_idx(tmp_path, "train", 2)
    with pytest.raises(IdxError, match=r"t10k-images-idx3-ubyte: file not found"):
        load_idx_dir(tmp_path)


def test_idx_dir_loads_only_requested_split(tmp_path):
    write_idx(tmp_path, "train", 2)
    assert list(load_idx_dir(tmp_path, ("train",))) == ["train"]
