"""Waiting with a deadline: what tests and benchmarks use instead of bare sleeps."""

from __future__ import annotations

import time
from collections.abc import Callable


def poll(predicate: Callable[[], object], timeout: float, interval: float = 0.25) -> bool:
    """Call ``predicate`` every ``interval`` seconds until it returns something true or ``timeout`` seconds pass.

    Returns True as soon as it does; False when the deadline passed first. It is called at least once, and
    once more at the deadline, so a condition that turns true while we sleep is not missed.

    >>> poll(lambda: True, timeout=0)
    True
    >>> poll(lambda: False, timeout=0.05, interval=0.01)
    False
    """
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        time.sleep(min(interval, left))
