"""STACK_ENGINE=server: what only Debezium Server's stack shows (its status line, the engine benchmark).

The record contract, invalid rows, restarts without loss and least privilege are checked of both engines by the
tests parametrized with ``capture`` (test_stack_streaming, test_faults, test_stack_restart, test_security). The
session's ``server_stack`` is started when the first of them runs; skipped in one line without a JDK 21+.
"""

from __future__ import annotations

import pytest

from stack.contract import MNIST
from tests.integration.support.capture import NO_JAVA

pytestmark = pytest.mark.skipif(bool(NO_JAVA), reason=NO_JAVA)


def test_status_names_the_server_and_connect_runs_only_the_sink(server_stack):
    result = server_stack.run("stack", "status")

    assert result.returncode == 0, result.stdout + result.stderr
    assert f"debezium-server UP on 127.0.0.1:{server_stack.env['DEBEZIUM_SERVER_PORT']}" in result.stdout
    assert f"{MNIST.server_slot} active" in result.stdout
    from stack import connect

    assert connect.connector_status(server_stack.config, MNIST.connector) is None, "one engine captures, not two"


def test_the_engine_benchmark_measures_both_engines_side_by_side(server_stack):
    result = server_stack.run(
        "bench.engine_latency_bench", "--rate", "100", "--seconds", "2", "--reps", "1", "--no-record", timeout=300
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert "kafka connect" in result.stdout and "debezium server" in result.stdout, result.stdout
