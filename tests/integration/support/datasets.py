"""Taking a dataset a test added off the session stack again: its record forgotten (so ``up`` does not set it up
again), its connectors deleted and its slot dropped, so ``stack status`` shows MNIST's lines only for the tests
that come after. Its tables and topics stay (nothing reads them)."""

from __future__ import annotations

from probes.database import drop_slot
from stack import added_datasets
from stack.connect import rest
from stack.contract import Contract


def remove_dataset(pipeline, contract: Contract) -> None:
    cfg = pipeline.config
    added_datasets.forget(cfg, contract.dataset)
    for connector in (contract.connector, contract.sink_connector):
        rest(cfg, "DELETE", f"/connectors/{connector}", timeout=30)
    drop_slot(pipeline.postgres, contract.slot)
