"""Every record says where it came from: a plain consumer reads the source table, row id and commit time.

MnistToCsv adds ``mnist.table`` and ``mnist.id``; unwrap's ``add.headers=source.ts_ms`` adds ``__source_ts_ms``.
The worker's header converter writes each as text, so a predictor can key its answer by ``(table, id)``.
"""

from __future__ import annotations

import json
import time

import psycopg2
import pytest

from probes.rows import csv_of, insert, marked_pixels
from probes.topics import Record, end_offsets, read_from
from stack.contract import MNIST

TEST_TOPIC = MNIST.test
INVALID_TOPIC = MNIST.invalid(TEST_TOPIC)


def first_with_id(pipeline, topic: str, start: dict[int, int], row_id: int, timeout: float = 60.0) -> Record | None:
    """The first record of ``topic`` after ``start`` whose ``mnist.id`` header is ``row_id``, or None."""

    def with_id(records: list[Record]) -> list[Record]:
        return [r for r in records if r.headers.get(MNIST.id_header) == str(row_id).encode()]

    found = with_id(read_from(pipeline.bootstrap, topic, start, lambda records: bool(with_id(records)), timeout))
    return found[0] if found else None


def test_converted_row_carries_its_table_id_and_commit_time(pipeline):
    start = end_offsets(pipeline.bootstrap, TEST_TOPIC)
    pixels = marked_pixels(last=9)
    before = time.time()
    (row_id,) = insert(pipeline.postgres, MNIST.test_table, [(3, pixels)])
    committed = time.time()

    message = first_with_id(pipeline, TEST_TOPIC, start, row_id)

    assert message is not None, f"no record with {MNIST.id_header}={row_id} on {TEST_TOPIC}"
    assert message.key == b"3"
    assert message.value.decode() == csv_of(pixels), "the value stays the talk's 784 integers"
    names = list(message.header_names)
    contract_headers = (MNIST.table_header, MNIST.id_header, MNIST.commit_header)
    assert [names.count(name) for name in contract_headers] == [1, 1, 1], names
    headers = message.headers
    assert headers[MNIST.table_header] == MNIST.test_table.encode()
    assert headers[MNIST.id_header] == str(row_id).encode()
    assert headers[MNIST.commit_header].isdigit(), headers[MNIST.commit_header]
    source_ts = int(headers[MNIST.commit_header]) / 1000
    assert before - 2 <= source_ts <= committed + 2, (before, source_ts, committed)


def test_invalid_row_carries_its_error_table_and_id(pipeline):
    start = end_offsets(pipeline.bootstrap, INVALID_TOPIC)
    (row_id,) = insert(pipeline.postgres, MNIST.test_table, [(12, bytes(784))])

    message = first_with_id(pipeline, INVALID_TOPIC, start, row_id)

    assert message is not None, f"no record with {MNIST.id_header}={row_id} on {INVALID_TOPIC}"
    headers = message.headers
    assert headers[MNIST.error_header] == b"label 12 is outside 0..9"
    assert headers[MNIST.table_header] == MNIST.test_table.encode()
    assert headers[MNIST.id_header] == str(row_id).encode()
    assert json.loads(message.value)["id"] == row_id


UPSERT = (
    f"INSERT INTO public.{MNIST.predictions_table} "
    "(source_table, id, predicted, confidence, model_version, committed_at, predicted_at) "
    "VALUES (%s, %s, %s, %s, %s, now(), now()) ON CONFLICT (source_table, id) DO UPDATE SET "
    "predicted=EXCLUDED.predicted, confidence=EXCLUDED.confidence, model_version=EXCLUDED.model_version, "
    "committed_at=EXCLUDED.committed_at, predicted_at=EXCLUDED.predicted_at"
)


def test_predictions_sink_role_may_upsert_and_delete_predictions_and_nothing_else(pipeline):
    """The statement Debezium's JDBC sink runs in upsert mode on PostgreSQL, as predictions_sink."""
    # The password the stack gave the role (PREDICTIONS_SINK_PGPASSWORD), the one the running sink logs in with:
    # changing it here would break the sink's next connection for the tests after this one.
    secret = pipeline.config.sink_password
    row_id = int(time.time_ns() % 2**62)

    sink = psycopg2.connect(**pipeline.pg_kwargs(user="predictions_sink", password=secret))
    try:
        with sink, sink.cursor() as cur:
            cur.execute(UPSERT, (MNIST.test_table, row_id, 7, 0.9, 1))
            cur.execute(UPSERT, (MNIST.test_table, row_id, 3, 0.6, 2))
            cur.execute(UPSERT, (MNIST.test_table, row_id + 1, 5, 0.5, 2))
            cur.execute(
                f"DELETE FROM public.{MNIST.predictions_table} WHERE source_table = %s AND id = %s",
                (MNIST.test_table, row_id + 1),
            )
        for forbidden in (
            f"SELECT 1 FROM public.{MNIST.test_table} LIMIT 1",
            f"DELETE FROM public.{MNIST.test_table}",
            "CREATE TABLE public.sink_scratch (i int)",
        ):
            with pytest.raises(psycopg2.errors.InsufficientPrivilege), sink, sink.cursor() as cur:
                cur.execute(forbidden)
    finally:
        sink.close()

    with psycopg2.connect(**pipeline.pg_kwargs()) as conn, conn.cursor() as cur:
        cur.execute(
            f"SELECT predicted, confidence, model_version FROM public.{MNIST.predictions_table} "
            f"WHERE source_table = '{MNIST.test_table}' AND id = %s",
            (row_id,),
        )
        assert cur.fetchall() == [(3, pytest.approx(0.6), 2)]
        cur.execute(f"SELECT count(*) FROM public.{MNIST.predictions_table} WHERE id = %s", (row_id + 1,))
        assert cur.fetchone() == (0,), "the sink deleted the prediction it wrote"
        cur.execute("SELECT rolcanlogin, rolreplication FROM pg_roles WHERE rolname = 'predictions_sink'")
        assert cur.fetchone() == (True, False)
    conn.close()
