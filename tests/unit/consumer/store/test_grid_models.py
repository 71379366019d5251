"""Models saved when models took 28 x 28 x 1 images: they still score flat records, and training from one is
refused in one line naming the file."""

from __future__ import annotations

import numpy as np
import pytest

from consumer.cli import open_model, quiet_tensorflow
from consumer.learning.models import build_model
from consumer.learning.online import resume
from consumer.learning.replay import Reservoir
from consumer.store.checkpoints import CheckpointDir, CheckpointError
from consumer.store.grid_models import takes_grids

quiet_tensorflow()
keras = pytest.importorskip("keras")


@pytest.fixture
def grid_model_file(tmp_path):
    """A tiny model of the old kind, input ``(None, 28, 28, 1)``, compiled and saved as ``consumer.train`` did."""
    keras.utils.set_random_seed(3)
    model = keras.Sequential(
        [keras.Input((28, 28, 1)), keras.layers.Conv2D(2, 3), keras.layers.Flatten(), keras.layers.Dense(10)]
    )
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.train_on_batch(np.zeros((2, 28, 28, 1), np.float32), np.array([1, 2]))  # the optimizer's state, saved
    path = tmp_path / "old.keras"
    model.save(path)
    return path


def flat_records(n: int) -> np.ndarray:
    return np.random.default_rng(0).uniform(0, 1, (n, 784)).astype(np.float32)


def test_a_grid_model_scores_flat_records_as_it_scored_their_grids(grid_model_file):
    old = keras.models.load_model(grid_model_file, compile=False)
    records = flat_records(5)

    source = open_model(grid_model_file)

    assert source.model.input_shape == (None, 784)
    expected = np.asarray(old(records.reshape(-1, 28, 28, 1), training=False))
    np.testing.assert_allclose(np.asarray(source.model(records, training=False)), expected, rtol=1e-5)


def test_a_flat_model_is_scored_as_it_is(tmp_path):
    build_model().save(tmp_path / "new.keras")

    source = open_model(tmp_path / "new.keras")

    assert source.model.name == "mnist_cnn" and not takes_grids(source.model)


def test_training_on_from_a_grid_model_is_refused_in_one_line_naming_the_file(grid_model_file, tmp_path):
    with pytest.raises(CheckpointError) as refused:
        resume(CheckpointDir(tmp_path / "checkpoints"), "t", grid_model_file, 10)

    line = str(refused.value)
    assert "\n" not in line and str(grid_model_file) in line and "train a new one" in line


def test_a_checkpoint_holding_a_grid_model_is_refused_in_one_line_naming_the_file(grid_model_file, tmp_path):
    checkpoints = CheckpointDir(tmp_path / "checkpoints")
    written = checkpoints.write(keras.models.load_model(grid_model_file), Reservoir(4), {
        "records": 0, "malformed": 0, "offsets": {}, "topic": "t"
    })  # fmt: skip

    with pytest.raises(CheckpointError) as refused:
        resume(checkpoints, "t", None, 10)

    line = str(refused.value)
    assert "\n" not in line and str(written.model_path) in line and "train a new one" in line


def test_a_replay_sample_saved_as_grids_loads_as_flat_records(tmp_path):
    saved = Reservoir(5)
    saved.add(flat_records(2), np.array([3, 4], np.int32))
    saved.save(tmp_path / "flat.npz")
    with np.load(tmp_path / "flat.npz") as flat:
        arrays = dict(flat)
    np.savez(tmp_path / "grids.npz", **{**arrays, "pixels": arrays["pixels"].reshape(-1, 28, 28, 1)})

    reservoir = Reservoir.load(tmp_path / "grids.npz")

    assert reservoir.pixels.shape == (5, 784) and len(reservoir) == 2
    assert np.array_equal(reservoir.pixels, saved.pixels) and reservoir.labels.tolist()[:2] == [3, 4]
