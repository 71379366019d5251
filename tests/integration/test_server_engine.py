"""STACK_ENGINE=server: Debezium Server captures instead of the Connect connector, with the same record contract.

One module-scoped native stack of its own (a second one beside the session's ``pipeline``, started only when this
module runs); skipped in one line when no JDK 21+ is installed.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time

import pytest

from probes.database import query_one
from probes.rows import csv_of, insert, marked_pixels, prefix_of
from probes.topics import end_offsets, find_values, read_from
from stack import server
from stack.config import CONNECTOR_NAME, TOPICS
from stack.processes import StepError
from tests.integration.backend import Pipeline, free_port, native_env

TEST_TOPIC = TOPICS.test

try:
    server.java_home()
    NO_JAVA = ""
except StepError as error:
    NO_JAVA = str(error)

pytestmark = pytest.mark.skipif(bool(NO_JAVA), reason=NO_JAVA)


def seed_assembled(home) -> None:
    """Hard-link the repository's assembled parts (``python -m stack assemble --engine server``) into the new
    STACK_HOME when they are there, so the fixture does not unpack 440 MB again; ``up`` re-assembles what is stale."""
    from stack.config import REPO_ROOT

    source = REPO_ROOT / ".stack"
    parts = ["lib", "plugins", "debezium-server-dist"]
    if not all((source / part).is_dir() for part in parts) or not (source / "assembled.json").is_file():
        return
    for part in parts:
        subprocess.run(["cp", "-al", str(source / part), str(home / part)], check=True)
    shutil.copy2(source / "assembled.json", home / "assembled.json")


@pytest.fixture(scope="module")
def engine() -> Pipeline:
    env, home = native_env()
    seed_assembled(home)
    env.update({"STACK_ENGINE": "server", "DEBEZIUM_SERVER_PORT": str(free_port())})
    stack = Pipeline("native", env)
    result = stack.run("stack", "up", timeout=900)
    if result.returncode != 0:
        log = home / "logs" / "debezium-server.log"
        tail = log.read_text(errors="replace")[-3000:] if log.exists() else ""
        stack.run("stack", "down", "--purge")
        shutil.rmtree(home, ignore_errors=True)
        pytest.fail(f"STACK_ENGINE=server up failed:\n{result.stdout}\n{result.stderr}\n{tail}", pytrace=False)
    assert "server     debezium-server started" in result.stdout, result.stdout
    try:
        yield stack
    finally:
        stack.run("stack", "down", "--purge")
        shutil.rmtree(home, ignore_errors=True)


def arrivals(engine: Pipeline, pixels: list[bytes], topic: str = TEST_TOPIC, timeout: float = 90.0) -> list[int]:
    prefixes = [prefix_of(p) for p in pixels]
    found = find_values(engine.bootstrap, topic, prefixes, timeout)
    return [len(found[p]) for p in prefixes]


def test_status_names_the_server_and_connect_runs_only_the_sink(engine):
    result = engine.run("stack", "status")

    assert result.returncode == 0, result.stdout + result.stderr
    assert f"debezium-server UP on 127.0.0.1:{engine.env['DEBEZIUM_SERVER_PORT']}" in result.stdout
    assert "mnist_server_slot active" in result.stdout
    from stack import connect

    assert connect.connector_status(engine.config, CONNECTOR_NAME) is None, "one engine captures, not two"


def test_inserted_row_arrives_with_the_contract_key_value_and_headers(engine):
    start = end_offsets(engine.bootstrap, TEST_TOPIC)
    pixels = marked_pixels(last=255)
    (row_id,) = insert(engine.postgres, "mnist_test", [(7, pixels)])

    records = read_from(
        engine.bootstrap,
        TEST_TOPIC,
        start,
        lambda rs: any(r.headers.get("mnist.id") == str(row_id).encode() for r in rs),
    )
    found = [r for r in records if r.headers.get("mnist.id") == str(row_id).encode()]

    assert len(found) == 1
    assert found[0].key == b"7"
    assert found[0].value.decode() == csv_of(pixels)
    assert len(found[0].value.split(b",")) == 784
    assert found[0].headers["mnist.table"] == b"mnist_test", "plain text headers, as Connect's converter writes"
    assert found[0].headers["__source_ts_ms"].isdigit()


def test_invalid_row_is_routed_with_its_reason(engine):
    invalid_topic = TOPICS.invalid(TEST_TOPIC)
    start = end_offsets(engine.bootstrap, invalid_topic)
    (row_id,) = insert(engine.postgres, "mnist_test", [(12, bytes(784))])

    records = read_from(
        engine.bootstrap, invalid_topic, start, lambda rs: any(json.loads(r.value)["id"] == row_id for r in rs)
    )
    mine = [r for r in records if json.loads(r.value)["id"] == row_id]

    assert [r.headers["mnist.error"].decode() for r in mine] == ["label 12 is outside 0..9"]


def test_sigkill_then_up_loses_nothing_and_a_clean_stop_takes_no_second_snapshot(engine):
    cfg = engine.config
    before = marked_pixels()
    insert(engine.postgres, "mnist_test", [(1, before)])
    assert arrivals(engine, [before]) == [1]

    os.kill(server.SERVICE.running_pid(cfg), signal.SIGKILL)
    during = [marked_pixels() for _ in range(20)]
    insert(engine.postgres, "mnist_test", [(2, p) for p in during])
    result = engine.run("stack", "up", timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "server     debezium-server started" in result.stdout

    counts = arrivals(engine, during)
    assert min(counts) >= 1, f"rows lost across the SIGKILL: {counts}"

    time.sleep(1.5)  # let the offsets of what was sent reach the file (offset.flush.interval.ms=1000)
    assert server.SERVICE.stop(cfg), "a clean stop flushes the offsets"
    after = marked_pixels()
    insert(engine.postgres, "mnist_test", [(3, after)])
    assert engine.run("stack", "up", timeout=300).returncode == 0

    assert arrivals(engine, [before, after]) == [1, 1], "resumed from the offsets file, no second snapshot"


def test_server_runs_as_the_replication_role_with_its_password_only_in_its_environment(engine):
    cfg = engine.config
    pid = server.SERVICE.running_pid(cfg)
    environ = dict(
        item.split("=", 1) for item in open(f"/proc/{pid}/environ", "rb").read().decode().split("\0") if "=" in item
    )
    properties = server.SERVICE.config_file(cfg).read_text()

    assert environ.get("DEBEZIUM_PGPASSWORD") == engine.env["DEBEZIUM_PGPASSWORD"]
    assert "PGPASSWORD" not in environ, "the owner's password stays out of the JVM"
    assert engine.env["DEBEZIUM_PGPASSWORD"] not in properties
    assert "debezium.source.database.password=${DEBEZIUM_PGPASSWORD}" in properties
    assert "debezium.source.publication.autocreate.mode=disabled" in properties
    role = query_one(
        engine.postgres,
        "SELECT r.usename FROM pg_replication_slots s JOIN pg_stat_replication r ON r.pid = s.active_pid "
        "WHERE s.slot_name = %s",
        (server.SLOT_NAME,),
    )
    assert role == ("debezium",)


def test_the_engine_benchmark_measures_both_engines_side_by_side(engine):
    result = engine.run(
        "bench.engine_latency_bench", "--rate", "100", "--seconds", "2", "--reps", "1", "--no-record", timeout=300
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert "kafka connect" in result.stdout and "debezium server" in result.stdout, result.stdout
