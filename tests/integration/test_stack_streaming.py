"""The native stack streams rows through Debezium and MnistToCsv with the data contract (DESIGN.md).

Tests taking ``capture`` run once for each capture engine (Kafka Connect, Debezium Server) and assert the same."""

from __future__ import annotations

import json
import re
import uuid

from probes.database import drop_slot, query_one
from probes.deadline import poll
from probes.rows import csv_of, execute, insert, marked_pixels, prefix_of
from probes.topics import end_offsets, find_values, read_from, values_starting_with
from stack import connect
from stack.contract import MNIST

TRAIN = MNIST.train
TEST = MNIST.test


def wait_for(pipeline, topic: str, pixels: list[bytes], timeout: float = 60.0, counts: list[int] | None = None):
    prefixes = [prefix_of(p) for p in pixels]
    return find_values(pipeline.bootstrap, topic, prefixes, timeout, counts=counts)


def test_inserted_row_arrives_with_the_contract_key_value_and_headers(capture):
    stack = capture.stack
    start = end_offsets(stack.bootstrap, TEST)
    pixels = marked_pixels(last=255)
    (row_id,) = insert(stack.postgres, MNIST.test_table, [(7, pixels)])

    def mine(records: list) -> list:
        return [r for r in records if r.headers.get(MNIST.id_header) == str(row_id).encode()]

    found = mine(read_from(stack.bootstrap, TEST, start, lambda records: bool(mine(records))))

    assert len(found) == 1, f"{capture.engine}: {len(found)} records of row {row_id} on {TEST}"
    assert found[0].key == b"7"
    assert found[0].value.decode() == csv_of(pixels)
    assert found[0].value.decode().endswith(",0,255")
    assert len(found[0].value.split(b",")) == 784
    assert found[0].headers[MNIST.table_header] == MNIST.test_table.encode(), (
        "plain text headers, as Connect's converter writes"
    )
    assert found[0].headers[MNIST.commit_header].isdigit()


def test_train_table_streams_to_its_own_topic(pipeline):
    pixels = marked_pixels()
    insert(pipeline.postgres, MNIST.train_table, [(3, pixels)])

    found = wait_for(pipeline, TRAIN, [pixels])[prefix_of(pixels)]

    assert [(r.key, r.value.decode()) for r in found] == [(b"3", csv_of(pixels))]


def test_update_delete_and_invalid_rows_leave_the_capture_running(capture):
    pipeline = capture.stack
    updated = marked_pixels()
    (row_id,) = insert(pipeline.postgres, MNIST.train_table, [(1, updated)])
    execute(pipeline.postgres, f"UPDATE public.{MNIST.train_table} SET label = 4 WHERE id = %s", (row_id,))
    execute(pipeline.postgres, f"DELETE FROM public.{MNIST.train_table} WHERE id = %s", (row_id,))
    invalid = {
        "label 12 is outside 0..9": (12, bytes(784)),
        "label -1 is outside 0..9": (-1, bytes(784)),
        "label is NULL": (None, bytes(784)),
        "pixels is NULL": (5, None),
        "pixels has 100 bytes, expected 784 (28x28)": (5, bytes(100)),
    }
    invalid_ids = insert(pipeline.postgres, MNIST.train_table, list(invalid.values()))
    later = marked_pixels()
    insert(pipeline.postgres, MNIST.train_table, [(9, later)])

    found = wait_for(pipeline, TRAIN, [updated, later], counts=[3, 1])

    # Insert, update, delete: one record each, on the row's one partition in commit order; the delete is the row's
    # last version (no order with the later insert's, another row: read until all four).
    changes = sorted(found[prefix_of(updated)], key=lambda r: r.offset)
    assert [(r.key, r.headers[MNIST.op_header]) for r in changes] == [(b"1", b"c"), (b"4", b"u"), (b"4", b"d")]
    assert [r.key for r in found[prefix_of(later)]] == [b"9"]
    assert capture.is_running(), capture.state()

    wanted = {str(i) for i in invalid_ids}
    records = read_from(
        pipeline.bootstrap,
        MNIST.invalid(TRAIN),
        None,
        lambda rs: wanted <= {str(json.loads(r.value)["id"]) for r in rs},
    )
    reasons = {
        json.loads(r.value)["id"]: r.headers["mnist.error"].decode()
        for r in records
        if json.loads(r.value)["id"] in invalid_ids
    }
    assert reasons == dict(zip(invalid_ids, invalid, strict=True))


def test_deleted_row_leaves_no_tombstone_on_the_topic(pipeline):
    pixels = marked_pixels()
    (row_id,) = insert(pipeline.postgres, MNIST.train_table, [(2, pixels)])
    execute(pipeline.postgres, f"DELETE FROM public.{MNIST.train_table} WHERE id = %s", (row_id,))
    after = marked_pixels()
    insert(pipeline.postgres, MNIST.train_table, [(2, after)])

    records = read_from(
        pipeline.bootstrap, TRAIN, None, lambda rs: values_starting_with(rs, [prefix_of(after)])[prefix_of(after)]
    )

    assert values_starting_with(records, [prefix_of(after)])[prefix_of(after)]
    assert not [r for r in records if r.value is None], "a delete is the row's last version (rewrite), no tombstone"


def test_rows_present_before_a_connector_starts_are_snapshotted(pipeline):
    cfg = pipeline.config
    before = [marked_pixels() for _ in range(3)]
    insert(pipeline.postgres, MNIST.test_table, [(d, p) for d, p in zip((0, 5, 9), before, strict=True)])
    config = connect.connector_config(cfg)
    config.update({"topic.prefix": "snapcheck", "slot.name": "test_snapcheck_slot"})
    connect.register(cfg, "snapshot-check", config)
    try:
        found = wait_for(pipeline, f"snapcheck.public.{MNIST.test_table}", before, timeout=90)
    finally:
        connect.rest(cfg, "DELETE", "/connectors/snapshot-check")
        # The slot outlives the connector; drop it so the WAL it holds is released.
        drop_slot(pipeline.postgres, "test_snapcheck_slot")
    assert [found[prefix_of(p)][0].key for p in before] == [b"0", b"5", b"9"]


def test_status_reports_every_component_and_no_secret(pipeline):
    result = pipeline.run("stack", "status")

    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert [line.split()[0] for line in lines] == ["postgres", "kafka", "connect", "connector", "sink"]
    assert all(" ok " in line for line in lines)
    assert f"{MNIST.connector} RUNNING (task 0 RUNNING)" in result.stdout
    assert f"{connect.SINK_NAME} RUNNING (task 0 RUNNING)" in result.stdout
    assert pipeline.env["DEBEZIUM_PGPASSWORD"] not in result.stdout


def test_up_on_a_running_stack_changes_nothing(pipeline):
    result = pipeline.run("stack", "up")

    assert result.returncode == 0, result.stderr
    assert "stack already running: nothing changed" in result.stdout


def test_busy_port_is_reported_with_the_variable_that_moves_it(pipeline, tmp_path):
    home = tmp_path / "other-stack"
    result = pipeline.run("stack", "up", extra_env={"STACK_HOME": str(home), "CONNECT_URL": "http://127.0.0.1:1"})

    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"error: PostgreSQL: port {pipeline.env['PGPORT']} on 127.0.0.1 is busy; "
        "set PGPORT to move PostgreSQL to a free port"
    ]
    assert "Traceback" not in result.stderr


def slot_names(pipeline) -> set[str]:
    (names,) = query_one(
        pipeline.postgres, "SELECT coalesce(array_agg(slot_name::text), '{}') FROM pg_replication_slots"
    )
    return set(names)


def test_wal_kept_for_slots_is_bounded(pipeline):
    assert query_one(pipeline.postgres, "SHOW max_slot_wal_keep_size") == ("4GB",)


def test_status_shows_the_wal_each_slot_retains(pipeline):
    result = pipeline.run("stack", "status")

    postgres_line = result.stdout.splitlines()[0]
    assert re.search(rf"slot {MNIST.slot} active retains \d+(\.\d)? (bytes|kB|MB|GB) of WAL", postgres_line), (
        postgres_line
    )


def test_up_drops_stale_test_and_bench_slots_and_keeps_others(pipeline):
    tag = uuid.uuid4().hex[:6]
    leaked, other = [f"test_leaked_{tag}", f"bench_leaked_{tag}"], f"users_own_{tag}"
    for slot in [*leaked, other]:
        execute(pipeline.postgres, "SELECT pg_create_logical_replication_slot(%s, 'pgoutput')", (slot,))
    try:
        result = pipeline.run("stack", "up")
    finally:
        drop_slot(pipeline.postgres, other)

    assert result.returncode == 0, result.stderr
    for slot in leaked:
        assert f"dropped stale replication slot {slot}" in result.stdout
    assert not set(leaked) & slot_names(pipeline)
    assert MNIST.slot in slot_names(pipeline)
    assert other not in result.stdout


def test_heartbeats_let_the_slot_advance_while_only_other_tables_change(pipeline):
    table = f"busy_{uuid.uuid4().hex[:8]}"
    execute(pipeline.postgres, f"CREATE TABLE public.{table} (n int)")
    try:
        execute(pipeline.postgres, f"INSERT INTO public.{table} SELECT generate_series(1, 1000)")
        (written,) = query_one(pipeline.postgres, "SELECT pg_current_wal_lsn()::text")

        def confirmed_past_it() -> bool:
            return query_one(
                pipeline.postgres,
                f"SELECT confirmed_flush_lsn >= %s::pg_lsn FROM pg_replication_slots WHERE slot_name = '{MNIST.slot}'",
                (written,),
            ) == (True,)

        assert poll(confirmed_past_it, 60, 1.0), f"{MNIST.slot} still holds WAL of tables it does not capture"
    finally:
        execute(pipeline.postgres, f"DROP TABLE public.{table}")


def test_up_with_a_changed_pgpassword_is_one_line(pipeline):
    result = pipeline.run("stack", "up", extra_env={"PGPASSWORD": "not-the-one-initdb-got"})

    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"error: postgres: password authentication failed for user {pipeline.env['PGUSER']} on "
        f"{pipeline.env['PGHOST']}:{pipeline.env['PGPORT']}: PGPASSWORD is not the password the cluster was "
        "created with"
    ]
