"""A test's dataset on a session stack: rows into its table, its records off its topic, and taking it off the
stack again: its record forgotten (so ``up`` does not set it up again), its Connect source connector stopped and
its offsets deleted before the connector itself (so adding it again snapshots from a new slot instead of asking
for a WAL position the dropped slot took with it), its sink deleted, its Debezium Server stopped
(STACK_ENGINE=server) and its slots dropped, so ``stack status`` shows MNIST's lines only for the tests that come
after. Its tables and topics stay (nothing reads them)."""

from __future__ import annotations

from probes.database import connect, drop_slot
from probes.deadline import poll
from probes.topics import Record, read_from
from stack import added_datasets, dataset_servers
from stack.connect import rest
from stack.contract import Contract


def remove_dataset(pipeline, contract: Contract) -> None:
    cfg = pipeline.config
    added_datasets.forget(cfg, contract.dataset)
    source = f"/connectors/{contract.connector}"
    if rest(cfg, "GET", f"{source}/status")[0] == 200:  # none when the server engine captures
        rest(cfg, "PUT", f"{source}/stop", timeout=30)
        stopped = poll(
            lambda: (rest(cfg, "GET", f"{source}/status")[1] or {}).get("connector", {}).get("state") == "STOPPED", 60
        )
        assert stopped, rest(cfg, "GET", f"{source}/status")
        status, answer = rest(cfg, "DELETE", f"{source}/offsets", timeout=60)
        assert status == 200, f"deleting {contract.connector}'s offsets: {status} {answer}"
    for connector in (contract.connector, contract.sink_connector):
        rest(cfg, "DELETE", f"/connectors/{connector}", timeout=30)
    dataset_servers.stop(cfg, contract.dataset)
    drop_slot(pipeline.postgres, contract.slot)
    drop_slot(pipeline.postgres, contract.server_slot)


def insert_rows(pg, table: str, columns: list[str], rows: list[tuple]) -> list[int]:
    """Insert ``rows`` of ``columns`` as the owner in one transaction; their ids, in order."""
    conn = connect(pg)
    try:
        with conn, conn.cursor() as cur:
            ids = []
            for row in rows:
                placeholders = ", ".join(["%s"] * len(columns))
                cur.execute(
                    f"INSERT INTO public.{table} ({', '.join(columns)}) VALUES ({placeholders}) RETURNING id", row
                )
                ids.append(cur.fetchone()[0])
            return ids
    finally:
        conn.close()


def records_with_ids(
    bootstrap: str, topic: str, header: str, ids: list[int], timeout: float = 120
) -> dict[int, Record]:
    """The first record of each of ``ids`` (by their ``header``) on ``topic``, read from its beginning."""
    wanted = {str(i).encode(): i for i in ids}

    def found(records: list[Record]) -> dict[int, Record]:
        matches: dict[int, Record] = {}
        for record in records:
            row_id = wanted.get(record.headers.get(header))
            if row_id is not None:
                matches.setdefault(row_id, record)
        return matches

    return found(read_from(bootstrap, topic, None, lambda records: len(found(records)) == len(ids), timeout))
