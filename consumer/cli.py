"""What the commands share: errors as one line and an exit code, a quiet TensorFlow, Ctrl-C and SIGTERM that finish the
batch in hand, ``--dataset`` and the names it gives (topics, model store, groups, run names); and, for the scoring
commands (``consumer.evaluate``, ``consumer.predict``,
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
from consumer.records.codec import RecordFormat
from consumer.store.source import ModelError, ModelSource
from consumer.store.versions import LATEST_MODEL
from stack import datasets
from stack.config import ConfigError, add_flags

DEFAULT_DATASET = "mnist"
MODELS = Path("models")


class CommandError(Exception):
    """An expected failure before a command starts: one line for the user and the exit code."""

    def __init__(self, line: str, code: int) -> None:
        super().__init__(line)
        self.code = code


def add_dataset_flag(parser: argparse.ArgumentParser) -> None:
    """``--dataset``: the dataset whose topics, headers, records and model store a command uses."""
    parser.add_argument(
        "--dataset",
        default=DEFAULT_DATASET,
        help=f"a dataset name in datasets/ or a path to its .toml description (default {DEFAULT_DATASET}); the "
        "defaults of the topic, model and group flags are its own",
    )


def dataset_of(args: argparse.Namespace):
    """The ``stack.datasets.Dataset`` ``--dataset`` names; ``CommandError`` (exit 2, one line) when unknown."""
    try:
        return datasets.load(args.dataset)
    except datasets.DatasetError as error:
        raise CommandError(f"error: {error}", 2) from None


def store_of(dataset) -> Path:
    """The dataset's default model store: ``models/<name>`` (``models/mnist`` for MNIST)."""
    return MODELS / dataset.name


def run_prefix(dataset, command: str) -> str:
    """A run directory's name before its time: the command, and the dataset's name unless it is MNIST's.

    >>> from types import SimpleNamespace
    >>> run_prefix(SimpleNamespace(name="mnist"), "train"), run_prefix(SimpleNamespace(name="iris"), "train")
    ('train', 'train-iris')
    """
    return command if dataset.name == DEFAULT_DATASET else f"{command}-{dataset.name}"


def add_topic_flags(parser: argparse.ArgumentParser, predictions: bool) -> None:
    """``--dataset``, ``--topic`` (the test topic), ``--predictions-topic`` when ``predictions``, and the Kafka
    flags; ``apply_dataset`` fills in the defaults the dataset gives."""
    add_dataset_flag(parser)
    parser.add_argument("--topic", help="topic to score (default: the dataset's test topic, tf.public.mnist_test)")
    if predictions:
        parser.add_argument(
            "--predictions-topic",
            help="topic the predictions go to (default: the dataset's, mnist.predictions, read by the JDBC sink)",
        )
    add_flags(parser, "kafka")


def add_model_flag(parser: argparse.ArgumentParser, verb: str) -> None:
    default = MODELS / DEFAULT_DATASET / LATEST_MODEL
    parser.add_argument(
        "--model",
        type=Path,
        help=f"model to {verb} (default: the dataset's model store's latest, {default}); a model store's "
        "latest.keras is followed: a newer version is loaded between batches",
    )


def add_engine_flags(parser: argparse.ArgumentParser, engine: str, end: str) -> None:
    """What the Spark and Flink scorers share: the topic, Kafka and model flags, ``--checkpoint-dir`` (where a
    restart resumes; default ``$STACK_HOME/<engine>-checkpoints/<topic>``) and ``--follow`` (else the run ends
    ``end``)."""
    add_topic_flags(parser, predictions=True)
    add_model_flag(parser, "score with")
    parser.add_argument(
        "--checkpoint-dir",
        type=Path,
        help=f"{engine.capitalize()}'s checkpoints: where a restart resumes "
        f"[default $STACK_HOME/{engine}-checkpoints/<topic>]",
    )
    parser.add_argument("--follow", action="store_true", help=f"run until Ctrl-C instead of ending {end}")


def add_group_flag(parser: argparse.ArgumentParser, role: str, description: str) -> None:
    """``--group-id``, by default ``<dataset>-<role>`` (``apply_dataset``)."""
    parser.add_argument("--group-id", help=f"consumer group (default {DEFAULT_DATASET}-{role}: {description})")
    parser.set_defaults(group_role=role)


def apply_dataset(args: argparse.Namespace):
    """The dataset ``--dataset`` names, with the flags left out filled in from it: topic (the test topic),
    predictions topic, model (its store's latest), group (``<dataset>-<role>``). ``CommandError`` when unknown."""
    dataset = dataset_of(args)
    contract = dataset.contract
    if getattr(args, "topic", "") is None:
        args.topic = contract.test
    if getattr(args, "predictions_topic", "") is None:
        args.predictions_topic = contract.predictions_topic
    if getattr(args, "model", "") is None:
        args.model = store_of(dataset) / LATEST_MODEL
    if getattr(args, "group_id", "") is None and getattr(args, "group_role", None):
        args.group_id = f"{dataset.name}-{args.group_role}"
    return dataset


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


def open_model(path: Path, dataset=None) -> ModelSource:
    """The model to score with, loaded (TensorFlow quiet first); ``CommandError`` (exit 1) when there is none, or
    when it does not take ``dataset``'s records."""
    if not path.is_file():
        named = dataset is not None and dataset.name != DEFAULT_DATASET
        train = "python -m consumer.train" + (f" --dataset {dataset.name}" if named else "")
        raise CommandError(f"error: no model at {path}; train one first: {train}", 1)
    quiet_tensorflow()
    try:
        return ModelSource(path, dataset.num_features if dataset is not None else None)
    except ModelError as error:
        raise CommandError(f"error: {error}", 1) from None


def prepare(args: argparse.Namespace):
    """A scoring command's checks before anything is read, in the order the user hears about them: the dataset,
    the batch flags, the source, the Kafka settings, the model. Returns the Kafka client, the loaded model and the
    dataset (its defaults filled into ``args``); ``CommandError`` else."""
    dataset = apply_dataset(args)
    check_batches(args)
    check_source(args, dataset)
    return kafka_client_of(args), open_model(args.model, dataset), dataset


def check_source(args: argparse.Namespace, dataset) -> None:
    """``--source tfio`` only with MNIST's records (its TensorFlow decode knows no other); ``CommandError`` (2)."""
    if getattr(args, "source", "kafka") == "tfio" and RecordFormat.of(dataset) != RecordFormat():
        raise CommandError(f"error: --source tfio decodes MNIST's records only, not dataset {dataset.name}'s", 2)


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
