"""What the consumer commands share apart from settings (those live in ``stack.config``): where models go, and
a quiet TensorFlow."""

from __future__ import annotations

import logging
import os
import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager

# A model store (consumer/versions.py): numbered versions and latest.keras, which evaluate and predict follow.
DEFAULT_MODEL = "models/mnist/latest.keras"


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
