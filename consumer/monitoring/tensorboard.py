"""Scalars for TensorBoard: one run directory a process, event files written with ``tf.summary``.

``Metrics(run_dir)`` writes ``tag`` / ``value`` / ``step`` points to TensorBoard event files under ``run_dir``;
``Metrics(None)`` is off (every call does nothing, TensorFlow is not imported). Points reach the disk within
about a second (``FLUSH_S``), so ``make dashboard`` shows a live run while it runs.

The tags the consumer commands write (``step`` is the number of records seen so far):

* ``consumer.train --follow``: ``train/loss``, ``train/accuracy``, ``prequential/accuracy``,
  ``prequential/window_accuracy``, ``stream/records_per_s``, ``stream/lag``
* ``consumer.evaluate --run-dir``: ``evaluate/accuracy``, ``evaluate/loss``, ``evaluate/batch_accuracy``,
  ``evaluate/model_version`` (model stores only), ``stream/records_per_s``, ``stream/lag``

TensorBoard serves them over HTTP as ``[wall_time, step, value]`` triples at
``/data/plugin/scalars/scalars?run=RUN&tag=TAG`` (RUN: the run directory's path relative to ``--logdir``;
tensorboard/plugins/scalar/http_api.md upstream). ``tensorboard_command``, ``chart_url`` and ``screenshot``
are how ``make dashboard``, the tests and the README's figures start TensorBoard and picture one chart in a
headless Chromium.
"""

from __future__ import annotations

import math
import sys
import time
from datetime import datetime
from pathlib import Path
from urllib.parse import quote

DEFAULT_RUNS = Path("runs")
FLUSH_S = 1.0  # at most this long between a point and the disk: TensorBoard re-reads the files every few seconds


def timestamped_run(prefix: str, root: Path = DEFAULT_RUNS, now: datetime | None = None) -> Path:
    """A run directory named after the command and the time, e.g. ``runs/evaluate-20260102-030405``.

    >>> timestamped_run("evaluate", now=datetime(2026, 1, 2, 3, 4, 5)).as_posix()
    'runs/evaluate-20260102-030405'
    """
    return root / f"{prefix}-{(now or datetime.now()).strftime('%Y%m%d-%H%M%S')}"


class Metrics:
    """TensorBoard scalars for one run (``run_dir``), or nothing at all (``None``).

    ``scalar`` skips values that are not finite numbers (TensorBoard would draw NaN as a gap anyway) and
    flushes at most every ``FLUSH_S`` seconds; ``close`` flushes the rest. Usable as a context manager.
    """

    def __init__(self, run_dir: Path | None) -> None:
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self._writer = None
        self._flushed_at = 0.0
        if self.run_dir is None:
            return
        import tensorflow as tf  # noqa: PLC0415 - TensorFlow loads in seconds; only a run that is on needs it

        self.run_dir.mkdir(parents=True, exist_ok=True)
        self._tf = tf
        # flush_millis is the writer's own background bound; scalar() flushes too, so a quiet run is on disk.
        self._writer = tf.summary.create_file_writer(str(self.run_dir), flush_millis=int(FLUSH_S * 1000))

    @property
    def enabled(self) -> bool:
        return self._writer is not None

    def scalar(self, tag: str, value: float, step: int) -> None:
        """Record ``value`` for ``tag`` at ``step`` (records seen so far)."""
        if self._writer is None or value is None or not math.isfinite(float(value)):
            return
        with self._writer.as_default():
            self._tf.summary.scalar(tag, float(value), step=int(step))
        now = time.monotonic()
        if now - self._flushed_at >= FLUSH_S:
            self._writer.flush()
            self._flushed_at = now

    def flush(self) -> None:
        if self._writer is not None:
            self._writer.flush()
            self._flushed_at = time.monotonic()

    def close(self) -> None:
        """Flush and close the event file; later calls do nothing."""
        if self._writer is not None:
            self._writer.flush()
            self._writer.close()
            self._writer = None

    def __enter__(self) -> Metrics:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class RateMeter:
    """Records per second over the last ``window_s`` seconds of a stream (for ``stream/records_per_s``).

    >>> meter = RateMeter(window_s=10.0)
    >>> meter.add(0, at=0.0); meter.add(100, at=1.0); meter.add(100, at=2.0)
    >>> meter.rate
    100.0
    """

    def __init__(self, window_s: float = 10.0) -> None:
        self.window_s = window_s
        self._points: list[tuple[float, int]] = []  # (time, records so far)
        self._total = 0

    def add(self, count: int, at: float | None = None) -> None:
        at = time.monotonic() if at is None else at
        self._total += count
        self._points.append((at, self._total))
        while len(self._points) > 2 and at - self._points[1][0] >= self.window_s:
            self._points.pop(0)

    @property
    def rate(self) -> float:
        if len(self._points) < 2:
            return 0.0
        (t0, n0), (t1, n1) = self._points[0], self._points[-1]
        return (n1 - n0) / (t1 - t0) if t1 > t0 else 0.0


def read_scalars(run_dir: Path) -> dict[str, list[tuple[int, float]]]:
    """Every scalar in the event files of ``run_dir`` now, as TensorBoard's own loader reads them:
    ``{tag: [(step, value), ...]}`` in the order written."""
    # TensorBoard's loader imports TensorFlow, which loads in seconds: only reading a run needs it.
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # noqa: PLC0415
    from tensorboard.util import tensor_util  # noqa: PLC0415

    accumulator = EventAccumulator(str(run_dir), size_guidance={"tensors": 0})  # 0: keep every point
    accumulator.Reload()
    return {
        tag: [(event.step, float(tensor_util.make_ndarray(event.tensor_proto))) for event in accumulator.Tensors(tag)]
        for tag in accumulator.Tags()["tensors"]
    }


def tensorboard_command(logdir: Path, port: int, host: str = "127.0.0.1", reload_s: int = 5) -> list[str]:
    """The command line of a TensorBoard serving the run directories under ``logdir`` on ``host:port`` (each
    directory holding event files is a run, named by its path under ``logdir``).

    >>> tensorboard_command(Path("runs"), 6006)[2:]
    ['tensorboard.main', '--logdir', 'runs', '--host', '127.0.0.1', '--port', '6006', '--reload_interval', '5']
    """
    return [
        sys.executable,
        "-m",
        "tensorboard.main",
        "--logdir",
        str(logdir),
        "--host",
        host,
        "--port",
        str(port),
        "--reload_interval",
        str(reload_s),
    ]


def chart_url(port: int, tag: str, host: str = "127.0.0.1", smoothing: float = 0.0) -> str:
    """TensorBoard's time-series page showing the charts whose tag matches ``tag`` (a regex), drawn as SVG.

    ``forceSVG``: TensorBoard draws lines with WebGL in an offscreen canvas by default, which a headless
    Chromium's screenshot shows as an empty frame; SVG lines are in the picture.

    >>> chart_url(6006, "evaluate/accuracy")
    'http://127.0.0.1:6006/?forceSVG=true&smoothing=0&tagFilter=evaluate%2Faccuracy#timeseries'
    """
    return f"http://{host}:{port}/?forceSVG=true&smoothing={smoothing:g}&tagFilter={quote(tag, safe='')}#timeseries"
