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

The scenario's parts (the digits, the learner's run, the frozen model's scores, the figures around the switch)
are ``consumer.learning.drift_scenario``; this command writes the topic and prints.

Exit codes: 0 shown, 1 failure with one line on stderr, 2 usage.
"""

from __future__ import annotations

import argparse
import socket
import subprocess
import sys
import time
import urllib.request
from datetime import datetime
from pathlib import Path

import numpy as np

from consumer.cli import CommandError, kafka_client_of, quiet_tensorflow
from consumer.kafka.client import KafkaClient, SourceError
from consumer.kafka.writer import write_records
from consumer.learning.drift_scenario import (
    WINDOW_TAG,
    DriftFigures,
    ModelScores,
    drift_figures,
    inverted,
    run_learner,
    sample_digits,
    score_models,
)
from consumer.monitoring.screenshots import line_drawn, screenshot
from consumer.monitoring.tensorboard import DEFAULT_RUNS, chart_url, read_scalars, tensorboard_command
from consumer.records.codec import encode_records
from consumer.store.versions import ModelStore
from stack.config import add_flags


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


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def serves_frozen_run(port: int) -> bool:
    """Whether the TensorBoard on ``port`` serves the ``frozen`` run's window accuracy yet."""
    url = f"http://127.0.0.1:{port}/data/plugin/scalars/scalars?run=frozen&tag={WINDOW_TAG}"
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status == 200
    except OSError:
        return False


def picture(run_dir: Path, out: Path, port: int) -> Path:
    """A screenshot of the runs' window-accuracy chart, from a TensorBoard started for them."""
    port = port or free_port()
    tensorboard = subprocess.Popen(
        tensorboard_command(run_dir, port), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 120
        while not serves_frozen_run(port):
            if time.monotonic() > deadline or tensorboard.poll() is not None:
                raise RuntimeError(f"TensorBoard on port {port} did not serve {run_dir} within 120 s")
            time.sleep(1)
        return screenshot(chart_url(port, WINDOW_TAG), out, ready=line_drawn)
    finally:
        tensorboard.terminate()
        tensorboard.wait(timeout=30)


def summary(figures: DriftFigures, scores: ModelScores) -> str:
    """The demo's last line: the window accuracy around the switch, then the frozen model and the learner."""
    recovered = (
        f"back above {figures.bar:.2f} at record {figures.recovered_at:,} "
        f"({figures.records_to_recover:,} records after the switch)"
        if figures.recovered_at is not None
        else f"not back above {figures.bar:.2f} by the end"
    )
    return (
        f"drift demo: window accuracy {figures.before:.2f} before the switch at record {figures.switch_at:,}, "
        f"{figures.lowest:.2f} at its lowest (record {figures.lowest_at:,}), {recovered}; "
        f"the frozen model v0001 (the learner at the switch) scores {scores.frozen_stream:.2f} on the inverted stream "
        f"and {scores.frozen_test:.2f} on the inverted test digits; the learner's v{scores.learner_version:04d} "
        f"scores {scores.learner_inverted:.2f} on the inverted test digits and {scores.learner_plain:.2f} on the "
        "plain ones"
    )


def publish_scenario(client: KafkaClient, topic: str, images: np.ndarray, labels: np.ndarray) -> int:
    """The digits, then the same digits inverted, on ``topic`` (created with one partition: the records keep the
    order they were written in); exit 1 with one line when Kafka refuses, else 0."""
    try:
        client.create_topic(topic)
        write_records(client, topic, encode_records(images, labels))
        write_records(client, topic, encode_records(inverted(images), labels))
    except SourceError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


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
    quiet_tensorflow()
    images, labels = sample_digits("train")
    images, labels = images[: args.records], labels[: args.records]
    if publish_scenario(client, topic, images, labels):
        return 1
    print(
        f"wrote {len(labels):,} digits then the same {len(labels):,} inverted (255 - x) to {topic}; "
        f"learning them with consumer.train --follow (TensorBoard run {run_dir})",
        flush=True,
    )
    if run_learner(topic, client.servers, work, run_dir / "learner", len(labels), args.batch_size) != 0:
        print("error: consumer.train --follow failed (its error is above)", file=sys.stderr)
        return 1
    points = read_scalars(run_dir / "learner").get(WINDOW_TAG, [])
    try:
        figures = drift_figures(points, switch_at=len(labels))
    except ValueError as error:
        print(f"error: {run_dir}: {error}", file=sys.stderr)
        return 1
    scores = score_models(ModelStore(work / "store"), run_dir / "frozen", images, labels, args.batch_size)
    print(summary(figures, scores), flush=True)
    if args.screenshot:
        try:
            print(f"chart: {picture(run_dir, args.screenshot, args.tensorboard_port)}", flush=True)
        except (RuntimeError, subprocess.SubprocessError) as error:
            print(f"error: no screenshot: {error}", file=sys.stderr)
            return 1
    return 0 if figures.recovered_at is not None else 1


if __name__ == "__main__":
    sys.exit(main())
