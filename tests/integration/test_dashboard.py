"""The dashboard: TensorBoard serves a live ``consumer.evaluate --run-dir`` and draws its accuracy chart.

The run's points come over TensorBoard's scalars HTTP API while evaluate is still running, and a headless
Chromium draws the chart (its line's pixels are in the plot area). ``FIGURES_DIR=docs/images`` keeps the
screenshot.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import urllib.error
import urllib.request

import pytest

from consumer.monitoring.screenshots import (
    FIRST_CHART_PLOT,
    FIRST_RUN_COLOUR,
    find_chromium,
    line_drawn,
    line_pixels,
    screenshot,
)
from consumer.monitoring.tensorboard import chart_url, tensorboard_command
from probes.deadline import poll
from tests.integration.support.backend import ROOT, free_port, stop
from tests.integration.support.digits import digits_topic, evaluate_following

TAG = "evaluate/accuracy"
RUN = "evaluate-live"


def scalars(port: int, run: str, tag: str) -> list:
    """``[[wall_time, step, value], ...]`` from TensorBoard's scalars API; [] until the run and tag are known."""
    url = f"http://127.0.0.1:{port}/data/plugin/scalars/scalars?run={run}&tag={tag}"
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return json.loads(response.read())
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return []  # 400 while the run is unknown, or TensorBoard still starting


@pytest.fixture
def untrained_model(tmp_path):
    from consumer.cli import quiet_tensorflow

    quiet_tensorflow()
    from consumer.learning.models import build_model

    path = tmp_path / "model.keras"
    build_model().save(path)
    return path


@pytest.fixture
def tensorboard(tmp_path):
    """A TensorBoard on a free port over ``tmp_path / "runs"``, re-reading the files every second."""
    logdir, port = tmp_path / "runs", free_port()
    logdir.mkdir()
    with open(tmp_path / "tensorboard.log", "w") as log:
        process = subprocess.Popen(tensorboard_command(logdir, port, reload_s=1), cwd=ROOT, stdout=log, stderr=log)
    yield logdir, port
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()


def test_tensorboard_serves_and_charts_a_live_evaluate_run(pipeline, tensorboard, untrained_model, tmp_path):
    from consumer.kafka.client import KafkaClient
    from consumer.kafka.writer import write_records
    from consumer.records.codec import encode_records

    logdir, port = tensorboard
    topic, images, labels = digits_topic(pipeline, "dashboard", 400)
    evaluate = evaluate_following(pipeline, topic, untrained_model, 40, "--run-dir", str(logdir / RUN))
    try:
        first_line = evaluate.stdout.readline()
        assert first_line.startswith("evaluating"), first_line + evaluate.stderr.read()
        assert f"TensorBoard scalars in {logdir / RUN}" in first_line

        # Live: the points are served while evaluate still runs (--follow), and more arrive as records do.
        assert poll(lambda: len(scalars(port, RUN, TAG)) >= 10, timeout=90), (tmp_path / "tensorboard.log").read_text()
        assert evaluate.poll() is None, "evaluate --follow is still running"
        write_records(KafkaClient.of(pipeline.bootstrap), topic, encode_records(images[400:], labels[400:]))
        assert poll(lambda: scalars(port, RUN, TAG)[-1][1] == 1000, timeout=60), scalars(port, RUN, TAG)[-3:]
        points = scalars(port, RUN, TAG)
        steps = [step for _, step, _ in points]
        assert steps == sorted(set(steps)) and len(steps) >= 1000 // 40, "a point a batch, at the records so far"
        assert all(0.0 <= value <= 1.0 for _, _, value in points)
        for tag in ("evaluate/loss", "stream/records_per_s", "stream/lag"):
            assert scalars(port, RUN, tag), f"{tag} is served too"
    finally:
        output, errors = stop(evaluate)
    assert evaluate.returncode == 0, errors
    assert output.splitlines()[-1].startswith("evaluated 1000 records (0 malformed skipped)")

    if find_chromium() is None:
        pytest.skip("chromium is not installed (Debian: apt-get install chromium): API checked, chart not pictured")
    picture = screenshot(chart_url(port, TAG), tmp_path / "evaluate-accuracy.png", ready=line_drawn)
    line = line_pixels(picture, FIRST_RUN_COLOUR, FIRST_CHART_PLOT)
    assert line_drawn(picture), f"{len(line)} pixels of the run's colour in the plot area: no line drawn"
    if os.environ.get("FIGURES_DIR"):
        shutil.copy(picture, ROOT / os.environ["FIGURES_DIR"] / "dashboard-evaluate.png")
