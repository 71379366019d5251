"""Restarting the native stack resumes streaming where it stopped: nothing lost, no second snapshot (the capture's
own stop and start for both engines, ``capture``)."""

from __future__ import annotations

import json
import re

from probes.rows import insert, marked_pixels, prefix_of
from probes.topics import find_values, read_to_end, values_starting_with
from stack import connect, kafka
from stack.contract import MNIST


def counts(pipeline, pixels: list[bytes], timeout: float = 90.0) -> list[int]:
    """How many records of the training topic carry each of these rows: once each has one, the whole topic to
    its end is read (a second copy of a row may sit on another partition, read after the first)."""
    prefixes = [prefix_of(p) for p in pixels]
    find_values(pipeline.bootstrap, MNIST.train, prefixes, timeout)
    found = values_starting_with(read_to_end(pipeline.bootstrap, MNIST.train, timeout), prefixes)
    return [len(found[p]) for p in prefixes]


def test_rows_inserted_while_the_capture_is_stopped_arrive_once_after_up(native_capture):
    """A clean stop of the Connect worker or Debezium Server keeps its offsets: ``up`` resumes from them, with
    the row inserted meanwhile and no second snapshot (the row from before arrives once)."""
    stack = native_capture.stack
    before = marked_pixels()
    insert(stack.postgres, MNIST.train_table, [(1, before)])
    assert counts(stack, [before]) == [1]

    assert native_capture.stop()
    during = marked_pixels()
    insert(stack.postgres, MNIST.train_table, [(2, during)])
    result = stack.run("stack", "up")

    assert result.returncode == 0, result.stderr
    assert native_capture.started_line in result.stdout and "postgres   already running" in result.stdout
    assert counts(stack, [before, during]) == [1, 1]


def test_down_then_up_resumes_with_no_loss_and_no_second_snapshot(native):
    before = marked_pixels()
    insert(native.postgres, MNIST.train_table, [(3, before)])
    assert counts(native, [before]) == [1]

    down = native.run("stack", "down")
    assert down.returncode == 0, down.stderr
    assert [line.split()[:2] for line in down.stdout.splitlines()] == [
        ["connect", "stopped"],
        ["kafka", "stopped"],
        ["postgres", "stopped"],
    ]
    cfg = native.config
    assert not kafka.pid_file(cfg).exists() and not connect.pid_file(cfg).exists(), "pid files removed on stop"
    up = native.run("stack", "up", timeout=600)
    assert up.returncode == 0, up.stderr
    after = marked_pixels()
    insert(native.postgres, MNIST.train_table, [(4, after)])

    assert counts(native, [before, after]) == [1, 1]


def test_changed_transform_sources_reassemble_and_restart_connect_only(native):
    cfg = native.config
    kafka_pid, connect_pid = kafka.running_pid(cfg), connect.running_pid(cfg)
    # As if debezium/mnist-smt's sources had been edited since the jars were assembled.
    stamp_file = cfg.home / "assembled.json"
    stamp = json.loads(stamp_file.read_text())
    for key in ("sources", "plugins"):
        if key in stamp:
            stamp[key] = "edited"
    stamp_file.write_text(json.dumps(stamp))

    result = native.run("stack", "up", timeout=600)

    assert result.returncode == 0, result.stderr
    assert re.search(
        r"^assemble   re-assembled \(transform or Debezium changed\); restarting connect$", result.stdout, re.M
    ), result.stdout
    assert kafka.running_pid(cfg) == kafka_pid, "Kafka does not use plugins/: left running"
    assert connect.running_pid(cfg) not in (None, connect_pid)
    row = marked_pixels()
    insert(native.postgres, MNIST.train_table, [(5, row)])
    assert counts(native, [row]) == [1]


def test_up_on_a_stopped_cluster_with_a_changed_pgpassword_is_one_line(native):
    assert native.run("stack", "down").returncode == 0

    wrong = native.run("stack", "up", timeout=600, extra_env={"PGPASSWORD": "not-the-one-initdb-got"})
    up = native.run("stack", "up", timeout=600)

    assert wrong.returncode == 1
    assert wrong.stderr.strip().splitlines() == [
        f"error: postgres: password authentication failed for user {native.env['PGUSER']} on "
        f"{native.env['PGHOST']}:{native.env['PGPORT']}: PGPASSWORD is not the password the cluster was "
        "created with"
    ]
    assert up.returncode == 0, up.stderr


def test_changed_kafka_classpath_reassembles_and_restarts_kafka_and_connect(native):
    cfg = native.config
    kafka_pid, connect_pid = kafka.running_pid(cfg), connect.running_pid(cfg)
    stamp_file = cfg.home / "assembled.json"
    stamp = json.loads(stamp_file.read_text())
    stamp["lib"] = "edited"  # as if .env's KAFKA_VERSION or stack/pom.xml had changed
    stamp_file.write_text(json.dumps(stamp))

    result = native.run("stack", "up", timeout=600)

    assert result.returncode == 0, result.stderr
    assert "assemble   re-assembled (Kafka or stack/pom.xml changed); restarting connect and kafka" in result.stdout
    assert kafka.running_pid(cfg) not in (None, kafka_pid)
    assert connect.running_pid(cfg) not in (None, connect_pid)
    row = marked_pixels()
    insert(native.postgres, MNIST.train_table, [(6, row)])
    assert counts(native, [row]) == [1]
