"""A dataset's ``model`` picks what ``build_model`` makes: MNIST's CNN, an MLP that normalizes with the training
features' statistics (saved with it), or a builder of the user's own; iris learns to >= 0.9 on its test split
with one-shot training's own loop (``train_epochs``) and flags' defaults."""

import argparse
from pathlib import Path

import keras
import numpy as np
import pytest

from consumer.learning.epochs import train_epochs
from consumer.learning.models import ModelBuildError, build_model
from consumer.records.codec import RecordFormat, decode_batch, encode_numbers
from loader.hooks.iris import read_splits
from stack.datasets import load

IRIS = load("iris")


def decoded(split):
    """A loader split as its records decode: through the record contract, as the consumer sees them."""
    records = encode_numbers(split.images, split.labels)
    batch = decode_batch([value for _, value in records], [key for key, _ in records], RecordFormat.of(IRIS))
    return batch.images, batch.labels


class OneRead:
    """The training split as one-shot training's source hands it over: the same records every epoch."""

    def __init__(self, images, labels) -> None:
        self.fmt, self.images, self.labels = RecordFormat.of(IRIS), images, labels

    def epoch(self, number):
        yield self.images, self.labels


@pytest.fixture(scope="module")
def iris_splits():
    splits = read_splits(IRIS)
    return decoded(splits["train"]), decoded(splits["test"])


def test_mnist_keeps_its_cnn_with_the_reshape_first():
    model = build_model(load("mnist"))
    assert model.input_shape == (None, 784) and model.output_shape == (None, 10)
    assert isinstance(model.layers[0], keras.layers.Reshape)
    assert model.count_params() == build_model().count_params()


def test_mlp_normalizes_with_the_training_features(iris_splits):
    (train_x, _), _ = iris_splits
    model = build_model(IRIS, train_x)
    assert model.input_shape == (None, 4) and model.output_shape == (None, 3)
    normalization = model.layers[0]
    assert isinstance(normalization, keras.layers.Normalization)
    np.testing.assert_allclose(normalization.mean.numpy().ravel(), train_x.mean(axis=0), rtol=1e-4)


def test_iris_reaches_90_percent_on_its_test_split_with_one_shot_training(iris_splits):
    (train_x, train_y), (test_x, test_y) = iris_splits
    args = argparse.Namespace(epochs=10, batch_size=64, shuffle_buffer=10_000, validation_split=0.1)
    model = build_model(IRIS, train_x)
    summary, _ = train_epochs(args, OneRead(train_x, train_y), model, progress=False)
    assert summary is not None
    accuracy = model.evaluate(test_x, test_y, verbose=0, return_dict=True)["accuracy"]
    assert accuracy >= 0.9, accuracy


def test_normalization_statistics_are_saved_with_the_model(iris_splits, tmp_path):
    (train_x, _), (test_x, _) = iris_splits
    model = build_model(IRIS, train_x)
    model.save(tmp_path / "iris.keras")
    loaded = keras.saving.load_model(tmp_path / "iris.keras")
    np.testing.assert_allclose(loaded.layers[0].mean.numpy(), model.layers[0].mean.numpy())
    np.testing.assert_allclose(loaded.predict(test_x, verbose=0), model.predict(test_x, verbose=0), rtol=1e-5)


def test_a_builder_of_the_users_own_is_called_with_the_dataset_and_the_features(iris_splits, monkeypatch):
    (train_x, _), _ = iris_splits
    monkeypatch.syspath_prepend(str(Path(__file__).parent / "builders"))
    model = build_model(_with_model(IRIS, "my_models:linear"), train_x)
    assert model.name == "linear_iris_120" and model.compiled


@pytest.mark.parametrize(
    "spec, message",
    [
        ("no_such_package.models:build", "model no_such_package.models:build: cannot import no_such_package.models"),
        ("consumer.learning.models:no_such_function", "consumer.learning.models has no function no_such_function"),
        ("nocolon", "model nocolon: expected cnn, mlp or package.module:function"),
    ],
)
def test_a_builder_that_cannot_be_imported_is_one_line(spec, message):
    with pytest.raises(ModelBuildError) as raised:
        build_model(_with_model(IRIS, spec))
    assert message in str(raised.value) and "\n" not in str(raised.value)


def test_cnn_for_a_dataset_without_an_image_is_refused():
    with pytest.raises(ModelBuildError, match="model cnn needs an image feature"):
        build_model(_with_model(IRIS, "cnn"))


class _WithModel:
    """``dataset`` as it is, but for the ``model`` its description names."""

    def __init__(self, dataset, model: str) -> None:
        self._dataset, self.model = dataset, model

    def __getattr__(self, name: str):
        return getattr(self._dataset, name)


def _with_model(dataset, model: str):
    return _WithModel(dataset, model)
