"""Spark Structured Streaming scores the test topic: consumer.spark_predict -> mnist.predictions -> the
JDBC sink -> mnist_predictions, one row a source row through a SIGKILL of the whole Spark process group and a
restart from the checkpoint.

Skipped (one line) only when pyspark is not importable or the connector jars cannot be assembled. The model is
an untrained CNN published as version 1 of a store of the test's own, as in test_predictions.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys

import pytest

from probes.database import joined_predictions, query_one
from probes.deadline import poll
from probes.rows import insert, marked_pixels
from probes.topics import end_offsets, read_from
from stack.contract import MNIST
from tests.integration.support.backend import ROOT

ROWS = 300
PER_TRIGGER = 100  # micro-batches of at most this many records: the kill lands after the first, before the last


@pytest.fixture(scope="module")
def spark_ready(pipeline):
    """The connector jars assembled into the test stack's STACK_HOME (from ~/.m2 after the first time)."""
    try:
        import pyarrow  # noqa: F401
        import pyspark  # noqa: F401
    except ImportError as error:
        pytest.skip(f"{error.name} is not installed (pip install -e '.[spark]')")
    if pipeline.backend != "native":
        pytest.skip("runs Spark on the host against the native stack's STACK_HOME")
    assembled = pipeline.run("stack.assemble", "--part", "spark", timeout=300)
    if assembled.returncode != 0:
        pytest.skip(f"the Spark Kafka connector jars cannot be assembled: {assembled.stderr.strip()[:200]}")


def test_a_sigkill_of_spark_then_a_restart_leaves_one_prediction_per_row(pipeline, spark_ready, model_store, tmp_path):
    start = end_offsets(pipeline.bootstrap, MNIST.test)
    ids = insert(pipeline.postgres, MNIST.test_table, [(n % 10, marked_pixels()) for n in range(ROWS)])
    wanted = {str(i).encode() for i in ids}

    def arrived(records) -> bool:
        return len({r.headers.get(MNIST.id_header) for r in records} & wanted) == ROWS

    assert arrived(read_from(pipeline.bootstrap, MNIST.test, start, arrived)), "the rows reached the test topic"
    flags = ("--model", model_store, "--checkpoint-dir", str(tmp_path / "checkpoint"))

    # Its own process group: the SIGKILL takes the driver, Spark's JVM and the Python workers at once (a crash).
    # --follow (a processingTime trigger) for the killed run, availableNow for the restart: both triggers run.
    first = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "consumer.spark_predict",
            *flags,
            "--max-records-per-trigger",
            str(PER_TRIGGER),
            "--follow",
        ],
        cwd=ROOT,
        env=pipeline.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    lines: list[str] = []
    try:
        for line in first.stdout:
            lines.append(line)
            if line.startswith("batch"):  # a micro-batch committed in the checkpoint
                break
    finally:
        os.killpg(first.pid, signal.SIGKILL)
        first.wait(timeout=30)
    assert any(line.startswith("batch") for line in lines), "".join(lines)

    # A bound, not a speed goal: Spark's start and the catch-up took 150 s and more on 2 cores shared with the
    # fresh-machine test (load 14).
    resumed = pipeline.run("consumer.spark_predict", *flags, timeout=400)

    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    batches = [int(b) for b in re.findall(r"^batch\s+(\d+)", resumed.stdout, re.MULTILINE)]
    assert batches and min(batches) > 0, "the restart resumed from the checkpoint, after the committed micro-batch"
    assert re.search(r"scored \d+ records in \d+ micro-batches", resumed.stdout), resumed.stdout

    assert poll(lambda: len(joined_predictions(pipeline.postgres, ids)) == ROWS, 60), "rows missing in the join"
    assert all(
        0 <= predicted <= 9 and 0 < confidence <= 1 and version == 1
        for _, predicted, confidence, version in joined_predictions(pipeline.postgres, ids).values()
    ), "every row has its prediction, by model version 1"
    assert query_one(
        pipeline.postgres,
        f"SELECT count(*), count(DISTINCT id), bool_and(committed_at <= predicted_at) FROM {MNIST.predictions_table} "
        f"WHERE source_table = '{MNIST.test_table}' AND id = ANY(%s)",
        (ids,),
    ) == (ROWS, ROWS, True)


def test_spark_bench_runs_in_a_tiny_configuration_against_one_and_two_predict_processes(pipeline, spark_ready):
    # bench.spark_bench's tiny run (test_bench.py runs the other benchmarks so): figures printed, never asserted.
    result = pipeline.run("bench.spark_bench", "--records", "400", "--reps", "1", "--no-record", timeout=900)

    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    table = result.stdout[result.stdout.index("Scoring 400 records") :]
    for label in ("Spark local[2] (spark_predict)", "1 consumer.predict process", "2 consumer.predict processes"):
        assert label in table, result.stdout
    two = next(line for line in table.splitlines() if "2 consumer.predict processes" in line)
    assert re.search(r"\d+\.\d \(\d+\.\d \+ \d+\.\d\)", two), f"CPU s summed, then each process: {two}"
    # Both processes were in the group, each with a partition, before the first record: both scored records.
    each = re.search(r"(\d+) \+ (\d+)\s*$", two.rstrip(" |"))
    assert each and int(each[1]) > 0 and int(each[2]) > 0 and int(each[1]) + int(each[2]) >= 400, two


def test_prediction_latency_bench_runs_spark_beside_one_and_two_predict_processes(pipeline, spark_ready):
    # bench.prediction_latency_bench's tiny run with every scorer: figures printed, never asserted; each scorer's
    # three stages are in its table.
    result = pipeline.run(
        "bench.prediction_latency_bench",
        *("--rates", "100", "--seconds", "2", "--reps", "1", "--no-record"),
        timeout=900,
    )

    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "Spark left out" not in result.stdout
    table = result.stdout[result.stdout.index("Prediction latency (ms)") :]
    for scorer in ("1 consumer.predict", "2 consumer.predict", "Spark local[2]"):
        stages = [line for line in table.splitlines() if line.lstrip().startswith(scorer)]
        assert len(stages) == 3, f"{scorer}: {stages}\n{table}"
        assert {"commit -> Kafka", "commit -> prediction", "commit -> table row"} == {
            next(s for s in ("commit -> Kafka", "commit -> prediction", "commit -> table row") if s in line)
            for line in stages
        }, table
