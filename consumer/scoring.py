"""What the scoring commands share (``consumer.evaluate``, ``consumer.predict``, ``consumer.spark_predict``): the
flags of a topic to score and where predictions go, the model they score with (a model store's newest version,
followed between batches), and the checks before anything is read.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from consumer.runtime import DEFAULT_MODEL
from stack.config import TOPICS, ConfigError, add_flags, kafka_from_args


class CommandError(Exception):
    """An expected failure before a command starts: one line for the user and the exit code."""

    def __init__(self, line: str, code: int) -> None:
        super().__init__(line)
        self.code = code


def add_topic_flags(parser: argparse.ArgumentParser, predictions: bool) -> None:
    """``--topic`` (the test topic), ``--predictions-topic`` when ``predictions``, and the Kafka flags."""
    parser.add_argument("--topic", default=TOPICS.test, help=f"topic to score (default {TOPICS.test})")
    if predictions:
        parser.add_argument(
            "--predictions-topic",
            default=TOPICS.predictions,
            help=f"topic the predictions go to (default {TOPICS.predictions}, read by the JDBC sink)",
        )
    add_flags(parser, "kafka")


def add_model_flag(parser: argparse.ArgumentParser, verb: str) -> None:
    parser.add_argument(
        "--model",
        type=Path,
        default=Path(DEFAULT_MODEL),
        help=f"model to {verb} ({DEFAULT_MODEL}); a model store's latest.keras is followed: a newer version is "
        "loaded between batches",
    )


def servers_of(args: argparse.Namespace) -> str:
    """The Kafka brokers from the flags and the environment; ``CommandError`` (exit 2) when unusable."""
    try:
        return kafka_from_args(args).bootstrap_servers
    except ConfigError as error:
        raise CommandError(f"error: {error}", 2) from None


def check_batches(args: argparse.Namespace) -> None:
    """``--batch-size`` and ``--idle-timeout`` usable, else ``CommandError`` (exit 2)."""
    if args.batch_size < 1 or not (math.isfinite(args.idle_timeout) and args.idle_timeout > 0):
        raise CommandError("error: --batch-size must be >= 1 and --idle-timeout a finite number > 0", 2)


def open_model(path: Path) -> ModelSource:
    """The model to score with, loaded (TensorFlow quiet first); ``CommandError`` (exit 1) when there is none."""
    if not path.is_file():
        raise CommandError(f"error: no model at {path}; train one first: python -m consumer.train", 1)
    from consumer.runtime import quiet_tensorflow

    quiet_tensorflow()
    try:
        return ModelSource(path)
    except ModelError as error:
        raise CommandError(f"error: {error}", 1) from None


class ModelSource:
    """The model to score with: a plain ``.keras`` file (loaded once), or a model store's newest version.

    ``refresh()`` (between batches) loads a newer version when the store's ``latest.json`` names one and
    returns a line for the user; ``version`` is None for a plain file.
    """

    def __init__(self, path: Path) -> None:
        import keras

        self._keras = keras
        self.path = path
        self.store = None
        self.version: int | None = None
        if path.name == "latest.keras" and (path.parent / "latest.json").is_file():
            from consumer.versions import ModelStore

            self.store = ModelStore(path.parent)
            found = self.store.latest()
            if found is None:
                raise ModelError(f"{path.parent}/latest.json names no model file that exists")
            self.version, file = found
            self.model = self._load(file)
        else:
            self.model = self._load(path)

    def _load(self, file: Path):
        try:
            return self._keras.models.load_model(file, compile=False)  # scoring needs no optimizer state
        except Exception as error:  # noqa: BLE001 - a missing config.json is a KeyError, a non-zip a BadZipFile
            reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            raise ModelError(
                f"cannot load the model at {file}: not a Keras model saved by consumer.train "
                f"({type(error).__name__}: {reason[:200]})"
            ) from None

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
        return f"model {self.label} loaded (was {previous})"


class ModelError(Exception):
    """A model that cannot be loaded: one line for the user."""


def prediction_records(model, images, rows, version: int | None) -> list[tuple[bytes, bytes]]:
    """``(key, value)`` of one prediction record each for ``rows`` (``consumer.predictions.rows_to_predict``:
    ``(index into images, the row's reference)``), scored by ``model`` in one call."""
    if not rows:
        return []
    import time

    import numpy as np

    from consumer.predictions import prediction_key, prediction_value

    probabilities = np.asarray(model(images, training=False))
    predicted = np.argmax(probabilities, axis=1)
    confidence = probabilities[np.arange(len(predicted)), predicted]
    now_ms = int(time.time() * 1000)
    return [
        (prediction_key(ref), prediction_value(ref, predicted[i], confidence[i], version, now_ms)) for i, ref in rows
    ]


def prepare(args: argparse.Namespace) -> tuple[str, ModelSource]:
    """A scoring command's checks before anything is read, in the order the user hears about them: the batch
    flags, the Kafka settings, the model. Returns the brokers and the loaded model; ``CommandError`` else."""
    check_batches(args)
    return servers_of(args), open_model(args.model)


def refuse(error: CommandError) -> int:
    """Print ``error``'s line on stderr; its exit code."""
    import sys

    print(error, file=sys.stderr)
    return error.code
