"""Scoring scales as a consumer group (DESIGN.md): two ``consumer.predict --follow`` processes share a 4-partition
topic of the test's own; one is SIGKILLed mid-stream, and the survivor takes its partitions over once the dead
member's session times out (``consumer.kafka.reader.SESSION_TIMEOUT_MS``) and its open transaction is aborted
(``transaction.timeout.ms``). In the end every row has exactly one prediction: one row in ``mnist_predictions``
and one committed record on ``mnist.predictions``, counted by the probes (they share no code with the predictor).

The records are what the connector writes (key: the label; value: 784 CSV pixels) with the ``mnist.table`` and
``mnist.id`` headers, under a source table name of the test's own, so no other test's rows are counted.
GROUP_RUNS=N repeats the test N times on one stack.
"""

from __future__ import annotations

import collections
import dataclasses
import os
import re
import signal
import subprocess
import threading
import time
import uuid

import numpy as np
import pytest
from confluent_kafka import Producer

from consumer.records.codec import encode_pixels
from consumer.records.predictions import key_of
from probes.database import query_one
from probes.deadline import poll
from probes.topics import end_offsets, group_assignment
from stack.contract import MNIST
from stack.kafka import ensure_topics
from tests.integration.support.changes import predictions_after

ROWS = 3000
RATE = 150  # records/s: a 20 s stream, so the kill lands mid-stream and rows keep coming during the takeover
PARTITIONS = 4
BATCH = 50
# The dead member's partitions wait for its session to time out (10 s) and its open transaction to be aborted
# (10 s), then the survivor reads what piled up; the rest is the sink's upserts.
TAKEOVER_DEADLINE_S = 150
pytestmark = pytest.mark.parametrize("run", range(int(os.environ.get("GROUP_RUNS", "1"))))

BATCH_LINE = re.compile(r"batch\s+\d+\s+records\s+\d+\s+predictions\s+\d+\s+.*total (\d+)$")


class Member:
    """One ``consumer.predict --follow`` process of the group; two threads read its stdout and stderr (a full
    pipe would block it), keeping each line with the time it came."""

    def __init__(self, pipeline, instance: str, flags: tuple[str, ...], static: bool = True) -> None:
        self.instance = instance
        named = ("--instance", instance) if static else ()
        self.process: subprocess.Popen = pipeline.start("consumer.predict", *flags, *named, "--follow")
        self.stdout: list[tuple[float, str]] = []
        self.stderr: list[str] = []
        self._readers = [
            threading.Thread(target=self._read, args=(self.process.stdout, self.stdout, True), daemon=True),
            threading.Thread(target=self._read, args=(self.process.stderr, self.stderr, False), daemon=True),
        ]
        for reader in self._readers:
            reader.start()

    @staticmethod
    def _read(pipe, lines: list, timed: bool) -> None:
        for line in pipe:
            lines.append((time.monotonic(), line.rstrip("\n")) if timed else line.rstrip("\n"))

    def started(self) -> bool:
        return any(line.startswith("predicting ") for _, line in self.stdout)

    def predicted(self) -> int:
        """Predictions this member published (committed transactions), from its last batch line."""
        totals = [int(m.group(1)) for _, line in self.stdout if (m := BATCH_LINE.match(line))]
        return totals[-1] if totals else 0

    def summary(self) -> str | None:
        return next((line for _, line in self.stdout if line.startswith("predicted ")), None)

    def output(self) -> str:
        lines = [line for _, line in self.stdout]
        return (
            f"--- {self.instance} (exit {self.process.poll()}) stdout, last lines:\n" + "\n".join(lines[-15:])
            + f"\n--- {self.instance} stderr:\n" + "\n".join(self.stderr[-15:])
        )  # fmt: skip

    def stop(self, sig: int = signal.SIGINT, timeout: float = 60) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
        try:
            code = self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            code = self.process.wait()
        for reader in self._readers:
            reader.join(timeout=10)
        return code


class Rows:
    """Produces ``count`` (ROWS) connector-format records with id headers at RATE a second, round-robin over the
    partitions, in a thread; ``produced`` counts the acknowledged ones."""

    def __init__(self, servers: str, topic: str, table: str, count: int = ROWS) -> None:
        self.servers, self.topic, self.table, self.count = servers, topic, table, count
        self.produced = 0
        self.error: str | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)
        assert not self._thread.is_alive(), f"producing {self.count} records took over {timeout:g} s"

    def _delivered(self, error, _message) -> None:
        if error is not None:
            self.error = str(error)
        else:
            self.produced += 1

    def _run(self) -> None:
        rng = np.random.default_rng(7)
        pixels = rng.integers(0, 256, size=(self.count, 784), dtype=np.uint8)
        labels = rng.integers(0, 10, size=self.count)
        producer = Producer({"bootstrap.servers": self.servers, "linger.ms": 5})
        started = time.monotonic()
        for index in range(self.count):
            ahead = started + index / RATE - time.monotonic()
            if ahead > 0:
                producer.poll(ahead)
            producer.produce(
                self.topic,
                key=str(int(labels[index])).encode(),
                value=encode_pixels(pixels[index]),
                headers=[(MNIST.table_header, self.table.encode()), (MNIST.id_header, str(index + 1).encode())],
                partition=index % PARTITIONS,
                on_delivery=self._delivered,
            )
            producer.poll(0)
        left = producer.flush(30)
        if left:
            self.error = f"{left} records unsent after 30 s"


def predictions_on_topic(pipeline, start: dict[int, int], table: str) -> collections.Counter:
    """How many committed records of mnist.predictions after ``start`` carry each id of ``table``."""
    keys = (key_of(r.key) for r in predictions_after(pipeline, start))
    return collections.Counter(row_id for source, row_id in keys if source == table)


def rows_in_table(pipeline, table: str) -> tuple[int, int, int | None, int | None]:
    """``(rows, distinct ids, min id, max id)`` of ``mnist_predictions`` for ``table``."""
    return query_one(
        pipeline.postgres,
        f"SELECT count(*), count(DISTINCT id), min(id), max(id) FROM {MNIST.predictions_table} WHERE source_table = %s",
        (table,),
    )


def test_a_killed_group_member_s_partitions_are_taken_over_and_every_row_is_predicted_once(
    pipeline, model_store, capsys, run
):
    suffix = uuid.uuid4().hex[:8]
    topic, table, group = f"test.group.in.{suffix}", f"group_test_{suffix}", f"test-predict-group-{suffix}"
    ensure_topics(dataclasses.replace(pipeline.config, partitions=PARTITIONS), (topic,))
    predictions_start = end_offsets(pipeline.bootstrap, MNIST.predictions_topic)
    flags = ("--model", model_store, "--topic", topic, "--group-id", group, "--batch-size", str(BATCH))
    began = time.monotonic()

    survivor, victim = Member(pipeline, "a", flags), Member(pipeline, "b", flags)
    members = (survivor, victim)
    rows = Rows(pipeline.bootstrap, topic, table)
    try:
        joined = poll(lambda: all(m.started() or m.process.poll() is not None for m in members), 180)
        assert joined and all(m.started() for m in members), "\n".join(m.output() for m in members)
        rows.start()

        # Both members score before the kill: the group really shares the topic (neither idles).
        both_scored = poll(
            lambda: (
                (survivor.predicted() > 0 and victim.predicted() > 0 and rows.produced >= ROWS // 3)
                or any(m.process.poll() is not None for m in members)
            ),
            120,
            0.05,
        )
        assert both_scored and all(m.process.poll() is None for m in members), (
            f"not both members scored before the kill ({rows.produced} produced):\n"
            + "\n".join(m.output() for m in members)
        )
        survivor_at_kill, victim_at_kill, produced_at_kill = survivor.predicted(), victim.predicted(), rows.produced
        killed_at = time.monotonic()
        assert victim.stop(signal.SIGKILL) == -signal.SIGKILL

        rows.join(timeout=120)
        produced_at = time.monotonic()
        assert rows.error is None and rows.produced == ROWS, f"{rows.produced} produced: {rows.error}"

        # Only the survivor can score what lands on the dead member's partitions from now on.
        complete = poll(lambda: rows_in_table(pipeline, table)[0] >= ROWS, TAKEOVER_DEADLINE_S, 0.5)
        done_at = time.monotonic()
        assert complete, (
            f"no takeover: {rows_in_table(pipeline, table)[0]} of {ROWS} rows have a prediction "
            f"{TAKEOVER_DEADLINE_S} s after the kill of member b (it had published {victim_at_kill}; "
            f"a published {survivor.predicted()}):\n" + survivor.output()
        )
    finally:
        for member in members:
            member.stop()  # Ctrl-C: the survivor prints its summary

    assert survivor.process.returncode == 0, survivor.output()
    summary = survivor.summary()
    assert summary and "(0 retracted, 0 malformed)" in summary, survivor.output()
    survivor_total = int(re.match(r"predicted (\d+) of", summary).group(1))
    # What b committed is what its batch lines say, plus at most the one batch committed just before the kill.
    assert ROWS - victim_at_kill - BATCH <= survivor_total <= ROWS - victim_at_kill, (
        f"a published {survivor_total}, b {victim_at_kill} before the kill, of {ROWS}:\n{survivor.output()}"
    )
    # Half of what came after the kill landed on b's partitions: only a takeover scores it.
    assert survivor_total - survivor_at_kill >= ROWS - produced_at_kill, "the survivor scored all that came later"

    counts = predictions_on_topic(pipeline, predictions_start, table)
    duplicates = {i: n for i, n in counts.items() if n > 1}
    lost = sorted(set(range(1, ROWS + 1)) - set(counts))
    stray = sorted(set(counts) - set(range(1, ROWS + 1)))
    assert not duplicates, f"{len(duplicates)} rows twice on {MNIST.predictions_topic}, e.g. {list(duplicates)[:8]}"
    assert not lost, f"{len(lost)} rows without a prediction on {MNIST.predictions_topic}, e.g. {lost[:8]}"
    assert not stray and sum(counts.values()) == ROWS, stray[:8]
    assert rows_in_table(pipeline, table) == (ROWS, ROWS, 1, ROWS)

    with capsys.disabled():
        print(
            f"\n  group of 2 on {PARTITIONS} partitions, {ROWS} rows at {RATE}/s: before the kill a published "
            f"{survivor_at_kill}, b {victim_at_kill}; a {survivor_total} in all; kill -> all {ROWS} rows in "
            f"{MNIST.predictions_table} {done_at - killed_at:.1f} s "
            f"(last row produced -> all {done_at - produced_at:.1f} s); on {MNIST.predictions_topic} "
            f"{sum(counts.values())} records, {len(duplicates)} duplicates, {len(lost)} lost; "
            f"test {time.monotonic() - began:.0f} s"
        )


def test_two_predictors_started_the_plain_way_share_the_partitions_and_predict_every_row_once(
    pipeline, model_store, run
):
    suffix = uuid.uuid4().hex[:8]
    topic, table, group = f"test.plain.in.{suffix}", f"plain_test_{suffix}", f"test-predict-plain-{suffix}"
    ensure_topics(dataclasses.replace(pipeline.config, partitions=PARTITIONS), (topic,))
    predictions_start = end_offsets(pipeline.bootstrap, MNIST.predictions_topic)
    flags = ("--model", model_store, "--topic", topic, "--group-id", group, "--batch-size", str(BATCH))
    count = 600

    members = (Member(pipeline, "a", flags, static=False), Member(pipeline, "b", flags, static=False))
    rows = Rows(pipeline.bootstrap, topic, table, count)
    try:
        joined = poll(lambda: all(m.started() or m.process.poll() is not None for m in members), 180)
        assert joined and all(m.started() for m in members), "\n".join(m.output() for m in members)
        split = poll(lambda: sorted((group_assignment(pipeline.bootstrap, group) or {}).values()) == [2, 2], 60)
        assert split, f"assignment {group_assignment(pipeline.bootstrap, group)}:\n" + "\n".join(
            m.output() for m in members
        )
        rows.start()
        rows.join(timeout=120)
        assert rows.error is None and rows.produced == count, f"{rows.produced} produced: {rows.error}"
        done = poll(lambda: sum(m.predicted() for m in members) >= count or any(m.process.poll() for m in members), 90)
        assert done and all(m.process.poll() is None for m in members), "\n".join(m.output() for m in members)
    finally:
        codes = [member.stop() for member in members]

    assert codes == [0, 0], "\n".join(m.output() for m in members)
    assert all(m.predicted() > 0 for m in members), "both scored: " + "\n".join(m.output() for m in members)
    counts = predictions_on_topic(pipeline, predictions_start, table)
    assert sorted(counts) == list(range(1, count + 1)) and set(counts.values()) == {1}, (
        {i: n for i, n in counts.items() if n != 1},
        sorted(set(range(1, count + 1)) - set(counts))[:8],
    )
