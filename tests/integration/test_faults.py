"""Nothing lost, nothing twice, through crashes and restarts of the real processes (native stack): every row
inserted while a service is killed or restarted reaches the topic, and a read_committed reader (probes.topics,
which shares no code with the consumer) sees it once with DELIVERY=exactly-once (the default). The capture's SIGKILL
runs against both engines; Debezium Server has no transactions, so there its duplicates are bounded, not zero. With
DELIVERY=at-least-once duplicates are counted, reported and bounded. FAULT_RUNS=N repeats every fault N times on
one stack (the README's fault table: N = 10)."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from probes.database import query_one
from probes.deadline import poll
from probes.rows import NumberedRows
from probes.topics import end_offsets, numbers_on_topic
from stack import connect, kafka, postgres
from stack.contract import MNIST
from stack.processes import pid_alive
from tests.integration.support.capture import Capture

TOPIC = MNIST.train
ROWS = 20_000
RATE = 2_500
# The README promises at most about 1 s of rows re-sent after a fault (Connect's offset flush interval is 1 s, and
# Debezium Server's);
# the bound allows twice that for the flush in flight when the fault hits.
MAX_DUPLICATES = 2 * RATE
pytestmark = pytest.mark.parametrize("run", range(int(os.environ.get("FAULT_RUNS", "1"))))


def allowed_duplicates(capture: Capture, at_least_once_bound: int) -> int:
    """0 with exactly-once capture (Connect commits each poll's records and source offsets in one transaction);
    the bound for at-least-once (DELIVERY=at-least-once, or Debezium Server, whose Kafka sink has no
    transactions: what it sent after the last offset flush, 1 s, is sent again)."""
    return 0 if capture.exactly_once else at_least_once_bound


def run_fault(capture: Capture, fault, capsys) -> tuple[int, int]:
    """Insert ROWS numbered rows; ``fault()`` runs once a quarter are in; returns (delivered, duplicates)."""
    pipeline = capture.stack
    start = end_offsets(pipeline.bootstrap, TOPIC)
    rows = NumberedRows(pipeline.postgres, MNIST.train_table, ROWS, RATE)
    rows.start()
    assert poll(lambda: rows.committed >= ROWS // 4, 30)
    fault()
    rows.join(timeout=120)
    assert rows.error is None, rows.error
    assert rows.committed == ROWS

    numbers = numbers_on_topic(pipeline.bootstrap, TOPIC, start, rows.prefix, ROWS, timeout=120)

    missing = set(range(ROWS)) - set(numbers)
    if missing:
        # Evidence for the next reader of this failure: a second, fresh read tells a reader problem from lost
        # records, and the services' warnings around the fault say what the capture and Kafka saw.
        again = set(numbers_on_topic(pipeline.bootstrap, TOPIC, start, rows.prefix, ROWS, timeout=30))
        cfg = pipeline.config
        warnings = [
            line[:200]
            for log in (capture.log_file(), kafka.log_file(cfg))
            for line in log.read_text(errors="replace").splitlines()
            if " WARN " in line or " ERROR " in line
        ][-25:]
        pytest.fail(
            f"{len(missing)} rows never reached {TOPIC}, e.g. {sorted(missing)[:8]}; "
            f"a second read finds {len(missing & again)} of them; last warnings:\n" + "\n".join(warnings)
        )
    assert capture.is_running(), capture.state()
    duplicates = len(numbers) - ROWS
    bound = allowed_duplicates(capture, MAX_DUPLICATES)
    with capsys.disabled():
        print(
            f"\n  {fault.__doc__} ({capture.engine}, {capture.delivery}): inserted {ROWS}, "
            f"delivered {len(set(numbers))}, duplicates {duplicates} (allowed {bound}), insert retries {rows.retries}"
        )
    promise = f"{capture.engine}, {capture.delivery}"
    assert duplicates <= bound, f"{duplicates} rows delivered twice ({promise}; allowed {bound})"
    return len(set(numbers)), duplicates


def up(pipeline, log: Path | None = None) -> None:
    """``python -m stack up``; on failure the message holds the warnings of ``log`` (Connect's by default) and
    Kafka's, and the broker's open files."""
    result = pipeline.run("stack", "up", timeout=300)
    if result.returncode != 0:  # the evidence, before the test's stack (and its logs) is removed
        cfg = pipeline.config
        evidence = [f"last warnings of {name.name}:\n" + "\n".join(log_warnings(name)) for name in
                    (log or connect.log_file(cfg), kafka.log_file(cfg))]  # fmt: skip
        pytest.fail(result.stdout + result.stderr + "\n" + "\n".join(evidence) + "\n" + broker_files(cfg))
    for line in result.stdout.splitlines():
        if "restarting it" in line:  # up had to restart a stuck connector: say so in the test's output
            print(f"\n  note: {line}")


def log_warnings(log: Path, count: int = 30) -> list[str]:
    """The last ``count`` warnings, errors and causes of a service's log."""
    lines = log.read_text(errors="replace").splitlines()
    return [line[:300] for line in lines if " WARN " in line or " ERROR " in line or "Caused by" in line][-count:]


def broker_files(cfg) -> str:
    """The broker's open files against its limit: a broker out of descriptors takes no new connection."""
    pid = kafka.SERVICE.running_pid(cfg)
    if pid is None:
        return "broker: not running"
    try:
        files = len(os.listdir(f"/proc/{pid}/fd"))
        limit = next(line for line in Path(f"/proc/{pid}/limits").read_text().splitlines() if "open files" in line)
    except (OSError, StopIteration) as error:
        return f"broker {pid}: open files unknown ({error})"
    return f"broker {pid}: {files} open files; {' '.join(limit.split())}"


def test_sigkill_of_the_capture_mid_stream_loses_nothing(native_capture, capsys, run):
    """SIGKILL of the Connect worker or of Debezium Server, then ``up``: every row arrives; duplicates are what
    the engine promises (none for Connect under exactly-once, at most ``MAX_DUPLICATES`` for the server)."""

    def kill_capture():
        """SIGKILL the capture"""
        native_kill(native_capture.pid())
        time.sleep(2)
        up(native_capture.stack, native_capture.log_file())

    run_fault(native_capture, kill_capture, capsys)


def test_broker_restart_mid_stream_loses_nothing(native, capsys, run):
    cfg = native.config

    def restart_kafka():
        """Stop and restart the Kafka broker"""
        assert kafka.stop(cfg)
        time.sleep(3)
        up(native)

    run_fault(Capture("connect", native), restart_kafka, capsys)


def test_postgres_restart_mid_stream_reuses_the_slot_and_loses_nothing(native, capsys, run):
    cfg = native.config
    log = connect.log_file(cfg)
    slot_creations = log.read_text(errors="replace").count("Creating replication slot")

    def restart_postgres():
        """Restart PostgreSQL"""
        assert postgres.stop(cfg)
        time.sleep(2)
        up(native)

    run_fault(Capture("connect", native), restart_postgres, capsys)

    assert log.read_text(errors="replace").count("Creating replication slot") == slot_creations, "slot recreated"
    slot = query_one(native.postgres, f"SELECT slot_name FROM pg_replication_slots WHERE slot_name = '{MNIST.slot}'")
    assert slot == (MNIST.slot,)


def test_task_restarts_inside_one_copy_transaction_lose_nothing(native, capsys, run):
    """COPY writes a page of rows under one WAL position (LSN); Debezium resumes after the last LSN it sent, so
    without ``postgres/01-tables.sql``'s one-row-per-LSN trigger every restart here loses the rest of a page."""
    cfg = native.config
    start = end_offsets(native.bootstrap, TOPIC)
    rows = NumberedRows(native.postgres, MNIST.train_table, ROWS, rate=1e9, batch=ROWS)  # one COPY, one transaction
    rows.run()
    assert rows.error is None, rows.error

    def on_topic() -> int:
        return sum(end_offsets(native.bootstrap, TOPIC).values()) - sum(start.values())

    restarts_mid_stream = 0
    for threshold in (ROWS // 10, ROWS * 45 // 100, ROWS * 8 // 10):
        assert poll(lambda at=threshold: on_topic() >= at, 60, 0.01)
        if on_topic() >= ROWS:
            break
        status, body = connect.rest(cfg, "POST", f"/connectors/{MNIST.connector}/tasks/0/restart", timeout=60)
        assert status == 204, body
        restarts_mid_stream += 1
        assert poll(lambda: connect.is_running(connect.connector_status(cfg)), 60)
    assert restarts_mid_stream >= 1, "the transaction streamed before the first restart: nothing was tested"

    numbers = numbers_on_topic(native.bootstrap, TOPIC, start, rows.prefix, ROWS, timeout=120)

    missing = set(range(ROWS)) - set(numbers)
    assert not missing, f"{len(missing)} rows of the COPY never reached {TOPIC}, e.g. {sorted(missing)[:8]}"
    duplicates = len(numbers) - ROWS
    bound = allowed_duplicates(Capture("connect", native), MAX_DUPLICATES * restarts_mid_stream)
    with capsys.disabled():
        print(
            f"\n  {restarts_mid_stream} task restarts inside one COPY of {ROWS} rows: delivered {len(set(numbers))}, "
            f"duplicates {duplicates} ({native.config.delivery}; allowed {bound})"
        )
    assert duplicates <= bound, f"{duplicates} rows delivered twice by {restarts_mid_stream} restarts"


def native_kill(pid: int) -> None:
    os.kill(pid, signal.SIGKILL)
    assert poll(lambda: not pid_alive(pid), 10)
