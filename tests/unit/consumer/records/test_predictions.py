"""The way back (predictions into PostgreSQL) without services: the prediction records, the predictor's usage
errors, the JDBC sink's registration and the sink role's access rules."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from consumer import predict
from consumer.learning.scoring import prediction_records
from consumer.records.predictions import (
    KEY_SCHEMA,
    VALUE_SCHEMA,
    HeaderError,
    RowRef,
    describe_malformed,
    key_of,
    plan_batch,
    prediction_key,
    prediction_value,
    row_ref,
    zoned_timestamp,
)
from stack import connect, datasets, postgres
from stack.config import StackConfig
from stack.contract import MNIST

ROOT = Path(__file__).resolve().parents[4]
TABLE_SQL = ROOT / "postgres" / "04-predictions.sql"


def table_columns() -> list[str]:
    body = re.search(
        rf"CREATE TABLE IF NOT EXISTS public\.{MNIST.predictions_table} \((.*?)\n\);", TABLE_SQL.read_text(), re.S
    )
    names = [line.split()[0] for line in body.group(1).splitlines() if line.strip()]
    return [name for name in names if name != "PRIMARY"]


def headers(row_id: bytes = b"5", table: bytes = MNIST.test_table.encode(), committed: bytes | None = b"1700000000000"):
    found = [(MNIST.table_header, table), (MNIST.id_header, row_id)]
    return found + ([(MNIST.commit_header, committed)] if committed is not None else [])


def test_the_value_has_one_field_a_column_of_mnist_predictions_and_the_key_is_its_primary_key():
    assert [f["field"] for f in VALUE_SCHEMA["fields"]] == table_columns()
    assert [f["field"] for f in KEY_SCHEMA["fields"]] == ["source_table", "id"]
    assert "PRIMARY KEY (source_table, id)" in TABLE_SQL.read_text()


def test_records_are_json_converter_envelopes_with_the_schema_the_sink_maps():
    ref = RowRef(MNIST.test_table, 2**40, 1700000000000)
    key = json.loads(prediction_key(ref))
    value = json.loads(prediction_value(ref, 7, 0.75, None, 1700000000500))

    assert set(key) == set(value) == {"schema", "payload"}
    assert key["payload"] == {"source_table": MNIST.test_table, "id": 2**40}
    assert value["payload"]["model_version"] is None, "a plain .keras file is no numbered version"
    times = {f["field"]: f.get("name") for f in value["schema"]["fields"] if f["type"] == "string"}
    assert times["committed_at"] == times["predicted_at"] == "io.debezium.time.ZonedTimestamp"
    assert value["payload"]["predicted_at"] == "2023-11-14T22:13:20.500Z"
    assert key_of(prediction_key(ref)) == (MNIST.test_table, 2**40)


def test_a_row_without_a_commit_time_still_has_a_prediction_with_a_null_commit_time():
    ref = row_ref(headers(committed=None))
    assert ref == RowRef(MNIST.test_table, 5, None)
    assert json.loads(prediction_value(ref, 1, 0.5, 3, 0))["payload"]["committed_at"] is None


@pytest.mark.parametrize(
    ("found", "reason"),
    [
        ([(MNIST.id_header, b"5")], "no table header"),
        ([(MNIST.table_header, MNIST.test_table.encode())], "no id header"),
        (headers(table=b"\xff"), "table not UTF-8"),
        (headers(row_id=b"4x"), "id not a number"),
        (headers(row_id=b" 5"), "id not a number"),
        (headers(row_id=str(2**64 + 5).encode()), "id out of range"),
        (headers(row_id=str(2**63).encode()), "id out of range"),
        (headers(row_id=str(-(2**63) - 1).encode()), "id out of range"),
        (headers(committed=b"soon"), "commit time not a number"),
        (headers(committed=b"99999999999999999999"), "commit time out of range"),
        (headers(committed=b"-1"), "commit time out of range"),
    ],
)
def test_headers_that_name_no_usable_row_say_why(found, reason):
    with pytest.raises(HeaderError, match=f"^{reason}$"):
        row_ref(found)


def test_ids_and_commit_times_at_the_edges_of_their_range_are_rows():
    assert row_ref(headers(row_id=str(2**63 - 1).encode())).id == 2**63 - 1
    assert row_ref(headers(row_id=str(-(2**63)).encode())).id == -(2**63)
    latest = row_ref(headers(committed=b"253402300799999"))
    assert zoned_timestamp(latest.committed_ms) == "9999-12-31T23:59:59.999Z"


def with_op(row_id: bytes, op: bytes) -> list[tuple[str, bytes]]:
    return [*headers(row_id), ("__op", op)]


def test_a_deletion_is_a_retraction_in_record_order_decoded_or_not():
    raw = [with_op(b"1", b"c"), with_op(b"1", b"d"), with_op(b"2", b"u"), with_op(b"3", b"d"), with_op(b"1", b"c")]
    plan = plan_batch(raw, [True, True, True, False, True])

    assert [(index, ref.id) for index, ref in plan.changes] == [(0, 1), (None, 1), (2, 2), (None, 3), (3, 1)]
    assert plan.retracted == 2 and plan.images() == [0, 2, 3] and not plan.malformed


def test_undecoded_records_and_bad_headers_are_malformed_by_reason_and_rows_keep_their_image_index():
    raw = [headers(b"1"), headers(b"2"), None, headers(b"4"), headers(str(2**64).encode())]
    plan = plan_batch(raw, [False, True, True, True, True])

    assert [(index, ref.id) for index, ref in plan.changes] == [(0, 2), (2, 4)]
    assert plan.malformed == Counter({"undecodable": 1, "no table header": 1, "id out of range": 1})
    assert describe_malformed(plan.malformed) == "3 malformed: 1 id out of range, 1 no table header, 1 undecodable"


def test_scoring_writes_predictions_and_tombstones_in_record_order():
    raw = [with_op(b"7", b"c"), with_op(b"8", b"c"), with_op(b"7", b"d")]
    plan = plan_batch(raw, [True, True, True])
    images = np.zeros((3, 784), np.float32)
    images[1] += 1

    class Model:  # digit 3 for a blank image, 5 for a white one
        def predict_on_batch(self, batch):
            assert len(batch) == 2
            out = np.full((len(batch), 10), 0.05, np.float32)
            out[:, 3] = np.where(batch.sum(axis=1) > 0, 0.0, 0.55)
            out[:, 5] = 0.55 - out[:, 3]
            return out

    records = prediction_records(Model(), images, plan, 4)

    assert [key_of(key) for key, _ in records] == [(MNIST.test_table, 7), (MNIST.test_table, 8), (MNIST.test_table, 7)]
    assert records[2][1] is None, "the deleted row's tombstone comes last"
    values = [json.loads(value)["payload"] for _, value in records[:2]]
    assert [(v["predicted"], v["model_version"]) for v in values] == [(3, 4), (5, 4)]


def test_zoned_timestamps_keep_milliseconds():
    assert zoned_timestamp(0) == "1970-01-01T00:00:00.000Z"
    assert zoned_timestamp(1_000_000_000_007) == "2001-09-09T01:46:40.007Z"


@pytest.mark.parametrize(
    "ref, predicted, confidence, version, predicted_ms",
    [
        (RowRef("mnist_test", 7, 1700000000123), 3, 0.53125, 2, 1700000000250),
        (RowRef("iris_test", 2**63 - 1, None), 0, 1.0, None, 0),
        (RowRef('my "odd" täble', 1, -1), 9, 1e-07, 0, 86_399_999),
        (RowRef("t", 5, 1), np.int64(4), np.float32(0.1), np.int32(12), 1),
    ],
)
def test_records_are_written_exactly_as_json_dumps_writes_them(ref, predicted, confidence, version, predicted_ms):
    """The record writers format the JSON themselves, for speed: byte for byte what json.dumps writes."""
    names = MNIST if ref.table != "iris_test" else datasets.load("iris").contract
    committed = None if ref.committed_ms is None else zoned_timestamp(ref.committed_ms)
    payload = {
        "source_table": ref.table, "id": ref.id, "predicted": int(predicted), "confidence": float(confidence),
        "model_version": None if version is None else int(version), "committed_at": committed,
        "predicted_at": zoned_timestamp(predicted_ms),
    }  # fmt: skip

    def envelope(part: str, body: dict) -> bytes:
        schema = {**(KEY_SCHEMA if part == "Key" else VALUE_SCHEMA), "name": f"{names.predictions_topic}.{part}"}
        return json.dumps({"schema": schema, "payload": body}, separators=(",", ":")).encode()

    assert prediction_key(ref, names) == envelope("Key", {"source_table": ref.table, "id": ref.id})
    assert prediction_value(ref, predicted, confidence, version, predicted_ms, names) == envelope("Value", payload)


def test_a_missing_model_is_one_line_and_exit_1(tmp_path, capsys):
    assert predict.main(["--model", str(tmp_path / "absent.keras")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"error: no model at {tmp_path / 'absent.keras'}")


def test_a_bad_batch_size_is_a_usage_error(capsys):
    assert predict.main(["--batch-size", "0"]) == 2
    assert "--batch-size must be >= 1" in capsys.readouterr().err


def test_the_transactional_id_is_stable_per_named_instance_and_unique_per_plain_process():
    assert (
        predict.transactional_id("g", "a") == predict.transactional_id("g", "a") != predict.transactional_id("g", "b")
    )
    assert predict.transactional_id("g", None) != predict.transactional_id("g", None)
    assert predict.build_parser().parse_args([]).instance is None, "plain processes of a group must not fence"


def test_the_sink_registered_is_the_json_with_only_the_jdbc_url_from_configuration(tmp_path):
    cfg = StackConfig.from_env(
        {"STACK_HOME": str(tmp_path), "PGHOST": "10.1.2.3", "PGPORT": "6543", "PGDATABASE": "db"}
    )
    shipped = json.loads(connect.SINK_JSON.read_text())["config"]
    registered = connect.sink_config(cfg)

    assert {k for k in shipped if registered[k] != shipped[k]} == {"connection.url"}
    assert registered["connection.url"] == "jdbc:postgresql://10.1.2.3:6543/db"
    assert registered["connection.username"] == postgres.SINK_ROLE
    assert registered["connection.password"] == "${env:PREDICTIONS_SINK_PGPASSWORD}"
    assert (registered["insert.mode"], registered["primary.key.mode"], registered["schema.evolution"]) == (
        "upsert",
        "record_key",
        "none",
    )
    assert registered["consumer.override.isolation.level"] == "read_committed"


def test_the_worker_resolves_the_sink_password_and_nothing_else_new(tmp_path):
    cfg = StackConfig.from_env({"STACK_HOME": str(tmp_path)})
    lines = connect.write_config(cfg).read_text().splitlines()
    pattern = dict(line.split("=", 1) for line in lines if "=" in line)["config.providers.env.param.allowlist.pattern"]

    assert re.fullmatch(pattern, "PREDICTIONS_SINK_PGPASSWORD") and re.fullmatch(pattern, "DEBEZIUM_PGPASSWORD")
    assert not re.fullmatch(pattern, "PGPASSWORD") and not re.fullmatch(pattern, "X_PREDICTIONS_SINK_PGPASSWORD")


def test_the_sink_role_may_log_in_to_pgdatabase_only(tmp_path):
    cfg = StackConfig.from_env({"STACK_HOME": str(tmp_path), "PGDATABASE": "images"})
    rules = [line.split() for line in postgres._hba(cfg).splitlines() if line and not line.startswith("#")]
    first_for = {}
    for database in ('"images"', "template1", "replication"):
        first_for[database] = next(
            rule[-1] for rule in rules if rule[2] in (postgres.SINK_ROLE, "all") and rule[1] in (database, "all")
        )
    assert first_for == {'"images"': "scram-sha-256", "template1": "reject", "replication": "reject"}


def test_the_sink_password_comes_from_its_own_variable(tmp_path):
    assert StackConfig.from_env({"STACK_HOME": str(tmp_path)}).sink_password == "predictions"
    env = {"STACK_HOME": str(tmp_path), "PREDICTIONS_SINK_PGPASSWORD": "s3cret"}
    assert StackConfig.from_env(env).sink_password == "s3cret"


# --- stack status: a Debezium task that keeps restarting is RUNNING to Connect ------------------------------

STREAMING = (
    "[debezium-postgresconnector-tf-change-event-source-coordinator] INFO io.debezium.pipeline."
    "ChangeEventSourceCoordinator - Connected metrics set to 'true'"
)
FAILED_SNAPSHOT = [
    "org.apache.kafka.connect.errors.ConnectException: An exception occurred in the change event producer.",
    "Caused by: org.apache.kafka.connect.errors.ConnectException: Snapshotting of table public.t failed",
    "Caused by: org.postgresql.util.PSQLException: ERROR: permission denied for table t",
    f"[task-thread-{MNIST.connector}-0] WARN io.debezium.connector.common.BaseSourceTask - Going to restart connector "
    "after 10 sec. after a retriable exception",
    f"[task-thread-{MNIST.connector}-0] INFO io.debezium.connector.common.BaseSourceTask - Successfully restarted task",
]


def with_log(tmp_path, lines: list[str]) -> StackConfig:
    cfg = StackConfig.from_env({"STACK_HOME": str(tmp_path)})
    connect.log_file(cfg).parent.mkdir(parents=True, exist_ok=True)
    connect.log_file(cfg).write_text("\n".join(lines) + "\n")
    return cfg


def test_a_task_restarting_after_a_failed_snapshot_is_retrying_with_the_innermost_cause(tmp_path):
    cfg = with_log(tmp_path, [f"[task-thread-{MNIST.connector}-0] INFO starting", *FAILED_SNAPSHOT])
    assert connect.retrying(cfg) == "org.postgresql.util.PSQLException: ERROR: permission denied for table t"


def test_a_task_streaming_again_after_a_restart_is_not_retrying(tmp_path):
    assert connect.retrying(with_log(tmp_path, [*FAILED_SNAPSHOT, STREAMING])) is None
    assert connect.retrying(with_log(tmp_path, [STREAMING])) is None


def test_another_connectors_restarts_do_not_count(tmp_path):
    cfg = with_log(tmp_path, [STREAMING, *(line.replace(MNIST.connector, "other") for line in FAILED_SNAPSHOT)])
    assert connect.retrying(cfg) is None


def test_no_log_is_not_retrying(tmp_path):
    assert connect.retrying(StackConfig.from_env({"STACK_HOME": str(tmp_path)})) is None
