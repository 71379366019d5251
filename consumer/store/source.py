"""The model a scoring command scores with: a plain ``.keras`` file (loaded once), or a model store's newest
version, followed between batches. A saved model whose input is the 28 × 28 × 1 grid scores the flat records
through a reshape (``consumer.store.grid_models``)."""

from __future__ import annotations

import gc
from pathlib import Path

import numpy as np

from consumer.store.grid_models import for_scoring
from consumer.store.versions import ModelStore
from stack.errors import first_line


class ModelSource:
    """The model to score with: a plain ``.keras`` file (loaded once), or a model store's newest version.

    ``refresh()`` (between batches) loads a newer version when the store's ``latest.json`` names one and
    returns a line for the user; ``version`` is None for a plain file.
    """

    def __init__(self, path: Path, width: int | None = None) -> None:
        import keras  # noqa: PLC0415 - TensorFlow loads in seconds; only a loaded model needs it, not --help

        self._keras = keras
        self.path = path
        self.width = width  # the values a record of the dataset holds: a model taking another count is refused
        self.store = None
        self.version: int | None = None
        if path.name == "latest.keras" and (path.parent / "latest.json").is_file():
            self.store = ModelStore(path.parent)
            found = self.store.latest()
            if found is None:
                raise ModelError(f"{path.parent}/latest.json names no model file that exists")
            self.version, file = found
            self.model = self._load(file)
        else:
            self.model = self._load(path)
        settle()

    def _load(self, file: Path):
        try:
            model = self._keras.models.load_model(file, compile=False)  # scoring needs no optimizer state
        except Exception as error:  # noqa: BLE001 - a missing config.json is a KeyError, a non-zip a BadZipFile
            raise ModelError(
                f"cannot load the model at {file}: not a Keras model saved by consumer.train "
                f"({type(error).__name__}: {first_line(error, limit=200)})"
            ) from None
        model = for_scoring(model)
        takes = model.input_shape[-1]
        if self.width is not None and takes != self.width:
            raise ModelError(
                f"the model at {file} takes {takes} values a record, the dataset's records hold {self.width}: "
                "train one on this dataset (python -m consumer.train --dataset NAME)"
            )
        warm_up(model)
        return model

    @property
    def label(self) -> str:
        return f"v{self.version:04d}" if self.version is not None else ""

    def refresh(self) -> str | None:
        if self.store is None:
            return None
        newest = self.store.latest_version()
        if newest is None or newest == self.version:
            return None
        found = self.store.latest()
        if found is None:
            return None  # named but not on disk (yet): the next check sees it
        previous = self.label
        try:
            self.model = self._load(found[1])
        except ModelError as error:
            return f"warning: keeping model {previous}: {error}"
        self.version = found[0]
        settle()  # now that the model it replaces is no longer ours
        return f"model {self.label} loaded (was {previous})"


def warm_up(model) -> None:
    """Trace ``model``'s ``predict_on_batch`` now, when it is loaded, not on the first batches: two batch sizes
    make TensorFlow's reduced retracing settle on one trace for any batch size (each new size would otherwise
    cost a trace of about half a second in the middle of the stream)."""
    width = model.input_shape[-1]
    for size in (1, 2):
        model.predict_on_batch(np.zeros((size, width), dtype=np.float32))


def settle() -> None:
    """Keep the collector's full passes off the objects that live as long as the model: a full collection walks
    every tracked object, with TensorFlow and Keras loaded about 400,000 (140 ms), several times a run at a
    scorer's rate of allocation, each a pause in scoring (docs/benchmarks.md, predict_throughput). The objects
    present now are frozen (``gc.freeze``); what an earlier model left unreachable is collected first, so a
    reload frees the model it replaces (once the caller drops it)."""
    gc.unfreeze()
    gc.collect()
    gc.freeze()


class ModelError(Exception):
    """A model that cannot be loaded: one line for the user."""
