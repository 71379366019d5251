"""The model a dataset names (``model`` in its description): ``cnn``, ``mlp``, or a builder of the user's own.

Every model takes the record as it comes, the flat vector of the dataset's ``num_features`` values
(``consumer.records.codec``), and returns a softmax over its ``num_classes`` classes, trained on sparse integer
labels:

* ``cnn``: the small CNN the demo trains on MNIST, two convolution blocks and a dense head (about 225k
  parameters). Its first layer shapes the flat vector into the image grid its convolutions need, so whatever
  reads the topic (our commands, the talk's tfio snippet, a notebook) hands the decoded values over unchanged.
* ``mlp``: for numeric features, a small dense network whose first layer is ``keras.layers.Normalization``
  adapted on the training features: the mean and variance are weights of the model, saved and loaded with it,
  so scoring needs nothing but the model file. Without training features (``--follow`` starts from nothing) the
  layer is the identity until a model of one-shot training is given to start from.
* ``package.module:function``: called as ``function(dataset, features)`` (``features``: the training values,
  float32 ``(n, num_features)``, or None); it returns a Keras model, compiled or not (``compile_model`` then
  compiles it the same way as ours).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

import numpy as np

from consumer.records.codec import IMAGE_SHAPE, NUM_CLASSES, NUM_COLUMNS

if TYPE_CHECKING:
    import keras

BUILT_IN = ("cnn", "mlp")


class ModelBuildError(Exception):
    """A dataset's ``model`` that cannot be built; the message is one line for the user."""


def build_model(dataset=None, features: np.ndarray | None = None, seed: int = 7) -> keras.Model:
    """The compiled model ``dataset`` names (a ``stack.datasets.Dataset``; None: MNIST's CNN), its normalization
    adapted on ``features`` when it has one. ``ModelBuildError`` when a builder of the user's cannot be used.

    >>> model = build_model()
    >>> model.input_shape, model.output_shape
    ((None, 784), (None, 10))
    """
    import keras  # noqa: PLC0415 - TensorFlow loads in seconds; only building a model needs it, not --help

    keras.utils.set_random_seed(seed)
    if dataset is None:
        return build_cnn(NUM_COLUMNS, IMAGE_SHAPE, NUM_CLASSES)
    if dataset.model == "cnn":
        if dataset.image_shape is None:
            raise ModelBuildError(f"dataset {dataset.name}: model cnn needs an image feature (a bytea with a shape)")
        return build_cnn(dataset.num_features, dataset.image_shape, dataset.num_classes)
    if dataset.model == "mlp":
        return build_mlp(dataset.num_features, dataset.num_classes, features)
    return compile_model(import_builder(dataset.model)(dataset, features))


def build_cnn(
    num_features: int = NUM_COLUMNS, image_shape: tuple[int, int, int] = IMAGE_SHAPE, num_classes: int = NUM_CLASSES
) -> keras.Model:
    """A compiled CNN for flat vectors of ``num_features`` values in [0, 1], reshaped to ``image_shape``."""
    import keras  # noqa: PLC0415

    model = keras.Sequential(
        [
            keras.Input(shape=(num_features,)),
            keras.layers.Reshape(image_shape),
            keras.layers.Conv2D(32, 3, activation="relu"),
            keras.layers.MaxPooling2D(),
            keras.layers.Conv2D(64, 3, activation="relu"),
            keras.layers.MaxPooling2D(),
            keras.layers.Flatten(),
            keras.layers.Dropout(0.3),
            keras.layers.Dense(128, activation="relu"),
            keras.layers.Dense(num_classes, activation="softmax"),
        ],
        name="mnist_cnn",
    )
    return compile_model(model)


def build_mlp(num_features: int, num_classes: int, features: np.ndarray | None = None) -> keras.Model:
    """A compiled two-layer MLP whose first layer normalizes each feature with the statistics of ``features``.

    >>> model = build_mlp(4, 3, np.array([[1.0, 2, 3, 4], [3, 2, 1, 0]], np.float32))
    >>> model.input_shape, model.output_shape, model.layers[0].mean.numpy().ravel().tolist()
    ((None, 4), (None, 3), [2.0, 2.0, 2.0, 2.0])
    """
    import keras  # noqa: PLC0415

    normalization = keras.layers.Normalization(name="normalization")
    if features is not None and len(features):
        normalization.adapt(np.asarray(features, np.float32))
    model = keras.Sequential(
        [
            keras.Input(shape=(num_features,)),
            normalization,
            keras.layers.Dense(32, activation="relu"),
            keras.layers.Dense(16, activation="relu"),
            keras.layers.Dense(num_classes, activation="softmax"),
        ],
        name="mlp",
    )
    # A higher rate than Keras' default: a table of a few hundred rows learns in a handful of epochs.
    return compile_model(model, learning_rate=0.05)


def compile_model(model, learning_rate: float = 0.001):
    """``model`` compiled for sparse integer labels with accuracy, unless its builder compiled it already."""
    import keras  # noqa: PLC0415

    if not isinstance(model, keras.Model):
        raise ModelBuildError(f"the model builder returned {type(model).__name__}, not a Keras model")
    if not model.compiled:
        model.compile(
            optimizer=keras.optimizers.Adam(learning_rate),
            loss="sparse_categorical_crossentropy",
            metrics=["accuracy"],
        )
    return model


def import_builder(spec: str):
    """The function ``package.module:function`` names; ``ModelBuildError`` (one line) when it cannot be imported.

    >>> import_builder("consumer.learning.models:build_mlp").__name__
    'build_mlp'
    >>> import_builder("no_such_package.models:build")
    Traceback (most recent call last):
    ...
    consumer.learning.models.ModelBuildError: model no_such_package.models:build: cannot import no_such_package.models: No module named 'no_such_package'
    """  # noqa: E501
    module_name, _, function_name = spec.partition(":")
    if not module_name or not function_name:
        raise ModelBuildError(f"model {spec}: expected cnn, mlp or package.module:function")
    try:
        module = importlib.import_module(module_name)
    except Exception as error:  # noqa: BLE001 - any failure of the user's module is one line, not a traceback
        raise ModelBuildError(f"model {spec}: cannot import {module_name}: {error}") from None
    builder = getattr(module, function_name, None)
    if not callable(builder):
        raise ModelBuildError(f"model {spec}: {module_name} has no function {function_name}")
    return builder
