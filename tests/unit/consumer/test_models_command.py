"""``python -m consumer.models``: list and promote on a real store of tiny Keras models (no services)."""

from __future__ import annotations

import pytest

from consumer import models
from consumer.cli import quiet_tensorflow
from consumer.store.versions import ModelStore

quiet_tensorflow()
keras = pytest.importorskip("keras")


def tiny_model():
    return keras.Sequential([keras.Input(shape=(2,)), keras.layers.Dense(1)])


def test_list_marks_latest_and_promote_rolls_back(tmp_path, capsys):
    store = ModelStore(tmp_path)
    store.publish(tiny_model(), {"records": 100, "prequential_accuracy": 0.5, "checkpoint": "c/ckpt-000001"})
    store.publish(tiny_model())
    assert models.main(["--model-dir", str(tmp_path), "list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert (
        lines[0].startswith("  v0001 ") and "100 records  prequential accuracy 0.5000  from c/ckpt-000001" in lines[0]
    )
    assert lines[1].startswith("* v0002 ")
    assert models.main(["--model-dir", str(tmp_path), "promote", "1"]) == 0
    assert store.latest_version() == 1


def test_promote_refuses_an_unknown_version_and_a_store_in_use(tmp_path, capsys):
    store = ModelStore(tmp_path)
    store.publish(tiny_model())
    assert models.main(["--model-dir", str(tmp_path), "promote", "7"]) == 1
    assert "has no version 7" in capsys.readouterr().err
    lock = store.lock()
    try:
        assert models.main(["--model-dir", str(tmp_path), "promote", "1"]) == 1
        assert "is in use by process" in capsys.readouterr().err
    finally:
        lock.release()


def test_an_empty_store_is_one_line(tmp_path, capsys):
    assert models.main(["--model-dir", str(tmp_path / "none"), "list"]) == 1
    assert capsys.readouterr().err.count("\n") == 1
