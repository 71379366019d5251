"""consumer.store.versions: numbered model versions and the latest pointer, on a real Keras model (no services)."""

from __future__ import annotations

import json

import pytest

from consumer.cli import quiet_tensorflow
from consumer.store.versions import ModelStore, version_file

quiet_tensorflow()
keras = pytest.importorskip("keras")


def tiny_model(bias: float = 0.0):
    model = keras.Sequential([keras.Input(shape=(2,)), keras.layers.Dense(1, bias_initializer="zeros")])
    model.layers[0].bias.assign([bias])
    return model


def test_an_empty_store_has_no_latest(tmp_path):
    store = ModelStore(tmp_path / "absent")
    assert store.latest() is None
    assert store.latest_version() is None
    assert store.versions() == []


def test_publish_numbers_versions_and_points_latest_at_the_newest(tmp_path):
    store = ModelStore(tmp_path / "store")
    assert store.publish(tiny_model(1.0)) == 1
    assert store.publish(tiny_model(2.0)) == 2
    assert sorted(p.name for p in store.directory.iterdir()) == [
        "latest.json",
        "latest.keras",
        "v0001.keras",
        "v0002.keras",
    ]
    assert json.loads((store.directory / "latest.json").read_text()) == {"version": 2, "file": "v0002.keras"}
    assert store.latest() == (2, store.directory / "v0002.keras")
    assert store.latest_version() == 2
    loaded = keras.saving.load_model(store.directory / "latest.keras")
    assert float(loaded.layers[0].bias.numpy()[0]) == 2.0
    first = keras.saving.load_model(store.directory / version_file(1))
    assert float(first.layers[0].bias.numpy()[0]) == 1.0


def test_a_new_store_object_continues_the_numbering(tmp_path):
    ModelStore(tmp_path).publish(tiny_model())
    assert ModelStore(tmp_path).publish(tiny_model()) == 2


def test_an_unreadable_manifest_reads_as_no_version(tmp_path):
    (tmp_path / "latest.json").write_text("{not json")
    assert ModelStore(tmp_path).latest_version() is None
    assert ModelStore(tmp_path).latest() is None
