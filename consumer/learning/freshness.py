"""Learning freshness: how soon a row's commit reaches a published model, and when ``train --follow`` publishes.

Between full checkpoints (model, optimizer, replay sample, offsets: every 5,000 records or 60 s) ``train --follow``
publishes the model alone every ``--publish-every-seconds``, so a row is in a published model seconds after its
commit rather than up to a minute. ``publish_due`` is that decision; ``Learned`` gathers the commit times
(``__source_ts_ms``) of the records learned since the last publish and, at a publish, turns them into the delays
TensorBoard shows; ``covers`` says whether a version's offsets include a record.

Pure: no Kafka, no TensorFlow, no clock of its own (callers pass the times).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from consumer.learning.changes import Headers, header

#: TensorBoard tags of the delays from a learned record's commit to the publish of the version holding it.
P50_TAG = "freshness/commit_to_published_p50_s"
MAX_TAG = "freshness/commit_to_published_max_s"


def publish_due(now: float, last_published_at: float, every_s: float, unpublished: int) -> bool:
    """Whether to publish the model alone now: ``every_s`` seconds (0: never between checkpoints) passed since
    the last publish and the model learned ``unpublished`` records since (an unchanged model is not republished).

    >>> publish_due(now=105.0, last_published_at=100.0, every_s=5.0, unpublished=64)
    True
    >>> publish_due(104.9, 100.0, 5.0, 64), publish_due(200.0, 100.0, 5.0, 0), publish_due(200.0, 100.0, 0.0, 64)
    (False, False, False)
    """
    return every_s > 0 and unpublished > 0 and now - last_published_at >= every_s


def commit_times_ms(headers: Sequence[Headers], name: str) -> list[int]:
    """The commit times (ms) that header ``name`` gives, one for each record carrying a usable one, in order; a
    record without it (written by another producer than the connector) or with no number there has none.

    >>> commit_times_ms([[("__source_ts_ms", b"1700000000123")], None, [("__source_ts_ms", b"soon")]],
    ...                 "__source_ts_ms")
    [1700000000123]
    """
    times = []
    for found in (header(h, name) for h in headers):
        if found is not None and found.isdigit():
            times.append(int(found))
    return times


class Learned:
    """The commit times of the records learned since the last publish, and the newest of all learned so far.

    >>> learned = Learned(newest_commit_ms=None)
    >>> learned.add([1_000, 3_000]); learned.add([2_000])
    >>> learned.delays(published_at_s=5.0)
    {'freshness/commit_to_published_p50_s': 3.0, 'freshness/commit_to_published_max_s': 4.0}
    >>> learned.newest_commit_ms, learned.delays(published_at_s=9.0)
    (3000, {})
    """

    def __init__(self, newest_commit_ms: int | None = None) -> None:
        self.newest_commit_ms = newest_commit_ms
        self._parts: list[np.ndarray] = []

    def add(self, commit_ms: Iterable[int]) -> None:
        """Record the commit times of a batch's learned records."""
        part = np.fromiter(commit_ms, np.int64)
        if len(part):
            self._parts.append(part)
            newest = int(part.max())
            self.newest_commit_ms = newest if self.newest_commit_ms is None else max(self.newest_commit_ms, newest)

    def delays(self, published_at_s: float) -> dict[str, float]:
        """``{tag: seconds}``: the median and the largest delay from commit to ``published_at_s`` (epoch
        seconds) over the records learned since the last publish; empty when none carried a commit time. Starts
        the next interval."""
        if not self._parts:
            return {}
        delays = published_at_s - np.concatenate(self._parts) / 1000.0
        self._parts = []
        return {P50_TAG: float(np.median(delays)), MAX_TAG: float(delays.max())}


def covers(offsets: Mapping[str, int] | Mapping[int, int] | None, partition: int, offset: int) -> bool:
    """Whether a version whose ``offsets`` (``{partition: next offset}``, keys as JSON has them) learned up to
    there includes the record at ``offset`` of ``partition``.

    >>> covers({"0": 12, "1": 3}, 0, 11), covers({"0": 12}, 0, 12), covers({"0": 12}, 1, 0), covers(None, 0, 0)
    (True, False, False, False)
    """
    if not offsets:
        return False
    learned = {int(p): int(o) for p, o in offsets.items()}
    return offset < learned.get(partition, 0)
