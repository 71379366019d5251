"""The small CNN the demo trains: two convolution blocks and a dense head, about 225k parameters.

It takes the record as it comes, a flat vector of 784 feature values (``consumer.records.codec``), and shapes it
into the 28 × 28 × 1 grid its convolutions need in its first layer: whatever reads the topic (our commands, the
talk's tfio snippet, a notebook) hands the decoded values over unchanged.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from consumer.records.codec import IMAGE_SHAPE, NUM_CLASSES, NUM_COLUMNS

if TYPE_CHECKING:
    import keras


def build_model(seed: int = 7) -> keras.Model:
    """A compiled CNN for flat vectors of 784 values in [0, 1]: softmax over 10 classes, sparse integer labels.

    >>> model = build_model()
    >>> model.input_shape, model.output_shape
    ((None, 784), (None, 10))
    """
    import keras  # noqa: PLC0415 - TensorFlow loads in seconds; only building a model needs it, not --help

    keras.utils.set_random_seed(seed)
    model = keras.Sequential(
        [
            keras.Input(shape=(NUM_COLUMNS,)),
            keras.layers.Reshape(IMAGE_SHAPE),
            keras.layers.Conv2D(32, 3, activation="relu"),
            keras.layers.MaxPooling2D(),
            keras.layers.Conv2D(64, 3, activation="relu"),
            keras.layers.MaxPooling2D(),
            keras.layers.Flatten(),
            keras.layers.Dropout(0.3),
            keras.layers.Dense(128, activation="relu"),
            keras.layers.Dense(NUM_CLASSES, activation="softmax"),
        ],
        name="mnist_cnn",
    )
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model
