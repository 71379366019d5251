"""Defaults shared by the consumer commands (environment names from DESIGN.md)."""

from __future__ import annotations

import logging
import os

TRAIN_TOPIC = "tf.public.mnist_train"
TEST_TOPIC = "tf.public.mnist_test"
DEFAULT_MODEL = "models/mnist.keras"


def bootstrap_servers() -> str:
    return os.environ.get("KAFKA_BOOTSTRAP_SERVERS") or "127.0.0.1:9092"


def quiet_tensorflow() -> None:
    """Hide TensorFlow's C++ start-up chatter (and tfio's REBALANCE lines logged as errors) unless asked for.

    Must run before tensorflow is imported; ``TF_CPP_MIN_LOG_LEVEL`` set by the user wins.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    # tfio's own Python calls trigger TensorFlow deprecation warnings that are not the user's to act on.
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
