"""Saved models whose input is the 28 × 28 × 1 grid rather than the record as it comes (784 flat values).

Every model of ours takes the flat float32 vector a record decodes to and shapes it itself
(``consumer.learning.models``). A saved model whose input is the 28 × 28 × 1 grid still scores: ``for_scoring``
puts a ``Reshape`` in front of it, which feeds it exactly the grid it was trained on (the flat values are the
grid's rows one after another). Training is refused instead (``refuse_for_training``): wrapping would drop the
optimizer's state and save a model nested in another, so one line asks for a new model.
"""

from __future__ import annotations

from pathlib import Path

from consumer.records.codec import IMAGE_SHAPE, NUM_COLUMNS
from consumer.store.checkpoints import CheckpointError


def takes_grids(model) -> bool:
    """True when ``model``'s input is the 28 × 28 × 1 grid rather than the flat record."""
    return tuple(model.input_shape[1:]) == IMAGE_SHAPE


def for_scoring(model):
    """``model`` itself when it takes the flat record, else ``model`` behind a ``Reshape`` of the flat record to
    its grid; both give the same answer for a record."""
    if not takes_grids(model):
        return model
    import keras  # noqa: PLC0415 - TensorFlow loads in seconds; only a loaded model reaches here, never --help

    return keras.Sequential(
        [keras.Input(shape=(NUM_COLUMNS,)), keras.layers.Reshape(IMAGE_SHAPE), model], name=f"{model.name}_flat"
    )


def refuse_for_training(model, file: Path):
    """``model`` when it takes the flat record; ``CheckpointError`` (one line naming ``file``) when it takes grids."""
    if takes_grids(model):
        raise CheckpointError(
            f"the model at {file} takes 28x28x1 images, not the record's {NUM_COLUMNS} values as they come: "
            "train a new one (python -m consumer.train, or --follow with a new --checkpoint-dir)"
        )
    return model
