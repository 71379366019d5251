"""What the consumer commands share apart from settings (those live in ``stack.config``): where models go, and
a quiet TensorFlow."""

from __future__ import annotations

import logging
import os

# A model store (consumer/versions.py): numbered versions and latest.keras, which evaluate and predict follow.
DEFAULT_MODEL = "models/mnist/latest.keras"


def quiet_tensorflow() -> None:
    """Hide TensorFlow's C++ start-up chatter (and tfio's REBALANCE lines logged as errors) unless asked for.

    Must run before tensorflow is imported; ``TF_CPP_MIN_LOG_LEVEL`` set by the user wins.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    # tfio's own Python calls trigger TensorFlow deprecation warnings that are not the user's to act on.
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
