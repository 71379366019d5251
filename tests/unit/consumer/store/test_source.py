"""consumer.store.source: the model a scoring command follows, on a real Keras model store (no services)."""

from __future__ import annotations

import gc
import weakref

import pytest

from consumer.cli import quiet_tensorflow
from consumer.store.source import ModelSource
from consumer.store.versions import ModelStore

quiet_tensorflow()
keras = pytest.importorskip("keras")


def flat_model(bias: float = 0.0):
    model = keras.Sequential([keras.Input(shape=(4,)), keras.layers.Dense(3, bias_initializer="zeros")])
    model.layers[0].bias.assign([bias] * 3)
    return model


def tracked(thing) -> bool:
    """Whether ``thing`` is among the objects a collection walks (frozen ones are not)."""
    return any(candidate is thing for candidate in gc.get_objects())


def test_a_loaded_model_is_kept_out_of_the_collectors_passes(tmp_path):
    ModelStore(tmp_path).publish(flat_model())
    try:
        source = ModelSource(tmp_path / "latest.keras", width=4)
        assert gc.get_freeze_count() > 0
        assert not tracked(source.model)
    finally:
        gc.unfreeze()


def test_a_reload_frees_the_model_it_replaces_and_keeps_the_new_one_out_of_the_passes(tmp_path):
    store = ModelStore(tmp_path)
    store.publish(flat_model(1.0))
    try:
        source = ModelSource(tmp_path / "latest.keras", width=4)
        first = weakref.ref(source.model)
        store.publish(flat_model(2.0))
        assert source.refresh() == "model v0002 loaded (was v0001)"
        assert first() is None, "the replaced model is still in memory"
        assert not tracked(source.model)
    finally:
        gc.unfreeze()
