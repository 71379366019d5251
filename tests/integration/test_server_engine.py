"""STACK_ENGINE=server: what only Debezium Server's stack shows (its status line, the engine benchmark).

The record contract, invalid rows, restarts without loss and least privilege are checked of both engines by the
tests parametrized with ``capture`` (test_stack_streaming, test_faults, test_stack_restart, test_security). The
session's ``server_stack`` is started when the first of them runs; skipped in one line without a JDK 21+.
"""

from __future__ import annotations

import uuid

import pytest

from stack.contract import MNIST
from stack.datasets import load
from tests.integration.support.capture import NO_JAVA
from tests.integration.support.datasets import insert_rows, records_with_ids, remove_dataset

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


def test_an_added_dataset_captures_in_a_server_of_its_own(server_stack, tmp_path):
    name = f"srv_{uuid.uuid4().hex[:8]}"
    description = tmp_path / f"{name}.toml"
    description.write_text(
        f'name = "{name}"\nmodel = "mlp"\n\n[tables]\ntrain = "{name}_rows"\ntest = "{name}_rows"\nkey = "id"\n\n'
        '[label]\ncolumn = "kind"\nsql = "text"\nclasses = ["low", "high"]\n\n'
        '[[features]]\ncolumn = "width"\nsql = "real"\n\n[[features]]\ncolumn = "height"\nsql = "integer"\n'
    )
    contract = load(str(description)).contract
    try:
        added = server_stack.run("stack", "add", str(description), timeout=400)

        assert added.returncode == 0, added.stdout + added.stderr
        assert f"server     debezium-server@{name} started on 127.0.0.1:" in added.stdout
        assert f"slot {contract.server_slot}" in added.stdout
        assert f"sink       {contract.sink_connector} RUNNING" in added.stdout
        from stack import connect

        assert connect.connector_status(server_stack.config, contract.connector) is None, "one engine captures"
        rows = [("high", 1.5, 7), ("low", 0.25, 3), ("high", 2.0, 11)]
        ids = insert_rows(server_stack.postgres, f"{name}_rows", ["kind", "width", "height"], rows)

        found = records_with_ids(server_stack.bootstrap, contract.topic("train"), f"{name}.id", ids)

        assert set(found) == set(ids)
        for row_id, (kind, width, height) in zip(ids, rows, strict=True):
            record = found[row_id]
            assert record.key == str(["low", "high"].index(kind)).encode()
            assert [float(v) for v in record.value.decode().split(",")] == [width, height]
        assert all(r.headers[f"{name}.table"] == f"{name}_rows".encode() for r in found.values())
        status = server_stack.run("stack", "status")
        assert f"debezium-server@{name} UP on 127.0.0.1:" in status.stdout, status.stdout
        assert f"{contract.server_slot} active" in status.stdout, status.stdout
    finally:
        remove_dataset(server_stack, contract)
    after = server_stack.run("stack", "status")
    assert name not in after.stdout, after.stdout
