"""consumer.store.versions: numbered model versions and the latest pointer, on a real Keras model (no services)."""

from __future__ import annotations

import json
import os
import time

import pytest

from consumer.cli import quiet_tensorflow
from consumer.store.versions import ModelStore, StoreLockedError, version_file

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
        "v0001.json",
        "v0001.keras",
        "v0002.json",
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


def test_a_second_publisher_is_refused_while_the_first_holds_the_store(tmp_path):
    first = ModelStore(tmp_path).lock()
    try:
        with pytest.raises(StoreLockedError, match=f"model store {tmp_path} is in use by process"):
            ModelStore(tmp_path).lock()
    finally:
        first.release()
    ModelStore(tmp_path).lock().release()  # free again once released


def test_retention_keeps_the_newest_the_latest_and_the_versions_of_live_checkpoints(tmp_path):
    store = ModelStore(tmp_path / "store")
    live = tmp_path / "ckpt-000001"
    live.mkdir()
    store.publish(tiny_model(), {"checkpoint": str(live)}, keep=2)  # v1: named by a checkpoint that exists
    store.publish(tiny_model(), {"checkpoint": str(tmp_path / "gone")}, keep=2)  # v2: its checkpoint is gone
    for _ in range(3):
        store.publish(tiny_model(), keep=2)
    assert store.versions() == [1, 4, 5]
    assert not (store.directory / "v0002.json").exists()
    store.promote(4)
    assert store.publish(tiny_model(), keep=1) == 6  # a number is never handed out twice
    assert store.versions() == [1, 6]  # latest moved on to 6: 4 is no longer protected


def test_promote_points_latest_at_an_older_version_and_list_tells_each_version(tmp_path):
    store = ModelStore(tmp_path)
    store.publish(tiny_model(1.0), {"records": 10, "prequential_accuracy": 0.5})
    store.publish(tiny_model(2.0))
    store.promote(1)
    assert store.latest() == (1, tmp_path / "v0001.keras")
    loaded = keras.saving.load_model(tmp_path / "latest.keras")
    assert float(loaded.layers[0].bias.numpy()[0]) == 1.0
    infos = {info["version"]: info for info in store.describe()}
    assert infos[1]["records"] == 10 and infos[1]["latest"] and not infos[2]["latest"]
    assert "published_at" in infos[2]
    with pytest.raises(ValueError, match="no version 9"):
        store.promote(9)


def test_temporary_files_of_a_killed_publish_are_swept_once_old(tmp_path):
    old, new = tmp_path / ".v0003.keras.abc.tmp.keras", tmp_path / ".v0004.keras.def.tmp.keras"
    old.write_bytes(b"x")
    new.write_bytes(b"x")
    os.utime(old, (time.time() - 120, time.time() - 120))
    ModelStore(tmp_path).lock().release()
    assert not old.exists() and new.exists()
