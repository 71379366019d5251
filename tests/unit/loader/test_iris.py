"""The iris hook: scikit-learn's bundled 150 rows, split 120 / 30 with every fifth row of each class in test;
``--dataset`` names a dataset with a hook, and refuses in one line what it cannot load."""

import collections

import numpy as np
import pytest

from loader.__main__ import main
from loader.hooks import iris
from stack.datasets import load


def test_iris_is_150_rows_of_four_measurements_in_three_classes():
    features, labels = iris.read_iris()
    assert features.shape == (150, 4)
    assert collections.Counter(labels.tolist()) == {0: 50, 1: 50, 2: 50}


def test_split_is_120_train_and_30_test_with_10_of_each_class_in_test():
    splits = iris.read_splits(load("iris"))
    train, test = splits["train"], splits["test"]
    assert (len(train), len(test)) == (120, 30)
    assert collections.Counter(test.labels.tolist()) == {0: 10, 1: 10, 2: 10}
    assert collections.Counter(train.labels.tolist()) == {0: 40, 1: 40, 2: 40}
    assert train.images.shape == (120, 4) and test.images.shape == (30, 4)


def test_test_rows_are_every_fifth_row_of_each_class():
    features, labels = iris.read_iris()
    test = iris.read_splits(load("iris"))["test"]
    expected = np.concatenate([features[labels == k][4::5] for k in range(3)])
    np.testing.assert_array_equal(test.images, expected)


def test_split_is_the_same_on_every_call():
    first, second = iris.read_splits(load("iris")), iris.read_splits(load("iris"))
    np.testing.assert_array_equal(first["test"].images, second["test"].images)
    np.testing.assert_array_equal(first["train"].labels, second["train"].labels)


def test_an_unknown_dataset_is_one_line_and_exit_2(capsys):
    assert main(["--dataset", "no-such-dataset"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "no-such-dataset" in err and err.count("\n") == 1


def test_a_dataset_without_a_loader_hook_says_to_insert_your_own_rows(tmp_path, capsys):
    description = tmp_path / "mine.toml"
    description.write_text(
        'name = "mine"\nmodel = "mlp"\n'
        '[tables]\ntrain = "mine"\ntest = "mine"\nkey = "id"\n'
        '[label]\ncolumn = "c"\nsql = "text"\nclasses = ["x", "y"]\n'
        '[[features]]\ncolumn = "f"\nsql = "real"\n'
    )
    assert main(["--dataset", str(description)]) == 2
    assert capsys.readouterr().err == "error: dataset mine has no loader: insert your own rows\n"


def test_idx_files_are_mnist_only(capsys):
    assert main(["--dataset", "iris", "--idx-dir", "/nowhere"]) == 2
    assert "--idx-dir" in capsys.readouterr().err


@pytest.mark.parametrize("split", ["train", "test"])
def test_limit_applies_to_each_split(split):
    assert len(iris.read_splits(load("iris"))[split].head(7)) == 7
