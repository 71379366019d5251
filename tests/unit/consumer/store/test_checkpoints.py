"""consumer.learning.replay and consumer.store.checkpoints without services: the bounded samples and the atomic
checkpoint."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from consumer.cli import quiet_tensorflow
from consumer.learning.epochs import held_out
from consumer.learning.replay import Reservoir, ShuffleBuffer, to_images, to_pixels
from consumer.store.checkpoints import CheckpointDir

quiet_tensorflow()


def records(n: int, start: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Images whose first pixel is their number (mod 256) and labels that are their number: traceable."""
    pixels = np.zeros((n, 784), np.uint8)
    numbers = np.arange(start, start + n)
    pixels[:, 0] = numbers % 256
    pixels[:, 1] = numbers // 256
    return to_images(pixels), numbers.astype(np.int32)


def test_pixels_survive_the_float_round_trip():
    pixels = np.arange(256, dtype=np.uint8)
    assert np.array_equal(to_pixels(to_images(pixels)), pixels)


def test_reservoir_never_holds_more_than_its_capacity_and_samples_uniformly():
    hits = np.zeros(2000)
    for seed in range(200):
        reservoir = Reservoir(100, seed=seed)
        for start in range(0, 2000, 64):
            reservoir.add(*records(min(64, 2000 - start), start))
        assert len(reservoir) == 100 and reservoir.seen == 2000
        hits[reservoir.labels] += 1
    # Each record is kept with probability 100/2000 = 0.05: 10 of 200 runs. Early and late halves alike.
    assert abs(hits[:1000].mean() - 10) < 1.5 and abs(hits[1000:].mean() - 10) < 1.5


def test_reservoir_saved_and_loaded_continues_identically(tmp_path):
    first = Reservoir(50, seed=3)
    first.add(*records(80))
    first.save(tmp_path / "replay.npz")
    second = Reservoir.load(tmp_path / "replay.npz")
    first.add(*records(40, 80))
    second.add(*records(40, 80))
    assert second.seen == first.seen == 120
    assert np.array_equal(first.labels, second.labels) and np.array_equal(first.pixels, second.pixels)
    assert np.array_equal(first.sample(10)[1], second.sample(10)[1])


def test_shuffle_buffer_hands_out_every_record_once_holding_at_most_capacity_plus_a_batch():
    buffer = ShuffleBuffer(capacity=100, batch_size=32, seed=1)
    out, largest = [], 0
    for start in range(0, 1000, 50):
        buffer.put(*records(50, start))
        largest = max(largest, len(buffer))
        for images, labels in buffer.batches():
            assert np.array_equal(to_pixels(images)[:, 0] + 256 * to_pixels(images)[:, 1], labels)
            out.extend(labels.tolist())
    out.extend(label for _, labels in buffer.drain() for label in labels.tolist())
    assert sorted(out) == list(range(1000))
    assert largest <= 100 + 50 and len(buffer.labels) <= 100 + 50
    assert out[:100] != sorted(out[:100])  # mixed, not in arrival order


def test_held_out_records_stay_held_out_whatever_the_batch():
    pixels = to_pixels(records(500)[0])
    alone = np.concatenate([held_out(pixels[i : i + 7], 0.1) for i in range(0, 500, 7)])
    assert np.array_equal(alone, held_out(pixels, 0.1))
    assert not held_out(pixels, 0.0).any()


@pytest.fixture(scope="module")
def model():
    keras = pytest.importorskip("keras")
    tiny = keras.Sequential([keras.Input(shape=(2,)), keras.layers.Dense(1)])
    tiny.compile(optimizer="adam", loss="mse")
    tiny.train_on_batch(np.ones((4, 2), np.float32), np.ones((4, 1), np.float32))
    return tiny


def manifest(records_: int) -> dict:
    return {"records": records_, "malformed": 1, "offsets": {"0": records_ + 1}, "topic": "t"}


def test_an_empty_checkpoint_dir_has_no_checkpoint(tmp_path):
    assert CheckpointDir(tmp_path / "none").latest() is None


def test_checkpoints_are_numbered_latest_wins_and_the_previous_is_kept(tmp_path, model):
    checkpoints = CheckpointDir(tmp_path)
    for n in (10, 20, 30):
        written = checkpoints.write(model, Reservoir(5), manifest(n))
    latest = checkpoints.latest()
    assert latest == written and latest.sequence == 3 and latest.records == 30
    assert latest.offsets == {0: 31} and latest.malformed == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt-000002", "ckpt-000003", "latest"]
    assert json.loads((tmp_path / "latest" / "checkpoint.json").read_text())["records"] == 30
    assert {p.name for p in latest.directory.iterdir()} == {"checkpoint.json", "model.keras", "replay.npz"}


def test_a_checkpoint_cut_off_mid_write_is_never_read_and_is_cleaned_up(tmp_path, model):
    checkpoints = CheckpointDir(tmp_path)
    checkpoints.write(model, Reservoir(5), manifest(10))
    # What a kill during the next write leaves: a temporary directory with part of the files.
    partial = tmp_path / ".ckpt-000002.tmp-999"
    partial.mkdir()
    (partial / "checkpoint.json").write_text(json.dumps({**manifest(99), "sequence": 2}))
    assert checkpoints.latest().records == 10
    checkpoints.write(model, Reservoir(5), manifest(20))
    assert not partial.exists() and checkpoints.latest().records == 20


def test_a_dangling_latest_link_falls_back_to_the_newest_complete_checkpoint(tmp_path, model):
    checkpoints = CheckpointDir(tmp_path)
    checkpoints.write(model, Reservoir(5), manifest(10))
    (tmp_path / "latest").unlink()
    os.symlink("ckpt-000099", tmp_path / "latest")
    assert checkpoints.latest().records == 10
