"""``train --follow`` on another dataset: a new model is the dataset's, the replay sample holds its records as
they decode, a checkpoint resumes them, and a model taking another count of values is refused in one line."""

import keras
import numpy as np
import pytest

from consumer.learning.models import build_model
from consumer.learning.online import resume
from consumer.learning.replay import Reservoir
from consumer.records.codec import RecordFormat
from consumer.store.checkpoints import CheckpointDir, CheckpointError
from stack.datasets import load

IRIS = load("iris")
FMT = RecordFormat.of(IRIS)


def test_a_new_run_starts_the_datasets_model_with_its_replay_sample(tmp_path):
    model, reservoir, counters, offsets, checkpoint = resume(
        CheckpointDir(tmp_path), "tf.public.iris_train", None, 50, FMT, lambda: build_model(IRIS)
    )
    assert model.input_shape == (None, 4) and model.output_shape == (None, 3)
    assert isinstance(model.layers[0], keras.layers.Normalization)
    assert (offsets, checkpoint, counters.records) == (None, None, 0)
    values = np.array([[5.1, 3.5, 1.4, 0.2], [6.3, 3.3, 6.0, 2.5]], np.float32)
    reservoir.add(values, np.array([0, 2], np.int32))
    sampled, labels = reservoir.sample(20)
    assert {tuple(row) for row in sampled.tolist()} <= {tuple(row) for row in values.tolist()}
    assert sampled.dtype == np.float32 and set(labels.tolist()) <= {0, 2}


def test_a_checkpoint_resumes_the_datasets_model_and_sample(tmp_path):
    checkpoints = CheckpointDir(tmp_path)
    reservoir = Reservoir(5, fmt=FMT)
    values = np.array([[5.1, 3.5, 1.4, 0.2]], np.float32)
    reservoir.add(values, np.array([1], np.int32))
    manifest = {"records": 1, "malformed": 0, "offsets": {"0": 1}, "topic": "tf.public.iris_train"}
    checkpoints.write(build_model(IRIS, values), reservoir, manifest)
    model, resumed, counters, offsets, _ = resume(checkpoints, "tf.public.iris_train", None, 5, FMT)
    assert model.input_shape == (None, 4) and counters.records == 1 and offsets == {0: 1}
    np.testing.assert_array_equal(resumed.sample(1)[0], values)


def test_a_model_of_another_dataset_is_refused(tmp_path):
    file = tmp_path / "mnist.keras"
    build_model().save(file)
    with pytest.raises(CheckpointError, match="takes 784 values a record, this dataset's records hold 4"):
        resume(CheckpointDir(tmp_path / "checkpoints"), "tf.public.iris_train", file, 5, FMT)


def test_a_replay_sample_of_another_dataset_is_refused(tmp_path):
    mnist = Reservoir(3)
    mnist.add(np.zeros((2, 784), np.float32), np.array([1, 2], np.int32))
    mnist.save(tmp_path / "replay.npz")
    with pytest.raises(ValueError, match="another size than 4 values"):
        Reservoir.load(tmp_path / "replay.npz", fmt=FMT)
