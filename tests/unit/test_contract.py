"""The data contract's names (stack/contract.py) against every file that spells them on the other side: the
connector JSONs, the compose file, the SQL under postgres/ and the transform's Java source, each read as text, so
a name changed on one side alone fails here."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path

import pytest

from consumer.records import predictions
from loader import database
from stack import connect, kafka, server
from stack.config import StackConfig
from stack.contract import DEFAULT_INVALID_SUFFIX, DELETE_OP, MNIST, Contract

ROOT = Path(__file__).resolve().parents[2]
SOURCE = json.loads((ROOT / "debezium" / "register-postgres.json").read_text())
SINK = json.loads((ROOT / "debezium" / "register-predictions-sink.json").read_text())
COMPOSE = (ROOT / "docker-compose.yml").read_text()
TABLES_SQL = (ROOT / "postgres" / "01-tables.sql").read_text()
ROLE_SQL = (ROOT / "postgres" / "02-connector-role.sql").read_text()
PREDICTIONS_SQL = (ROOT / "postgres" / "04-predictions.sql").read_text()
TRANSFORM = ROOT / "debezium" / "mnist-smt" / "src" / "main" / "java" / "io" / "debezium" / "transforms"
TRANSFORM_JAVA = (TRANSFORM / "MnistToCsv.java").read_text()


def qualified(table: str) -> str:
    return f"{MNIST.schema}.{table}"


def java_constant(name: str) -> str:
    return re.search(rf'static final String {name} = "([^"]*)";', TRANSFORM_JAVA).group(1)


def compose_connector_name(service: str) -> str:
    """The CONNECTOR_NAME the compose file's ``service`` registers under."""
    block = re.search(rf"^  {re.escape(service)}:\n((?:    .*\n|\n)*)", COMPOSE, re.M).group(1)
    return re.search(r"^\s+CONNECTOR_NAME: (\S+)$", block, re.M).group(1)


def test_the_source_connector_json_names_what_the_contract_names():
    config = SOURCE["config"]
    assert (SOURCE["name"], config["topic.prefix"]) == (MNIST.connector, MNIST.topic_prefix)
    assert (config["slot.name"], config["publication.name"]) == (MNIST.slot, MNIST.publication)
    assert config["transforms.mnist.invalid.topic.suffix"] == MNIST.invalid_suffix
    assert config["snapshot.include.collection.list"].split(",") == [qualified(t) for t in MNIST.tables]
    included = re.compile(config["table.include.list"])
    assert all(included.fullmatch(qualified(t)) for t in MNIST.tables), "the connector captures every table"


def test_unwrap_adds_the_commit_time_header_the_contract_reads():
    added = [name.strip() for name in SOURCE["config"]["transforms.unwrap.add.headers"].split(",")]
    # ExtractNewRecordState names an added source field "__" + the field with dots as underscores.
    assert MNIST.commit_header in {"__" + name.replace(".", "_") for name in added}


def test_unwrap_marks_each_change_with_the_op_header_and_keeps_deletes_as_records():
    config = SOURCE["config"]
    added = [name.strip() for name in config["transforms.unwrap.add.headers"].split(",")]
    assert MNIST.op_header in {"__" + name.replace(".", "_") for name in added}
    # rewrite: a DELETE becomes the row's last version (no tombstone), which only the op header marks.
    assert config["transforms.unwrap.delete.tombstone.handling.mode"] == "rewrite"
    assert DELETE_OP == "d", "Debezium's operation code of a delete"


def test_every_change_of_a_row_is_routed_by_its_id_before_unwrap():
    config = SOURCE["config"]
    transforms = [name.strip() for name in config["transforms"].split(",")]
    # PartitionRouting reads the change event's envelope, which unwrap takes apart: it runs first.
    assert transforms[0] == "partition" and transforms.index("partition") < transforms.index("unwrap")
    assert config["transforms.partition.type"] == "io.debezium.transforms.partitions.PartitionRouting"
    assert config["transforms.partition.partition.payload.fields"] == "change.id"
    assert not any("partitioner.class" in key for key in config), "the transform names every data record's partition"


def test_the_registered_partition_count_is_topic_partitions_on_both_engines():
    cfg = StackConfig.from_env({"TOPIC_PARTITIONS": "3"})
    assert connect.connector_config(cfg)["transforms.partition.partition.topic.num"] == "3"
    assert server.source_settings(cfg)["debezium.transforms.partition.partition.topic.num"] == "3"


def test_the_captured_tables_log_whole_old_rows_for_deletes():
    for table in MNIST.tables:
        assert f"ALTER TABLE {qualified(table)} REPLICA IDENTITY FULL;" in TABLES_SQL, table


def test_the_sink_deletes_predictions_and_may_delete_nothing_else():
    config = SINK["config"]
    assert (config["delete.enabled"], config["primary.key.mode"]) == ("true", "record_key")
    granted = re.findall(r"GRANT ([A-Z, ]+) ON (\S+) TO predictions_sink;", PREDICTIONS_SQL)
    assert [on for rights, on in granted if "DELETE" in rights] == [qualified(MNIST.predictions_table)]
    assert "DELETE" not in ROLE_SQL


def test_the_sink_json_reads_the_predictions_topic_into_the_predictions_table():
    assert SINK["name"] == MNIST.sink_connector
    assert SINK["config"]["topics"] == MNIST.predictions_topic
    assert SINK["config"]["collection.name.format"] == MNIST.predictions_table


def test_compose_registers_the_connectors_under_the_contracts_names():
    assert compose_connector_name("register") == MNIST.connector
    assert compose_connector_name("register-sink") == MNIST.sink_connector


def test_the_sql_creates_the_tables_and_the_publication_of_the_contract():
    created = re.findall(r"CREATE TABLE IF NOT EXISTS (\S+) \(", TABLES_SQL)
    assert created == [qualified(t) for t in MNIST.tables]
    published = re.search(rf"CREATE PUBLICATION {re.escape(MNIST.publication)} FOR TABLE ([^;]+);", ROLE_SQL)
    assert published, f"postgres/02-connector-role.sql creates no publication {MNIST.publication}"
    assert [t.strip() for t in published.group(1).split(",")] == [qualified(t) for t in MNIST.tables]
    assert f"CREATE TABLE IF NOT EXISTS {qualified(MNIST.predictions_table)} (" in PREDICTIONS_SQL


def test_the_transform_writes_the_headers_and_invalid_topics_the_contract_reads():
    assert java_constant("TABLE_HEADER") == MNIST.table_header
    assert java_constant("ID_HEADER") == MNIST.id_header
    assert java_constant("ERROR_HEADER") == MNIST.error_header
    default = re.search(r"define\(INVALID_TOPIC_SUFFIX_CONFIG, Type\.STRING, \"([^\"]*)\"", TRANSFORM_JAVA)
    assert default.group(1) == DEFAULT_INVALID_SUFFIX


def test_every_component_reads_its_names_from_the_contract():
    assert kafka.TOPICS == MNIST.data_topics()
    assert kafka.RETAINED == MNIST.replayed_topics()
    assert dict(database.TABLES) == dict(MNIST.splits)
    headers = (predictions.TABLE_HEADER, predictions.ID_HEADER, predictions.COMMIT_HEADER)
    assert headers == (MNIST.table_header, MNIST.id_header, MNIST.commit_header)
    assert StackConfig.from_env({}).contract is MNIST


def test_a_second_dataset_is_a_second_instance_with_its_own_names(tmp_path):
    source = tmp_path / "register-iris.json"
    source.write_text(json.dumps({"name": "iris-connector", "config": {**SOURCE["config"], "slot.name": "iris_slot"}}))
    sink = tmp_path / "register-iris-sink.json"
    sink.write_text(
        json.dumps({"name": "iris-sink", "config": {"topics": "iris.scores", "collection.name.format": "iris_scores"}})
    )

    iris = Contract.from_files("iris", {"train": "iris_train"}, source, sink)

    assert (iris.connector, iris.slot, iris.train, iris.predictions_topic) == (
        "iris-connector",
        "iris_slot",
        "tf.public.iris_train",
        "iris.scores",
    )
    assert (iris.table_header, iris.id_header) == ("iris.table", "iris.id")
    assert iris.data_topics() == ("tf.public.iris_train", "tf.public.iris_train.invalid", "iris.scores")
    with pytest.raises(KeyError):
        iris.topic("test")
    assert iris != MNIST and MNIST == replace(MNIST)


def test_the_contract_is_frozen_and_hashable():
    with pytest.raises(TypeError):
        MNIST.splits["train"] = "other"  # type: ignore[index]
    assert hash(MNIST) == hash(replace(MNIST))
