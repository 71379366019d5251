"""What the commands share: errors as one line and an exit code, a quiet TensorFlow, Ctrl-C and SIGTERM that finish the
batch in hand; and, for the scoring commands (``consumer.evaluate``, ``consumer.predict``,
``consumer.spark_predict``), the flags of a topic to score and where predictions go, the model they score with (a
model store's newest version, followed between batches), and the checks before anything is read."""

from __future__ import annotations

import argparse
import logging
import math
import os
import signal
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from consumer.kafka.client import KafkaClient
from consumer.store.source import ModelError, ModelSource
from consumer.store.versions import DEFAULT_MODEL
from stack.config import ConfigError, add_flags
from stack.contract import MNIST


class CommandError(Exception):
    """An expected failure before a command starts: one line for the user and the exit code."""

    def __init__(self, line: str, code: int) -> None:
        super().__init__(line)
        self.code = code


def add_topic_flags(parser: argparse.ArgumentParser, predictions: bool) -> None:
    """``--topic`` (the test topic), ``--predictions-topic`` when ``predictions``, and the Kafka flags."""
    parser.add_argument("--topic", default=MNIST.test, help=f"topic to score (default {MNIST.test})")
    if predictions:
        parser.add_argument(
            "--predictions-topic",
            default=MNIST.predictions_topic,
            help=f"topic the predictions go to (default {MNIST.predictions_topic}, read by the JDBC sink)",
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


def kafka_client_of(args: argparse.Namespace) -> KafkaClient:
    """The Kafka client of the flags and the environment; ``CommandError`` (exit 2) when they are unusable."""
    try:
        return KafkaClient.from_args(args)
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
    quiet_tensorflow()
    try:
        return ModelSource(path)
    except ModelError as error:
        raise CommandError(f"error: {error}", 1) from None


def prepare(args: argparse.Namespace) -> tuple[KafkaClient, ModelSource]:
    """A scoring command's checks before anything is read, in the order the user hears about them: the batch
    flags, the Kafka settings, the model. Returns the Kafka client and the loaded model; ``CommandError`` else."""
    check_batches(args)
    return kafka_client_of(args), open_model(args.model)


def refuse(error: CommandError) -> int:
    """Print ``error``'s line on stderr; its exit code."""
    print(error, file=sys.stderr)
    return error.code


def quiet_tensorflow() -> None:
    """Hide TensorFlow's C++ start-up chatter (and tfio's REBALANCE lines logged as errors) unless asked for.

    Must run before tensorflow is imported; ``TF_CPP_MIN_LOG_LEVEL`` set by the user wins.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    # tfio's own Python calls trigger TensorFlow deprecation warnings that are not the user's to act on.
    logging.getLogger("tensorflow").setLevel(logging.ERROR)


@contextmanager
def stop_on_signals(stop: Callable[[], None]) -> Iterator[None]:
    """Within the block, the first SIGINT (Ctrl-C) or SIGTERM calls ``stop`` (a reader's ``stop``: the loop ends
    after the batch in hand, its commit or transaction done) instead of interrupting whatever runs; a second one
    acts as usual (KeyboardInterrupt, termination). The previous handlers are back after the block."""
    stopped = (signal.SIGINT, signal.SIGTERM)
    previous = {signum: signal.getsignal(signum) for signum in stopped}

    def handle(signum, frame) -> None:
        for number, handler in previous.items():
            signal.signal(number, handler)
        stop()

    for signum in stopped:
        signal.signal(signum, handle)
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
