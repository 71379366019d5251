import json
import re
from pathlib import Path

import pytest

from stack.config import ConfigError, StackConfig
from stack.versions import pinned_versions

ROOT = Path(__file__).resolve().parents[3]


def test_defaults_are_the_talks_on_loopback():
    cfg = StackConfig.from_env({})
    assert (cfg.pg_host, cfg.pg_port, cfg.pg_user, cfg.pg_database) == ("127.0.0.1", 5432, "postgres", "postgres")
    assert cfg.kafka_bootstrap == "127.0.0.1:9092"
    assert cfg.connect_url == "http://127.0.0.1:8083"
    assert cfg.home == (ROOT / ".stack").resolve()


def test_environment_moves_every_service():
    cfg = StackConfig.from_env(
        {
            "PGPORT": "6543",
            "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:19092",
            "CONNECT_URL": "http://127.0.0.1:18083",
            "STACK_HOME": "/tmp/elsewhere",
        }
    )
    assert (cfg.pg_port, cfg.kafka_port, cfg.connect_port) == (6543, 19092, 18083)
    assert str(cfg.home) == "/tmp/elsewhere"


@pytest.mark.parametrize(
    "env, message",
    [
        ({"PGPORT": "abc"}, "PGPORT='abc' is not a port number"),
        ({"PGPORT": "70000"}, "PGPORT='70000' is not a port number"),
        ({"KAFKA_BOOTSTRAP_SERVERS": "9092"}, "KAFKA_BOOTSTRAP_SERVERS='9092' is not host:port"),
        ({"CONNECT_URL": "127.0.0.1:8083"}, "CONNECT_URL='127.0.0.1:8083' is not http://host:port"),
        ({"DATA_RETENTION_MS": "0"}, "DATA_RETENTION_MS='0' is not -1 (keep for ever) or a positive number of ms"),
        ({"DATA_RETENTION_MS": "a week"}, "DATA_RETENTION_MS='a week' is not -1"),
    ],
)
def test_bad_values_name_the_variable(env, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        StackConfig.from_env(env)


def test_data_topics_keep_every_record_unless_data_retention_ms_says_otherwise():
    assert StackConfig.from_env({}).data_retention_ms == -1
    assert StackConfig.from_env({"DATA_RETENTION_MS": "604800000"}).data_retention_ms == 604800000


def pom_property(pom: Path, name: str) -> str:
    return re.search(rf"<{re.escape(name)}>([^<]+)</{re.escape(name)}>", pom.read_text()).group(1)


def test_versions_do_not_drift_between_env_file_and_poms():
    versions = pinned_versions()
    assert pom_property(ROOT / "stack" / "pom.xml", "kafka.version") == versions["KAFKA_VERSION"]
    assert pom_property(ROOT / "stack" / "pom.xml", "debezium.version") == versions["DEBEZIUM_VERSION"]
    assert pom_property(ROOT / "debezium" / "mnist-smt" / "pom.xml", "kafka.version") == versions["KAFKA_VERSION"]


def test_connector_json_keeps_the_talks_contract():
    config = json.loads((ROOT / "debezium" / "register-postgres.json").read_text())
    assert config["name"] == "mnist-connector"
    c = config["config"]
    assert c["connector.class"] == "io.debezium.connector.postgresql.PostgresConnector"
    assert c["topic.prefix"] == "tf"
    assert c["table.include.list"] == "public.mnist_.*"
    assert c["key.converter"] == c["value.converter"] == "org.apache.kafka.connect.storage.StringConverter"
    assert [t.strip() for t in c["transforms"].split(",")] == ["partition", "unwrap", "mnist"]
    assert c["transforms.unwrap.type"] == "io.debezium.transforms.ExtractNewRecordState"
    assert c["transforms.mnist.type"] == "io.debezium.transforms.MnistToCsv"
    assert c["plugin.name"] == "pgoutput"
    assert "delete.tombstone.handling.mode" in "".join(c)
    assert "${env:" in c["database.password"], "no literal secret in the connector JSON"
