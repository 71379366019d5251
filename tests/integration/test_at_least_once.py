"""Nothing lost on the consumer side: evaluate killed with SIGKILL resumes in its group without skipping."""

from __future__ import annotations

import re
import signal
import subprocess
import time

import psycopg2

from probes.database import connect, query_one
from probes.rows import execute
from stack.contract import MNIST

BATCH = 25


def start_evaluate(pipeline, model, group: str, start: str) -> subprocess.Popen:
    return pipeline.start(
        "consumer.evaluate",
        "--model",
        str(model),
        "--group-id",
        group,
        "--start",
        start,
        "--batch-size",
        str(BATCH),
        "--idle-timeout",
        "6",
    )


def test_sigkilled_evaluate_resumes_with_no_record_skipped(pipeline, trained_model):
    group = f"resume-{time.time_ns()}"
    first = start_evaluate(pipeline, trained_model, group, "latest")
    header = first.stdout.readline()
    assert "kafka, commits after each batch" in header, header + first.stderr.read()
    loader = pipeline.start("loader", "--split", "test", "--limit", "600", "--rate", "150", "--no-progress")
    printed = 0
    while printed < 200:  # kill it mid-stream, once it has reported some batches
        line = first.stdout.readline()
        assert line, first.stderr.read()
        if line.startswith("records"):
            printed = int(line.split()[1])
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=30)
    assert loader.wait(timeout=120) == 0, loader.stderr.read()

    second = start_evaluate(pipeline, trained_model, group, "latest")
    output, errors = second.communicate(timeout=300)

    assert second.returncode == 0, errors
    resumed_at = int(re.search(r"starting at partition 0 offset (\d+)", output).group(1))
    summary = re.search(r"evaluated (\d+) records \((\d+) malformed skipped\)", output)
    resumed = int(summary.group(1)) + int(summary.group(2))
    # Nothing skipped: together the two runs saw all 600 rows; duplicates: at most the one batch in flight.
    assert 600 <= printed + resumed <= 600 + BATCH, (printed, resumed)
    assert resumed_at > 0


def test_connector_role_can_read_the_mnist_tables_only(pipeline):
    """Least privilege: Debezium's role may replicate and SELECT the MNIST tables, nothing more."""
    secret = pipeline.env.get("DEBEZIUM_PGPASSWORD", "debezium")
    execute(pipeline.postgres, "CREATE TABLE IF NOT EXISTS public.private_notes (note text)")
    role = "SELECT rolsuper, rolreplication, rolcreaterole, rolcreatedb FROM pg_roles WHERE rolname = 'debezium'"
    assert query_one(pipeline.postgres, role) == (False, True, False, False)

    execute(pipeline.postgres, f"INSERT INTO public.{MNIST.train_table} (label, pixels) VALUES (3, '\\x00')")
    owner_sees = query_one(pipeline.postgres, f"SELECT count(*), max(id) FROM public.{MNIST.train_table}")

    conn = connect(pipeline.postgres, user="debezium", password=secret)
    conn.autocommit = True
    with conn.cursor() as cur:
        # It reads every row the owner sees (the snapshot needs them all), including the one just inserted.
        cur.execute(f"SELECT count(*), max(id) FROM public.{MNIST.train_table}")
        assert cur.fetchone() == owner_sees
        for statement in (
            f"INSERT INTO public.{MNIST.train_table} (label, pixels) VALUES (1, '\\x00')",
            f"UPDATE public.{MNIST.test_table} SET label = 1",
            f"DELETE FROM public.{MNIST.train_table}",
            "SELECT * FROM public.private_notes",
        ):
            try:
                cur.execute(statement)
                raise AssertionError(f"the connector role could run: {statement}")
            except psycopg2.errors.InsufficientPrivilege as error:
                assert "permission denied" in str(error)
    conn.close()
