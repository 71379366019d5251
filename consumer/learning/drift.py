"""Concept drift seen from the stream: windowed prequential accuracy, and one line when it falls and recovers.

Prequential ("test, then train") evaluation scores each batch with the model *before* the model learns from it,
so the accuracy over the last ``window`` records is an honest, live estimate of how the model does on what the
stream sends now. ``DriftMonitor`` keeps that window and says, once, when it drops ``drop`` below the best full
window seen so far (``drift: ...``) and, once, when it comes back (``recovered: ...``), with the records it took.

Pure: no TensorFlow, no Kafka; the trainer (``consumer.train --follow``) and the demo feed it counts.
"""

from __future__ import annotations

from collections import deque


class DriftMonitor:
    """Windowed prequential accuracy with drift and recovery messages.

    Parameters
    ----------
    window
        Records in the window (at least; the window holds whole batches, so it may be up to one batch longer).
    drop
        A full window this far below the best full window so far is drift.
    recover
        Window accuracy that counts as recovered; default: halfway back, ``best - drop / 2``.

    Examples
    --------
    >>> monitor = DriftMonitor(window=100, drop=0.2)
    >>> [monitor.update(95, 100), monitor.update(48, 50)]
    [None, None]
    >>> print(monitor.update(10, 50))
    drift: window accuracy 0.58 is 0.37 below its best 0.95 (last 100 records, at record 200)
    >>> [monitor.update(30, 50), monitor.update(50, 50)]  # still below 0.95 - 0.2 / 2: drift is said once
    [None, None]
    >>> print(monitor.update(50, 50))
    recovered: window accuracy 1.00 is back above 0.85 150 records after the drift (lowest 0.40, at record 350)
    >>> round(monitor.window_accuracy, 2), monitor.drifted
    (1.0, False)
    """

    def __init__(self, window: int = 500, drop: float = 0.2, recover: float | None = None) -> None:
        if window < 1:
            raise ValueError(f"window must be >= 1, got {window}")
        if not 0 < drop <= 1:
            raise ValueError(f"drop must be in (0, 1], got {drop}")
        if recover is not None and not 0 <= recover <= 1:
            raise ValueError(f"recover must be in [0, 1], got {recover}")
        self.window = window
        self.drop = drop
        self.recover = recover
        self._batches: deque[tuple[int, int]] = deque()
        self._correct = 0
        self._count = 0
        self.records = 0  # every record seen
        self.best: float | None = None  # best full window since the start or the last recovery
        self.drifted_at: int | None = None  # record count when drift was said; None while not drifted
        self.lowest: float | None = None  # lowest full window since drift was said
        self.threshold: float | None = None  # what recovery needs, set when drift is said
        self.events: list[tuple[str, int, float]] = []  # ("drift" | "recovered", at record, window accuracy)

    @property
    def window_accuracy(self) -> float:
        """Accuracy over the last ``window`` records (fewer at the start; 0.0 before any)."""
        return self._correct / self._count if self._count else 0.0

    @property
    def full(self) -> bool:
        return self._count >= self.window

    @property
    def drifted(self) -> bool:
        return self.drifted_at is not None

    def update(self, correct: int, count: int) -> str | None:
        """Add a scored batch (``correct`` of ``count`` right, scored before training on it); a message or None."""
        if count < 0 or not 0 <= correct <= count:
            raise ValueError(f"need 0 <= correct <= count, got correct={correct}, count={count}")
        if count == 0:
            return None
        self._batches.append((correct, count))
        self._correct += correct
        self._count += count
        self.records += count
        while self._count - self._batches[0][1] >= self.window:
            old_correct, old_count = self._batches.popleft()
            self._correct -= old_correct
            self._count -= old_count
        if not self.full:
            return None
        accuracy = self.window_accuracy
        if self.drifted_at is None:
            if self.best is not None and accuracy <= self.best - self.drop:
                return self._drift(accuracy)
            self.best = accuracy if self.best is None else max(self.best, accuracy)
            return None
        self.lowest = min(self.lowest, accuracy)
        if accuracy >= self.threshold:
            return self._recovered(accuracy)
        return None

    def state(self) -> dict:
        """What a checkpoint keeps, so that a restart neither forgets a drift in progress nor says it twice.

        >>> monitor = DriftMonitor(window=10)
        >>> _ = monitor.update(9, 10), monitor.update(2, 10)
        >>> restored = DriftMonitor(window=10)
        >>> restored.restore(monitor.state())
        >>> restored.drifted, restored.records, restored.update(2, 10)
        (True, 20, None)
        """
        return {
            "batches": [list(part) for part in self._batches],
            "records": self.records,
            "best": self.best,
            "drifted_at": self.drifted_at,
            "lowest": self.lowest,
            "threshold": self.threshold,
        }

    def restore(self, state: dict) -> None:
        """Continue from ``state`` (``state()`` of an earlier run)."""
        self._batches = deque((int(correct), int(count)) for correct, count in state.get("batches", []))
        self._correct = sum(correct for correct, _ in self._batches)
        self._count = sum(count for _, count in self._batches)
        self.records = int(state.get("records", 0))
        self.best, self.drifted_at = state.get("best"), state.get("drifted_at")
        self.lowest, self.threshold = state.get("lowest"), state.get("threshold")

    def _drift(self, accuracy: float) -> str:
        self.drifted_at = self.records
        self.lowest = accuracy
        self.threshold = self.recover if self.recover is not None else self.best - self.drop / 2
        self.events.append(("drift", self.records, accuracy))
        return (
            f"drift: window accuracy {accuracy:.2f} is {self.best - accuracy:.2f} below its best {self.best:.2f} "
            f"(last {self._count} records, at record {self.records:,})"
        )

    def _recovered(self, accuracy: float) -> str:
        took = self.records - self.drifted_at
        message = (
            f"recovered: window accuracy {accuracy:.2f} is back above {self.threshold:.2f} {took:,} records after "
            f"the drift (lowest {self.lowest:.2f}, at record {self.records:,})"
        )
        self.events.append(("recovered", self.records, accuracy))
        self.best, self.drifted_at, self.lowest, self.threshold = accuracy, None, None, None
        return message
