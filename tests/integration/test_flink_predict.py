"""A PyFlink job scores the test topic: consumer.flink_predict -> mnist.predictions -> the JDBC sink ->
mnist_predictions, exactly once through a SIGKILL of the whole job (its process group) mid-stream and a restart
from its newest retained checkpoint: a read_committed reader of the predictions topic (probes.topics, not the code
under test) finds one prediction a row, none twice, none lost. A bad record is counted by reason and set aside; a
deleted row ends in a tombstone.

The job runs in the flink extra's virtual environment (``make setup-flink``: .venv-flink, or FLINK_PYTHON):
apache-flink 2.3.0 needs pyarrow < 17 and the spark extra pyarrow >= 18, so they cannot share the project's.
Skipped (one line) only when that Python has no pyflink or the connector jar cannot be assembled. The model is an
untrained CNN published as version 1 of a store of the test's own, as in test_predictions.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import signal
import subprocess
import threading
import time
import uuid
from collections import Counter

import pytest

from consumer.flink_predict import FLINK_PYTHON, flink_missing
from consumer.records.codec import encode_pixels
from consumer.records.predictions import key_of, zoned_timestamp
from probes.database import query_one
from probes.deadline import poll
from probes.rows import insert, marked_pixels
from probes.topics import end_offsets, read_from
from stack.contract import MNIST
from stack.kafka import ensure_topics
from tests.integration.support.backend import ROOT
from tests.integration.support.changes import (
    DELETED,
    INSERTED_AT,
    PARTITIONS,
    UPDATED,
    UPDATED_AT,
    changes,
    last_per_row,
    predicted_ids,
    predictions_after,
    produce_all,
)
from tests.integration.support.changes import ROWS as CHANGE_ROWS

ROWS = 300
CHUNK = 20  # rows a transaction while the job runs, so the kill lands while rows still arrive


@pytest.fixture(scope="module")
def flink_ready(pipeline) -> str:
    """The flink extra's Python, and the connector jar assembled into the test stack's STACK_HOME."""
    if pipeline.backend != "native":
        pytest.skip("runs Flink on the host against the native stack's STACK_HOME")
    if not FLINK_PYTHON.is_file():  # before the jar is fetched: without PyFlink it serves nothing
        pytest.skip(f"no {FLINK_PYTHON}: pyflink is not installed (make setup-flink)")
    assembled = pipeline.run("stack.assemble", "--part", "flink", timeout=300)
    if assembled.returncode != 0:
        pytest.skip(f"the Flink Kafka connector jar cannot be assembled: {assembled.stderr.strip()[:200]}")
    why = flink_missing(pipeline.config)
    if why:
        pytest.skip(why)
    return str(FLINK_PYTHON)


def flink(pipeline, python: str, *args: str, timeout: float = 400) -> subprocess.CompletedProcess:
    """A bounded run (it ends 3 s after its last record); on a timeout its whole process group is killed, so no
    JVM or Python worker outlives the test."""
    command = [python, "-m", "consumer.flink_predict", *args, "--idle-timeout", "3"]
    job = subprocess.Popen(
        command, cwd=ROOT, env=pipeline.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True,
    )  # fmt: skip
    try:
        stdout, stderr = job.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(job.pid, signal.SIGKILL)
        stdout, stderr = job.communicate()
        pytest.fail(f"flink_predict did not end within {timeout} s:\n{stdout}\n{stderr}")
    return subprocess.CompletedProcess(command, job.returncode, stdout, stderr)


def ours(records, ids: set[int]) -> Counter:
    """How many committed prediction records each of our rows has."""
    return Counter(row for table, row in (key_of(r.key) for r in records) if table == MNIST.test_table and row in ids)


def test_a_sigkill_of_the_flink_job_then_a_restart_leaves_exactly_one_prediction_per_row(
    pipeline, flink_ready, model_store, tmp_path
):
    topic_start = end_offsets(pipeline.bootstrap, MNIST.test)
    predictions_start = end_offsets(pipeline.bootstrap, MNIST.predictions_topic)
    ids: list[int] = insert(pipeline.postgres, MNIST.test_table, [(n % 10, marked_pixels()) for n in range(CHUNK)])
    flags = ("--model", model_store, "--checkpoint-dir", str(tmp_path / "checkpoints"))
    flags += ("--group-id", f"flink-test-{uuid.uuid4().hex[:8]}")

    # Its own process group: the SIGKILL takes the command, Flink's JVM and the Python worker at once (a crash).
    first = subprocess.Popen(
        [flink_ready, "-m", "consumer.flink_predict", *flags, "--follow"],
        cwd=ROOT, env=pipeline.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True,
    )  # fmt: skip
    output: list[str] = []
    threading.Thread(target=lambda: output.extend(first.stdout), daemon=True).start()
    try:
        # Rows keep arriving from the first committed prediction on; the kill lands among them.
        seen = read_from(
            pipeline.bootstrap, MNIST.predictions_topic, predictions_start, lambda r: bool(ours(r, {*ids})), 180
        )
        assert ours(seen, {*ids}), "no prediction committed within 180 s:\n" + "".join(output)
        for _ in range(ROWS // CHUNK - 1):
            ids += insert(pipeline.postgres, MNIST.test_table, [(n % 10, marked_pixels()) for n in range(CHUNK)])
            time.sleep(0.1)
    finally:
        os.killpg(first.pid, signal.SIGKILL)
        first.wait(timeout=30)
    wanted = {*ids}
    assert len(wanted) == ROWS

    def arrived(records) -> bool:
        return {int(r.headers.get(MNIST.id_header, b"0")) for r in records} >= wanted

    assert arrived(read_from(pipeline.bootstrap, MNIST.test, topic_start, arrived)), "the rows reached the topic"
    resumed = flink(pipeline, flink_ready, *flags)

    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "restored from " in resumed.stdout and "/chk-" in resumed.stdout, resumed.stdout
    counted = ours(predictions_after(pipeline, predictions_start), wanted)
    duplicates, lost = sum(n - 1 for n in counted.values() if n > 1), len(wanted - set(counted))
    print(f"flink exactly once: {len(counted)} rows predicted, {duplicates} duplicates, {lost} lost")
    print(resumed.stdout.strip().splitlines()[-1])
    assert (duplicates, lost) == (0, 0), f"{duplicates} duplicates, {lost} lost:\n{resumed.stdout}"

    sql = (
        f"SELECT count(*), count(DISTINCT id), bool_and(model_version = 1) FROM {MNIST.predictions_table} "
        f"WHERE source_table = '{MNIST.test_table}' AND id = ANY(%s)"
    )
    assert poll(lambda: query_one(pipeline.postgres, sql, (ids,)) == (ROWS, ROWS, True), 60), query_one(
        pipeline.postgres, sql, (ids,)
    )


def test_a_run_with_nothing_left_to_read_ends_after_its_idle_timeout(pipeline, flink_ready, model_store, tmp_path):
    # PyFlink opens the Python function with its first records: a run restored from a point past every record of
    # the topic never opens it, and the command waited for it forever.
    flags = ("--model", model_store, "--checkpoint-dir", str(tmp_path / "checkpoints"))
    flags += ("--group-id", f"flink-idle-{uuid.uuid4().hex[:8]}")
    first = flink(pipeline, flink_ready, *flags)
    assert first.returncode == 0, first.stdout + first.stderr

    again = flink(pipeline, flink_ready, *flags, timeout=240)

    assert again.returncode == 0, again.stdout + again.stderr
    assert "restored from " in again.stdout, again.stdout
    assert again.stdout.strip().splitlines()[-1].startswith("predicted 0 of 0 records"), again.stdout


def bad(table: str, header: str, raw: bytes, partition: int, value: bytes | None = None) -> dict:
    """A record whose headers name no row (one header unusable), or, with ``value``, one that does not decode."""
    headers = {MNIST.table_header: table.encode(), MNIST.id_header: b"7", MNIST.commit_header: b"1700000000000"}
    headers[header] = raw
    return {
        "key": b"3",
        "value": value if value is not None else encode_pixels(bytes(784)),
        "headers": [*headers.items(), (MNIST.op_header, b"c")],
        "partition": partition,
    }


def test_bad_records_are_counted_and_set_aside_and_each_row_ends_in_its_latest_prediction_or_a_tombstone(
    pipeline, flink_ready, model_store, tmp_path
):
    suffix = uuid.uuid4().hex[:8]
    topic, table = f"test.flink.changes.{suffix}", f"flink_changes_{suffix}"
    ensure_topics(dataclasses.replace(pipeline.config, partitions=PARTITIONS), (topic,))
    predictions_start = end_offsets(pipeline.bootstrap, MNIST.predictions_topic)
    records = changes(table)
    records[CHANGE_ROWS // 2 : CHANGE_ROWS // 2] = [
        bad(table, MNIST.commit_header, b"99999999999999999", 0),
        bad(table, MNIST.id_header, str(2**64 + 5).encode(), 1),
        bad(table, MNIST.id_header, b"8", 2, value=b"1,2,not a pixel"),
    ]
    produce_all(pipeline.bootstrap, topic, records)

    result = flink(
        pipeline, flink_ready, "--model", model_store, "--topic", topic,
        "--checkpoint-dir", str(tmp_path / "checkpoints"), "--group-id", f"flink-test-{suffix}",
    )  # fmt: skip

    assert result.returncode == 0, result.stdout + result.stderr
    summary = result.stdout.strip().splitlines()[-1]
    print(summary)
    assert summary.startswith("predicted 50 of 58 records (5 retracted, 3 malformed: "), summary
    for reason in ("1 commit time out of range", "1 id out of range", "1 undecodable"):
        assert reason in summary, summary
    last = last_per_row(pipeline, predictions_start, table)
    assert sorted(last) == list(range(1, CHANGE_ROWS + 1)), f"one key a row, none for the bad records: {sorted(last)}"
    assert sorted(i for i, value in last.items() if value is None) == list(DELETED), "deleted rows end in a tombstone"
    committed = {i: json.loads(value)["payload"]["committed_at"] for i, value in last.items() if value is not None}
    assert {i for i, at in committed.items() if at == zoned_timestamp(UPDATED_AT)} == set(UPDATED) - set(DELETED)
    assert {i for i, at in committed.items() if at == zoned_timestamp(INSERTED_AT)} == set(range(21, CHANGE_ROWS + 1))

    living = sorted(set(range(1, CHANGE_ROWS + 1)) - set(DELETED))
    assert poll(lambda: predicted_ids(pipeline, table) == living, 60), predicted_ids(pipeline, table)


def test_the_engine_benchmarks_run_flink_beside_consumer_predict_in_a_tiny_configuration(pipeline, flink_ready):
    # bench.spark_bench's and bench.prediction_latency_bench's tiny runs with Flink: figures printed, never asserted.
    scoring = pipeline.run(
        "bench.spark_bench", *("--scorers", "flink", "predict", "--records", "400", "--reps", "1", "--no-record"),
        timeout=900,
    )  # fmt: skip
    assert scoring.returncode == 0, scoring.stdout[-2000:] + scoring.stderr[-2000:]
    table = scoring.stdout[scoring.stdout.index("Scoring 400 records") :]
    flink_row = next(line for line in table.splitlines() if "Flink mini-cluster (flink_predict)" in line)
    assert re.search(r"Flink mini-cluster \(flink_predict\)\s+[\d,]+\s+[\d.]+\s+[\d.]+", flink_row), flink_row

    latency = pipeline.run(
        "bench.prediction_latency_bench",
        *("--scorers", "flink", "--rates", "100", "--seconds", "2", "--reps", "1", "--no-record"),
        timeout=900,
    )
    assert latency.returncode == 0, latency.stdout[-2000:] + latency.stderr[-2000:]
    stages = [line for line in latency.stdout.splitlines() if line.lstrip().startswith("Flink mini-cluster")]
    assert [
        stage
        for stage in ("commit -> Kafka", "commit -> prediction", "commit -> table row")
        if any(stage in line for line in stages)
    ] == ["commit -> Kafka", "commit -> prediction", "commit -> table row"], latency.stdout
