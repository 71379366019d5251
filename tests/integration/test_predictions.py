"""Predictions flow back into PostgreSQL: consumer.predict -> mnist.predictions -> the JDBC sink ->
mnist_predictions, exactly once through a SIGKILL of the predictor; a corrected label is a new example.

The model is an untrained CNN published as version 1 of a store of the test's own: these tests check where
predictions go, not how good they are (test_consumer checks the accuracy).
"""

from __future__ import annotations

import collections
import re
import signal
import threading
import uuid

from confluent_kafka import Producer

from consumer.records.predictions import key_of
from probes.database import joined_predictions, query_all, query_one
from probes.deadline import poll
from probes.rows import NumberedRows, execute, insert, marked_pixels
from probes.topics import commit_group_offsets, end_offsets, read_from, read_to
from stack.contract import MNIST
from stack.kafka import ensure_topics
from tests.integration.support.backend import stop

ROWS = 600


def ids_of_run(pipeline, rows: NumberedRows) -> list[int]:
    """The ids of the rows a NumberedRows run committed (its marker is the first three pixels)."""
    found = query_all(
        pipeline.postgres,
        f"SELECT id FROM public.{MNIST.test_table} WHERE substring(pixels FROM 1 FOR 3) = %s",
        (rows.marker,),
    )
    return sorted(row_id for (row_id,) in found)


def predictions_of(
    pipeline, start: dict[int, int], ids: set[int], table: str = MNIST.test_table
) -> collections.Counter:
    """How many committed records of mnist.predictions after ``start`` carry each of ``ids`` (a read_committed
    reader of its own, until the end offsets taken now)."""
    end = end_offsets(pipeline.bootstrap, MNIST.predictions_topic)
    records, _ = read_to(pipeline.bootstrap, MNIST.predictions_topic, start, end, timeout=60)
    found = collections.Counter(key_of(r.key) for r in records)
    return collections.Counter({row_id: found[(table, row_id)] for row_id in ids})


def test_sigkill_of_the_predictor_then_a_restart_leaves_one_prediction_per_row(pipeline, model_store):
    group = f"test-predict-{uuid.uuid4().hex[:8]}"
    # The group starts at the topic's end: only this test's rows are scored.
    commit_group_offsets(pipeline.bootstrap, group, MNIST.test, end_offsets(pipeline.bootstrap, MNIST.test))
    predictions_start = end_offsets(pipeline.bootstrap, MNIST.predictions_topic)
    flags = ("--model", model_store, "--group-id", group, "--batch-size", "20")

    predictor = pipeline.start("consumer.predict", *flags, "--follow")
    rows = NumberedRows(pipeline.postgres, MNIST.test_table, ROWS, rate=200, batch=10)
    lines: list[str] = []
    try:
        for line in predictor.stdout:
            lines.append(line)
            if line.startswith("predicting "):
                # Rows arrive once it reads (200 rows/s, 10 a transaction), so the kill lands mid-stream.
                rows.start()
            if re.match(r"batch\s+3\s", line):
                break
        predictor.send_signal(signal.SIGKILL)
        predictor.wait(timeout=30)
        rows.join()
        assert rows.error is None, rows.error
    finally:
        if predictor.poll() is None:
            predictor.kill()
            predictor.wait()
    assert any(line.startswith("batch") for line in lines), "".join(lines) + predictor.stderr.read()

    resumed = pipeline.run("consumer.predict", *flags, "--idle-timeout", "5", timeout=300)

    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    ids = ids_of_run(pipeline, rows)
    assert len(ids) == ROWS
    summary = re.search(r"predicted (\d+) of (\d+) records \(0 retracted, 0 malformed\)", resumed.stdout)
    assert summary, resumed.stdout
    assert 0 < int(summary.group(1)) < ROWS, "the restart resumed after the batches committed before the kill"
    counts = predictions_of(pipeline, predictions_start, set(ids))
    assert sum(1 for n in counts.values() if n > 1) == 0, {i: n for i, n in counts.items() if n > 1}
    assert sum(1 for n in counts.values() if n == 0) == 0, sorted(i for i, n in counts.items() if n == 0)

    assert poll(lambda: len(joined_predictions(pipeline.postgres, ids)) == ROWS, 60), "rows missing in the join"
    rows_back = joined_predictions(pipeline.postgres, ids).values()
    assert all(
        0 <= predicted <= 9 and 0 < confidence <= 1 and version == 1 for _, predicted, confidence, version in rows_back
    ), "every row of the run has its prediction, by model version 1"
    assert query_one(
        pipeline.postgres,
        f"SELECT count(*), count(DISTINCT id), bool_and(committed_at <= predicted_at) FROM {MNIST.predictions_table} "
        f"WHERE source_table = '{MNIST.test_table}' AND id = ANY(%s)",
        (ids,),
    ) == (ROWS, ROWS, True)
    shown = pipeline.run("consumer.show_predictions", "--rows", "3")
    assert shown.returncode == 0, shown.stderr
    assert [int(line.split()[0]) for line in shown.stdout.splitlines()[2:5]] == ids[:-4:-1], shown.stdout


def test_sigterm_stops_the_predictor_after_its_transaction_with_a_summary(pipeline, model_store):
    group = f"test-predict-term-{uuid.uuid4().hex[:8]}"
    commit_group_offsets(pipeline.bootstrap, group, MNIST.test, end_offsets(pipeline.bootstrap, MNIST.test))
    predictor = pipeline.start("consumer.predict", "--model", model_store, "--group-id", group, "--follow")
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(predictor.stdout), daemon=True)
    reader.start()
    try:
        assert poll(lambda: any(line.startswith("predicting ") for line in lines), 120), lines
        rows = NumberedRows(pipeline.postgres, MNIST.test_table, 50, rate=500, batch=10)
        rows.run()
        assert rows.error is None, rows.error
        assert poll(lambda: any(line.rstrip().endswith("total 50") for line in lines), 60), lines
    finally:
        _, errors = stop(predictor, signal.SIGTERM, stdout_read=True)  # what docker compose stop sends
        reader.join(timeout=10)
    assert predictor.returncode == 0, f"exit {predictor.returncode}: {errors}"
    assert re.match(r"predicted 50 of 50 records \(0 retracted, 0 malformed\)", lines[-1]), lines[-3:]


def test_a_corrected_label_reaches_the_topic_as_a_new_example(pipeline):
    start = end_offsets(pipeline.bootstrap, MNIST.test)
    (row_id,) = insert(pipeline.postgres, MNIST.test_table, [(4, marked_pixels())])

    execute(pipeline.postgres, f"UPDATE public.{MNIST.test_table} SET label = 9 WHERE id = %s", (row_id,))

    def of_row(records) -> list:
        return [r for r in records if r.headers.get(MNIST.id_header) == str(row_id).encode()]

    records = of_row(read_from(pipeline.bootstrap, MNIST.test, start, lambda records: len(of_row(records)) >= 2))
    # The two records may sit on different partitions (they are spread round-robin), so Kafka gives no order
    # between them; the source's commit time (unwrap's header) does.
    inserted, corrected = sorted(records, key=lambda r: r.key)
    assert [inserted.key, corrected.key] == [b"4", b"9"], "the corrected label is a record of its own, keyed by it"
    assert int(inserted.headers[MNIST.commit_header]) <= int(corrected.headers[MNIST.commit_header]), (
        "insert, then update"
    )
    assert inserted.value == corrected.value and corrected.headers[MNIST.table_header] == MNIST.test_table.encode()


def test_an_undecodable_record_gets_no_prediction_and_is_counted(pipeline, model_store):
    suffix = uuid.uuid4().hex[:8]
    source, target = f"test.predict.in.{suffix}", f"test.predict.out.{suffix}"
    ensure_topics(pipeline.config, (source, target))
    ids = [(MNIST.table_header, MNIST.test_table.encode())]
    good = ",".join(["0"] * 784).encode()
    producer = Producer({"bootstrap.servers": pipeline.bootstrap})
    producer.produce(source, key=b"3", value=good, headers=[*ids, (MNIST.id_header, b"1")])
    producer.produce(source, key=b"3", value=b"0,1,not-a-pixel", headers=[*ids, (MNIST.id_header, b"2")])
    producer.produce(source, key=b"3", value=good)  # decodable, but no row to key it by
    assert producer.flush(30) == 0

    result = pipeline.run(
        "consumer.predict",
        "--model", model_store,
        "--topic", source,
        "--predictions-topic", target,
        "--group-id", f"test-predict-bad-{suffix}",
        "--idle-timeout", "3",
    )  # fmt: skip

    assert result.returncode == 0, result.stdout + result.stderr
    assert "predicted 1 of 3 records (0 retracted, 2 malformed: 1 no table header, 1 undecodable)" in result.stdout
    published = read_from(pipeline.bootstrap, target, None, lambda records: len(records) >= 1, timeout=30)
    assert [key_of(r.key) for r in published] == [(MNIST.test_table, 1)]
    # One prediction and its transaction's commit marker, whatever partition the producer chose (TOPIC_PARTITIONS).
    assert sum(end_offsets(pipeline.bootstrap, target).values()) == 2
