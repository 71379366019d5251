"""``bench.delivery_bench`` in its tiny configuration (as ``test_bench.py`` runs the other benchmarks): it runs,
prints its table, leaves the demo's data alone and removes what it made. Figures are printed, never asserted."""

from __future__ import annotations

import pytest

from probes.bench_services import DELIVERY_WORKER
from probes.database import query_all
from stack import connect
from stack.contract import MNIST
from tests.integration.support.demo_data import demo_data


def test_delivery_bench_runs_in_a_tiny_configuration_and_leaves_the_demo_data_alone(pipeline):
    if pipeline.backend != "native":
        pytest.skip("starts a second Connect worker from the native stack's assembled jars")
    before = demo_data(pipeline)

    result = pipeline.run(
        "bench.delivery_bench", "--rate", "100", "--seconds", "2", "--rows", "500", "--reps", "1", "--no-record",
        timeout=600,
    )  # fmt: skip

    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    for text in ("exactly-once", "at-least-once", "eos / alo", "p99", "rows/s"):
        assert text in result.stdout, result.stdout
    assert demo_data(pipeline) == before
    assert DELIVERY_WORKER.running_pid(pipeline.config) is None
    slots = {name for (name,) in query_all(pipeline.postgres, "SELECT slot_name FROM pg_replication_slots")}
    assert not {"bench_eos_slot", "bench_alo_slot"} & slots
    publications = {name for (name,) in query_all(pipeline.postgres, "SELECT pubname FROM pg_publication")}
    assert "bench_delivery_publication" not in publications
    _, connectors = connect.rest(pipeline.config, "GET", "/connectors")
    assert MNIST.connector in connectors and not [name for name in connectors if name.startswith("bench-")]
