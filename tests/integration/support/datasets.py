"""Taking a dataset a test added off the session stack again: its record forgotten (so ``up`` does not set it up
again), its source connector stopped and its offsets deleted before the connector itself (so adding it again
snapshots from a new slot instead of asking for a WAL position the dropped slot took with it), its sink deleted
and its slot dropped, so ``stack status`` shows MNIST's lines only for the tests that come after. Its tables and
topics stay."""

from __future__ import annotations

from probes.database import drop_slot
from probes.deadline import poll
from stack import added_datasets
from stack.connect import rest
from stack.contract import Contract


def remove_dataset(pipeline, contract: Contract) -> None:
    cfg = pipeline.config
    added_datasets.forget(cfg, contract.dataset)
    source = f"/connectors/{contract.connector}"
    rest(cfg, "PUT", f"{source}/stop", timeout=30)
    stopped = poll(
        lambda: (rest(cfg, "GET", f"{source}/status")[1] or {}).get("connector", {}).get("state") == "STOPPED", 60
    )
    assert stopped, rest(cfg, "GET", f"{source}/status")
    status, answer = rest(cfg, "DELETE", f"{source}/offsets", timeout=60)
    assert status == 200, f"deleting {contract.connector}'s offsets: {status} {answer}"
    for connector in (contract.connector, contract.sink_connector):
        rest(cfg, "DELETE", f"/connectors/{connector}", timeout=30)
    drop_slot(pipeline.postgres, contract.slot)
